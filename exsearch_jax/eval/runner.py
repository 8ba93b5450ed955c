"""Evaluation of a searcher: greedy rollouts on a question set, then EM/F1/Acc and search diagnostics.

Beyond the answer metrics it reports whether the model really searched: the share of gold passages
that appeared among its retrieved passages, and the share of correct answers whose gold passages were
all retrieved (a model that answers from memory scores high EM with a low share).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Sequence

import numpy as np

from exsearch_jax import distributed
from exsearch_jax.trajectory import StopReason
from exsearch_jax.eval import metrics
from exsearch_jax.sampling.rollout import RolloutConfig, rollout

RETRIEVAL_DEPTHS = (3, 5)


def _gold_and_retrieved(traj, question) -> tuple[set, list[list]]:
  """The question's supporting passages and each search's ranked results, both as titles when the question
  names its supporting titles (real benchmarks: a corpus passage is found by title), else as passage ids."""
  titles = question.get("supporting_titles") or []
  if titles:
    return set(titles), [s.retrieved_titles for s in traj.steps]
  return set(question.get("supporting_ids") or []), [s.retrieved_ids for s in traj.steps]


def retrieval_metrics(trajectories, questions, depths: Sequence[int] = RETRIEVAL_DEPTHS) -> dict:
  """Recall@k and Precision@k of the supporting passages over everything a trajectory retrieved (the paper's
  Table 2): the distinct passages in the top k of any of its searches; recall = the share of the gold
  passages among them, precision = the share of them that are gold (0 when it never searched). Means over
  the questions with known supporting passages (NaN when there are none)."""
  recall, precision = {k: [] for k in depths}, {k: [] for k in depths}
  for t, q in zip(trajectories, questions):
    gold, ranked = _gold_and_retrieved(t, q)
    if not gold:
      continue
    for k in depths:
      found = {p for results in ranked for p in results[:k]}
      recall[k].append(len(gold & found) / len(gold))
      precision[k].append(len(gold & found) / len(found) if found else 0.0)
  mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
  return {**{f"recall@{k}": mean(recall[k]) for k in depths}, **{f"precision@{k}": mean(precision[k]) for k in depths}}


def search_metrics(trajectories, questions) -> dict:
  """Gold-passage recall, correct-with-gold share, mean steps, parse share and stop reasons, one sample per question."""
  recall, correct_and_found, correct, steps = [], 0, 0, []
  for t, q in zip(trajectories, questions):
    gold, ranked = _gold_and_retrieved(t, q)
    found = {p for results in ranked for p in results}
    if gold:
      recall.append(len(gold & found) / len(gold))
    if metrics.exact_match(metrics.extract_answer(t.answer or ""), q["golden_answers"]):
      correct += 1
      correct_and_found += bool(gold) and gold <= found
    steps.append(len(t.steps))
  reasons = collections.Counter(t.stop_reason for t in trajectories)
  total = max(len(trajectories), 1)
  return {
      "gold_passage_recall": float(np.mean(recall)) if recall else float("nan"),
      "correct_with_gold_retrieved": correct_and_found / correct if correct else float("nan"),
      "mean_steps": float(np.mean(steps)) if steps else 0.0,
      "answered_share": reasons.get(StopReason.ANSWERED, 0) / total,
      # trajectories whose every turn the grammar of trajectory.py could read (none unparseable or cut off)
      "parse_share": 1.0 - (reasons.get(StopReason.UNPARSEABLE, 0) + reasons.get(StopReason.TRUNCATED, 0)) / total,
      "stop_reasons": dict(sorted(reasons.items())),
      **retrieval_metrics(trajectories, questions),
  }


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
  out["by_type"] = correct_by_type(trajectories, questions)
  return out, trajectories


def question_kind(question: dict) -> str:
  """A question's kind for per-kind tables: its `type`, with the hop count for compositional chains."""
  kind = question.get("type") or "unknown"
  return f"{kind}-{question['hops']}" if kind == "compositional" and question.get("hops") else kind


def correct_by_type(trajectories, questions) -> dict:
  """{kind: [correct, total]} by exact match, kinds in sorted order."""
  counts = collections.defaultdict(lambda: [0, 0])
  for right, q in zip(per_question_correct(trajectories, questions), questions):
    counts[question_kind(q)][0] += int(right)
    counts[question_kind(q)][1] += 1
  return dict(sorted(counts.items()))


def per_question_correct(trajectories, questions) -> np.ndarray:
  """1.0/0.0 exact match per question (for bootstrap intervals of gains)."""
  return np.array(
      [
          metrics.exact_match(metrics.extract_answer(t.answer or ""), q["golden_answers"])
          for t, q in zip(trajectories, questions)
      ]
  )


def bootstrap_gain(before: np.ndarray, after: np.ndarray, samples: int = 10_000, seed: int = 0) -> tuple:
  """95% paired bootstrap interval of mean(after) − mean(before), in points."""
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(before), (samples, len(before)))
  gains = (after[idx].mean(1) - before[idx].mean(1)) * 100
  return float(np.percentile(gains, 2.5)), float(np.percentile(gains, 97.5))
