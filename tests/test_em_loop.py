"""The EM run end to end on a tiny world: metrics, trajectories, plot, and resume to bit-identical
parameters after a kill between EM iterations and one in the middle of an M-step."""

import json
import os

import jax
import numpy as np
import pytest

from exsearch_jax.em.loop import EMRun, Phase, RunHalted, phases
from exsearch_jax.errors import ConfigError
from tests.tiny_config import get_config as tiny_config


def _params(run):
  return [np.asarray(x) for x in jax.tree.leaves(run.params())]


def test_run_writes_metrics_trajectories_and_plot(tiny_run):
  workdir, summary, _ = tiny_run
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  evals = [r for r in rows if r["kind"] == "eval"]
  assert [r["iteration"] for r in evals] == [0, 1, 2]
  assert all({"em", "f1", "acc", "split", "gold_passage_recall"} <= set(r) for r in evals)
  esteps = [r for r in rows if r["kind"] == "estep"]
  assert len(esteps) == 2 and all("effective_sample_size" in r and "log_marginal_bound" in r for r in esteps)
  assert any(r["kind"] == "train" and r["phase"] == "mstep/1" for r in rows)  # the M-step really trained
  for name in (
      "em_curve.png",
      "summary.json",
      "estep/1/trajectories.html",
      "estep/1/trajectories.jsonl",
      "eval/2/trajectories.html",
  ):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  assert "warm-up" in summary["table"] and len(summary["em_gain_95ci"]) == 2
  assert os.listdir(os.path.join(workdir, "tensorboard"))


@pytest.mark.parametrize("halt_at", [("eval/1", None), ("mstep/2", 2)], ids=["after-iteration-1", "mid-m-step"])
def test_killed_run_resumes_to_identical_parameters(tiny_run, tmp_path, halt_at):
  _, _, expected = tiny_run
  workdir = str(tmp_path)
  with pytest.raises(RunHalted):
    EMRun(tiny_config(), workdir, progress=False).run(halt_at=halt_at)
  resumed, finished = EMRun(tiny_config(), workdir, progress=False), []
  resumed.run(on_phase=finished.append)  # told of each phase it ran, after its save
  order = [str(p) for p in phases(tiny_config())]
  assert [str(p) for p in finished] == order[order.index(halt_at[0]) + (1 if halt_at[1] is None else 0) :]
  for a, b in zip(expected, _params(resumed)):
    np.testing.assert_array_equal(a, b)
  evals = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert {r["iteration"] for r in evals if r["kind"] == "eval"} == {0, 1, 2}


def test_phase_list_follows_the_config():
  cfg = tiny_config()
  assert [str(p) for p in phases(cfg)] == [
      "stage0/0",
      "warmup/0",
      "eval/0",
      "estep/1",
      "mstep/1",
      "eval/1",
      "estep/2",
      "mstep/2",
      "eval/2",
  ]
  assert Phase.parse("mstep/2") == Phase("mstep", 2) and Phase("mstep", 2).trains and not Phase("eval", 1).trains
  with pytest.raises(ValueError, match="not a phase"):
    Phase("rest", 1)
  cfg.stage0.examples = 0
  assert str(phases(cfg)[0]) == "warmup/0"


def test_warmup_mixes_in_fresh_stage0_tasks(tiny_run):
  workdir = tiny_run[0]
  cfg = tiny_config()
  cfg.warmup.stage0_mix = 0
  seeds = EMRun(cfg, workdir, progress=False)._examples("warmup", 0)
  cfg.warmup.stage0_mix = 5
  run = EMRun(cfg, workdir, progress=False)
  mixed, stage0 = run._examples("warmup", 0), run._examples("stage0", 0)
  assert mixed[: len(seeds)] == seeds and len(mixed) == len(seeds) + 5
  assert not {e.tokens for e in mixed[len(seeds) :]} & {e.tokens for e in stage0}  # new tasks, not stage 0's


def test_seeds_that_take_every_train_question_are_a_config_error(tmp_path):
  cfg = tiny_config()
  cfg.em.seed_trajectories = 10_000
  with pytest.raises(ConfigError, match="no train question is left for the E-step"):
    EMRun(cfg, str(tmp_path), progress=False)
