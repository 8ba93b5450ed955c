"""Crash-safe writes (exsearch_jax/atomic.py): a process rewriting an index, a checkpoint or a saved model is
killed with SIGKILL at 10 seeded random moments each; after every kill what is on disk is a complete version
(or nothing yet), and a rerun ends with the same result as an uninterrupted run."""

import functools
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from exsearch_jax import atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILLS = 10

WORKER = r"""
import sys
kind, out, corpus = sys.argv[1], sys.argv[2], sys.argv[3]
from tests.test_crash_safety import tiny_model
if kind == "index":
  from exsearch_jax import retrieval
  while True:
    retrieval.build(corpus, out, kind="bm25", progress=False)
elif kind == "model":
  import time
  import numpy as np
  from safetensors.numpy import save
  from exsearch_jax.models import hf_checkpoint, save_pretrained

  def slow_disk(tensors, path):  # a slow disk: half the file, a pause, the rest (kills land mid-file)
    data = save({k: np.ascontiguousarray(v) for k, v in tensors.items()})
    with open(path, "wb") as f:
      f.write(data[:len(data) // 2])
      f.flush()
      time.sleep(0.2)
      f.write(data[len(data) // 2:])

  hf_checkpoint.save_file = slow_disk
  model = tiny_model()
  while True:
    save_pretrained(model, out)
else:
  from exsearch_jax.checkpoint import RunCheckpoints
  from exsearch_jax.em.train_step import Trainer, make_optimizer
  trainer, checkpoints, step = Trainer(tiny_model(), make_optimizer()), RunCheckpoints(out), 0
  while True:
    step += 1
    checkpoints.save(step, trainer, {"done": [], "phase": None, "step": step})
"""


def tiny_model():
  from exsearch_jax.models import DecoderConfig, init_model

  return init_model(
      DecoderConfig(
          vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=32
      ),
      seed=0,
  )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  from exsearch_jax.data import world as W

  return W.write_world(W.make_world(0, "tiny"), str(tmp_path_factory.mktemp("world")))["corpus"]


def _kill_while_writing(kind, out, corpus, rng, written):
  """Starts the worker, waits until its first complete write, lets it rewrite for a random moment, kills it."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  proc = subprocess.Popen(
      [sys.executable, "-c", WORKER, kind, out, corpus],
      cwd=ROOT,
      env=env,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      start_new_session=True,
  )
  deadline = time.time() + 120
  while not written() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
  time.sleep(rng.uniform(0.0, 0.6))
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait()


def _search(retriever):
  return [[h.id for h in hits] for hits in retriever.search(["founded company", "river city", "born"], 5)]


@pytest.mark.slow  # ten processes killed and rerun
def test_an_index_killed_while_rebuilt_is_the_old_or_the_new_one(corpus, tmp_path):
  from exsearch_jax import retrieval

  expected = _search(retrieval.build(corpus, str(tmp_path / "reference"), kind="bm25", progress=False))
  out, rng = str(tmp_path / "index"), np.random.default_rng(0)
  for _ in range(KILLS):
    _kill_while_writing("index", out, corpus, rng, lambda: os.path.exists(os.path.join(out, "meta.json")))
    if os.path.exists(out):  # absent only when killed between the two renames
      assert _search(retrieval.load(out)) == expected
  assert _search(retrieval.build(corpus, out, kind="bm25", progress=False)) == expected  # the rerun
  assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p or ".old-" in p]


@pytest.mark.slow  # ten processes killed and rerun
def test_a_model_killed_while_saved_loads_whole(corpus, tmp_path):
  from exsearch_jax.models import from_pretrained, save_pretrained

  reference = [np.asarray(x) for x in jax.tree.leaves(tiny_model())]
  out, rng = str(tmp_path / "final_model"), np.random.default_rng(1)
  for _ in range(KILLS):
    _kill_while_writing("model", out, corpus, rng, lambda: os.path.exists(os.path.join(out, "config.json")))
    if os.path.exists(out):
      loaded = [np.asarray(x) for x in jax.tree.leaves(from_pretrained(out))]
      assert all(np.array_equal(a, b) for a, b in zip(loaded, reference))
  save_pretrained(tiny_model(), out)
  assert all(np.array_equal(np.asarray(a), b) for a, b in zip(jax.tree.leaves(from_pretrained(out)), reference))


@pytest.mark.slow  # ten processes killed and rerun
def test_a_checkpoint_killed_while_saved_restores(corpus, tmp_path):
  from exsearch_jax.checkpoint import RunCheckpoints
  from exsearch_jax.em.train_step import Trainer, make_optimizer

  out, rng = str(tmp_path / "checkpoints"), np.random.default_rng(2)
  reference = [np.asarray(x) for x in jax.tree.leaves(Trainer(tiny_model(), make_optimizer()).state.params)]
  steps = []
  for _ in range(KILLS):
    _kill_while_writing(
        "checkpoint",
        out,
        corpus,
        rng,
        lambda: RunCheckpoints(out).latest_step() is not None if os.path.exists(out) else False,
    )
    trainer = Trainer(tiny_model(), make_optimizer())
    position = RunCheckpoints(out).restore_latest(trainer)
    assert position is not None and position["step"] >= 1
    assert all(np.array_equal(np.asarray(a), b) for a, b in zip(jax.tree.leaves(trainer.state.params), reference))
    steps.append(position["step"])
  assert max(steps) > 1  # the kills landed while later checkpoints were being written


def test_append_line_cuts_a_torn_last_line(tmp_path):
  path = str(tmp_path / "log.jsonl")
  atomic.append_line(path, '{"a": 1}')
  with open(path, "a", encoding="utf-8") as f:
    f.write('{"b": ')  # killed mid-append
  atomic.append_line(path, '{"c": 3}')
  assert open(path, encoding="utf-8").read() == '{"a": 1}\n{"c": 3}\n'


def test_replaced_file_keeps_the_old_version_when_writing_fails(tmp_path):
  path = str(tmp_path / "x.txt")
  with atomic.replaced_file(path) as f:
    f.write("old")
  with pytest.raises(RuntimeError):
    with atomic.replaced_file(path) as f:
      f.write("new, half")
      raise RuntimeError("disk full")
  assert open(path, encoding="utf-8").read() == "old" and os.listdir(tmp_path) == ["x.txt"]


FULL_DISK = r"""
import errno, runpy, sys
import orbax.checkpoint as ocp
fail_at, saves, real_save = int(sys.argv[1]), [], ocp.CheckpointManager.save

def save(self, step, *args, **kwargs):  # the disk fills up during the fail_at-th checkpoint
  saves.append(step)
  if len(saves) == fail_at:
    raise OSError(errno.ENOSPC, "No space left on device", f"{self.directory}/{step}")
  return real_save(self, step, *args, **kwargs)

ocp.CheckpointManager.save = save
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_rerun_ends_equal(tmp_path):
  """The launcher stops with one line naming the file and what to do; the same command, rerun with space, resumes
  from the last complete checkpoint and ends with the parameters of an uninterrupted run of the same command."""
  from exsearch_jax.models import from_pretrained

  def command(workdir):
    return [os.path.join(ROOT, "launch", "train.py"), "--config=tests/tiny_config.py", f"--workdir={workdir}"]

  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", PYTHONPATH=ROOT)
  run = functools.partial(subprocess.run, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
  whole = run([sys.executable, *command(tmp_path / "whole")])
  assert whole.returncode == 0, whole.stderr[-2000:]
  full = run([sys.executable, "-c", FULL_DISK, "5", *command(tmp_path / "full")])
  lines = [line for line in full.stderr.splitlines() if line.startswith("error:")]
  assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-2000:]
  assert len(lines) == 1 and "No space left on device" in lines[0] and "rerun the same command" in lines[0]
  assert "checkpoints" in lines[0]
  rerun = run([sys.executable, *command(tmp_path / "full")])
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert "resuming" in rerun.stdout + rerun.stderr
  expected, resumed = (from_pretrained(str(tmp_path / name / "final_model")) for name in ("whole", "full"))
  for a, b in zip(jax.tree.leaves(_params(expected)), jax.tree.leaves(_params(resumed))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _params(model):
  from flax import nnx

  return nnx.state(model, nnx.Param)


def test_a_save_outlasts_a_suspended_machine(tmp_path):
  """Orbax gives a save 20 minutes of wall time by default, then raises: a run whose machine slept (or whose
  process was stopped) during a save died on resume (seen: a sweep stopped for 27 minutes). Run checkpoints
  allow a day; the save still waits for the disk before `save` returns."""
  from exsearch_jax.checkpoint import SAVE_TIMEOUT_S, RunCheckpoints
  from exsearch_jax.em.train_step import Trainer, make_optimizer

  checkpoints = RunCheckpoints(str(tmp_path / "checkpoints"))
  assert SAVE_TIMEOUT_S >= 24 * 3600
  assert checkpoints.manager._options.async_options.timeout_secs == SAVE_TIMEOUT_S  # pylint: disable=protected-access
  trainer = Trainer(tiny_model(), make_optimizer())
  checkpoints.save(1, trainer, {"done": [], "phase": None, "step": 1})
  assert checkpoints.latest_step() == 1 and not list(tmp_path.glob("checkpoints/*tmp*"))
