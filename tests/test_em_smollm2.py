"""One small EM iteration end to end with the real SmolLM2-135M preset: its own tokenizer and chat
template, warm-up, evaluation, rollout with the retriever, E-step weights and an M-step that changes
the weights. (The demo preset's from-scratch model covers the rest of the loop's behaviour.)"""

import json
import os

import jax
import numpy as np
import pytest

from exsearch_jax.config import get_config
from exsearch_jax.em.loop import EMRun

pytestmark = pytest.mark.slow


def small_smollm2_config():
  cfg = get_config("smollm2_135m")
  cfg.data.world_size = "tiny"
  cfg.data.dev_limit = 4
  cfg.rollout.update(dict(samples=2, max_steps=2, step_tokens=24, answer_tokens=8, capacity=1024, batch_rows=8))
  # replayed seeds give the M-step work even when no sampled trajectory is right yet
  cfg.em.update(
      dict(iterations=1, weights="uniform", questions_per_iteration=4, seed_trajectories=4, replay_seeds=True)
  )
  cfg.train.update(dict(batch_size=4, micro_batches=2, max_length=1024, learning_rate=1e-5))
  cfg.warmup.update(dict(epochs=3, learning_rate=5e-5))
  return cfg


def test_one_em_iteration_with_smollm2(tmp_path):
  run = EMRun(small_smollm2_config(), str(tmp_path), progress=False)
  before = [np.asarray(x) for x in jax.tree.leaves(run.params())]
  summary = run.run()
  after = [np.asarray(x) for x in jax.tree.leaves(run.params())]

  assert [r["iteration"] for r in summary["evals"]] == [0, 1]
  assert all(r["n"] == 4 for r in summary["evals"])
  with open(tmp_path / "metrics.jsonl", encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  estep = [r for r in rows if r.get("kind") == "estep"]
  assert len(estep) == 1 and estep[0]["trajectories"] == 8 and estep[0]["questions"] == 4
  train = [r for r in rows if r.get("kind") == "train"]
  assert {r["phase"] for r in train} == {"warmup/0", "mstep/1"}
  assert all(np.isfinite(r["loss"]) and not r["skipped"] for r in train)
  # warm-up and the M-step moved the real model's weights, and every weight stayed finite
  assert any(not np.array_equal(a, b) for a, b in zip(before, after))
  assert all(np.isfinite(a).all() for a in after)
  assert os.path.exists(tmp_path / "estep" / "1" / "trajectories.html")
