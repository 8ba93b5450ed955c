"""The launchers on benchmark files in their official formats, through the command line: evaluation builds the
corpus from the files' contexts and a dense index, and training runs one EM iteration from HotpotQA files."""

import json
import os
import subprocess
import sys

import pytest

from exsearch_jax.data import FORMATS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "qa")
FILES = {
    "hotpotqa": os.path.join(FIXTURES, "hotpotqa", "hotpot_dev_distractor_v1.json"),
    "2wiki": os.path.join(FIXTURES, "2wikimultihopqa", "dev.json"),
    "musique": os.path.join(FIXTURES, "musique", "musique_ans_v1.0_dev.jsonl"),
}
EVAL_KEYS = {"em", "f1", "acc", "n", "recall@3", "recall@5", "precision@3", "precision@5", "parse_share", "mean_steps"}


def _launch(script: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", HF_HUB_OFFLINE="1")
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch", script), *args],
      capture_output=True,
      text=True,
      timeout=timeout,
      cwd=ROOT,
      env=env,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return result


@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(FILES))
def test_eval_of_smollm2_on_an_official_file_builds_corpus_and_dense_index(fmt, tmp_path):
  _launch(
      "eval.py",
      "--config=exsearch_jax/config.py:smollm2_135m",
      f"--workdir={tmp_path}",
      "--model=asset:smollm2-135m-instruct",
      "--config.data.source=files",
      f"--config.data.format={fmt}",
      f"--config.data.dev={FILES[fmt]}",
      "--config.rollout.max_steps=2",
      "--config.rollout.step_tokens=24",
      "--config.rollout.answer_tokens=8",
  )
  with open(tmp_path / "eval_model.json", encoding="utf-8") as f:
    metrics = json.load(f)
  assert EVAL_KEYS <= set(metrics) and metrics["n"] == len(list(FORMATS[fmt](FILES[fmt])))
  assert metrics["parse_share"] == 1.0 and metrics["mean_steps"] >= 1  # instructed, grammar-constrained
  assert 0.0 <= metrics["recall@5"] <= 1.0 and metrics["recall@3"] <= metrics["recall@5"]
  assert (tmp_path / "corpus.jsonl").exists() and (tmp_path / "index_scann" / "meta.json").exists()
  assert (tmp_path / "eval_model.html").stat().st_size > 0


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_train_runs_one_em_iteration_from_hotpotqa_files(tmp_path):
  hotpot = FILES["hotpotqa"]
  _launch(
      "train.py",
      "--config=tests/tiny_config.py",
      f"--workdir={tmp_path}",
      "--config.data.source=files",
      "--config.data.format=hotpotqa",
      f"--config.data.train={hotpot}",
      f"--config.data.dev={hotpot}",
      f"--config.data.seeds={hotpot}",
      "--config.stage0.examples=0",
      "--config.warmup.epochs=2",
      "--config.em.iterations=1",
      "--config.em.seed_trajectories=2",
      "--config.em.questions_per_iteration=2",
  )
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl", encoding="utf-8")]
  assert [r["iteration"] for r in rows if r["kind"] == "eval"] == [0, 1]
  assert {r["phase"] for r in rows if r["kind"] == "train"} == {"warmup/0", "mstep/1"}
  estep = next(r for r in rows if r["kind"] == "estep")
  assert estep["questions"] == 2 and estep["trajectories"] == 4
  assert (tmp_path / "final_model" / "config.json").exists()
