"""experiments/run.py end to end: the smoke size of every demo experiment writes its table, plot and records, and
a sweep killed with SIGKILL resumes without rerunning finished runs. (iterations_smollm2's smoke loads SmolLM2
and takes minutes; its configs are checked in test_sweep.py and the suite's one SmolLM2 EM iteration is elsewhere.)
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow  # whole (smoke-size) EM runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "run.py")


def _run(tmp_path, *flags, check=True):
  out = subprocess.run(
      [sys.executable, SCRIPT, f"--out={tmp_path}/out", f"--workdir={tmp_path}/runs", *flags],
      capture_output=True,
      text=True,
      cwd=ROOT,
      timeout=900,
      check=False,
  )
  if check:
    assert out.returncode == 0, out.stderr[-3000:]
  return out


def _records(tmp_path, name):
  with open(tmp_path / "out" / name / "runs.jsonl", encoding="utf-8") as f:
    return [json.loads(line) for line in f]


@pytest.mark.parametrize("name", ["iterations", "weighting", "warmup_size", "retriever", "baselines", "rerank"])
def test_smoke_size_writes_table_plot_records_and_configs(tmp_path, name):
  from experiments import catalog

  exp = catalog.get(name)
  _run(tmp_path, f"--experiment={name}", "--size=smoke")
  directory = tmp_path / "out" / name
  text = (directory / "results.md").read_text(encoding="utf-8")
  assert text.startswith(f"# {name} (smoke)") and "| warm-up |" in text
  assert (directory / f"{name}.png").stat().st_size > 10_000
  assert sorted(r["key"]["variant"] for r in _records(tmp_path, name)) == sorted(v.label for v in exp.variants)
  assert len(list((directory / "configs" / "smoke").iterdir())) == len(exp.variants)
  assert json.loads((directory / "provenance.json").read_text())["revision"]
  if name == "baselines":  # the gold decomposition retrieves the supporting passages; closed-book never searches
    assert "| closed_book | 1 | warm-up | 0.0 | 0.0 | 0.0 | 0.00 | 0.00 | 0.00 |" in text
    oracle = next(line for line in text.splitlines() if line.startswith("| oracle | 1 | warm-up"))
    assert float(oracle.split("|")[7]) > 0.9


def test_a_killed_sweep_skips_its_finished_runs_when_rerun(tmp_path):
  cmd = [
      sys.executable,
      SCRIPT,
      f"--out={tmp_path}/out",
      f"--workdir={tmp_path}/runs",
      "--experiment=samples",
      "--size=smoke",
  ]
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
  runs = tmp_path / "out" / "samples" / "runs.jsonl"
  deadline = time.time() + 600
  while not (runs.exists() and runs.read_text().count("\n") >= 1) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.5)
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait()
  finished = [r["key"]["variant"] for r in _records(tmp_path, "samples")]
  assert finished and len(finished) < 4, "the kill should land inside the sweep"
  out = _run(tmp_path, "--experiment=samples", "--size=smoke")
  for label in finished:
    assert f"samples/{label} seed 0: recorded" in out.stdout
  assert sorted(r["key"]["variant"] for r in _records(tmp_path, "samples")) == ["k1", "k2", "k4", "k8"]
  assert "| k4 | 1 | 1 |" in (tmp_path / "out" / "samples" / "results.md").read_text(encoding="utf-8")


def test_bad_flags_are_one_line_and_status_2(tmp_path):
  out = _run(tmp_path, "--experiment=nope", check=False)
  assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "unknown" in out.stderr
  out = _run(tmp_path, "--experiment=weighting", "--variants=bogus", "--size=smoke", check=False)
  assert out.returncode == 2 and "no variant 'bogus'" in out.stderr
  listing = _run(tmp_path, "--list")
  for name in ("iterations", "weighting", "samples", "warmup_size", "baselines", "rerank", "retriever"):
    assert f"\n{name} " in listing.stdout
