"""Evaluation of a searcher: greedy rollouts on a question set, then EM/F1/Acc and search diagnostics.

Beyond the answer metrics it reports whether the model really searched: the share of gold passages
that appeared among its retrieved passages, and the share of correct answers whose gold passages were
all retrieved (a model that answers from memory scores high EM with a low share).
"""
from __future__ import annotations

import collections
import dataclasses

import numpy as np

from exsearch_jax import distributed
from exsearch_jax.eval import metrics
from exsearch_jax.sampling.rollout import RolloutConfig, rollout


def search_metrics(trajectories, questions) -> dict:
  """Gold-passage recall, correct-with-gold share, mean steps and stop reasons for one sample per question."""
  recall, correct_and_found, correct, steps = [], 0, 0, []
  for t, q in zip(trajectories, questions):
    gold = set(q.get("supporting_ids") or [])
    found = {pid for s in t.steps for pid in s["retrieved_ids"]}
    if gold:
      recall.append(len(gold & found) / len(gold))
    if metrics.exact_match(metrics.extract_answer(t.answer or ""), q["golden_answers"]):
      correct += 1
      correct_and_found += bool(gold) and gold <= found
    steps.append(len(t.steps))
  reasons = collections.Counter(t.stop_reason for t in trajectories)
  return {"gold_passage_recall": float(np.mean(recall)) if recall else float("nan"),
          "correct_with_gold_retrieved": correct_and_found / correct if correct else float("nan"),
          "mean_steps": float(np.mean(steps)) if steps else 0.0,
          "answered_share": reasons.get("answered", 0) / max(len(trajectories), 1),
          "stop_reasons": dict(sorted(reasons.items()))}


def evaluate(model, chat, retriever, questions, cfg: RolloutConfig, mesh=None, progress: bool = False):
  """Greedy, one sample per question. Returns (metrics dict, trajectories); EM/F1/Acc in percent.

  In a multi-process run each process answers its share of the questions (`model` and `mesh` on its own
  devices) and every process gets all trajectories back, so the metrics are those of the whole set.
  """
  greedy = dataclasses.replace(cfg, samples=1, temperature=0.0)
  mine = rollout(model, chat, retriever, distributed.share(questions), greedy, mesh=mesh, progress=progress)
  trajectories = distributed.gather_shares(mine, len(questions))
  answers = [metrics.extract_answer(t.answer or "") for t in trajectories]
  scores = metrics.corpus_metrics(answers, [q["golden_answers"] for q in questions])
  out = {k: (100.0 * v if k in ("em", "f1", "acc") else v) for k, v in scores.items()}
  out.update(search_metrics(trajectories, questions))
  return out, trajectories


def per_question_correct(trajectories, questions) -> np.ndarray:
  """1.0/0.0 exact match per question (for bootstrap intervals of gains)."""
  return np.array([metrics.exact_match(metrics.extract_answer(t.answer or ""), q["golden_answers"])
                   for t, q in zip(trajectories, questions)])


def bootstrap_gain(before: np.ndarray, after: np.ndarray, samples: int = 10_000, seed: int = 0) -> tuple:
  """95% paired bootstrap interval of mean(after) − mean(before), in points."""
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(before), (samples, len(before)))
  gains = (after[idx].mean(1) - before[idx].mean(1)) * 100
  return float(np.percentile(gains, 2.5)), float(np.percentile(gains, 97.5))
