"""E-step weights over the n sampled trajectories of each question.

  paper      p(y*|x,z) normalised over the question's samples (the paper's w(z) ∝ p(y*|x,z; θ_t))
  code       4·exp(−mean NLL of y*), unnormalised (the reference implementation)
  uniform    1 for every valid trajectory
  rejection  1 if the trajectory's own final answer is right, else 0
  balanced   rejection, but every question with a right sample carries the same total weight (1/k for each
             of its k right samples, rescaled to average 1), so questions that are right 4 times out of 4
             (easy ones, lucky yes/no guesses) do not outweigh a multi-hop question right once

Invalid trajectories (unparseable, no answer, a non-finite score, more than two empty facts) get 0.
`guard` drops questions whose best p(y*|x,z) is below it: with normalised weights every question
otherwise carries total weight 1 even when all its samples are wrong, which teaches the model to
memorise question → answer instead of searching.
"""
from __future__ import annotations

import collections
from typing import Sequence

import numpy as np

from exsearch_jax.trajectory import StopReason

SCHEMES = ("paper", "code", "uniform", "rejection", "balanced")


def is_valid(traj, max_empty_facts: int = 2) -> bool:
  if traj.stop_reason != StopReason.ANSWERED or not traj.answer:
    return False
  empty = sum(1 for s in traj.steps if not (s.fact or "").strip())
  return empty <= max_empty_facts


def compute_weights(scheme: str, groups: Sequence[str], answer_logprob: np.ndarray, answer_tokens: np.ndarray,
                    correct: np.ndarray, valid: np.ndarray, guard: float = 0.0) -> tuple[np.ndarray, dict]:
  """Weights per trajectory and E-step statistics. `groups[i]` is trajectory i's question id."""
  if scheme not in SCHEMES:
    raise ValueError(f"unknown weighting {scheme!r}; choose one of {SCHEMES}")
  logp = np.asarray(answer_logprob, np.float64)
  valid = np.asarray(valid, bool) & np.isfinite(logp)
  correct = np.asarray(correct, bool)
  prob = np.where(valid, np.exp(np.where(valid, logp, -np.inf)), 0.0)
  if scheme == "paper":
    weights = np.zeros_like(prob)
  elif scheme == "code":
    mean_nll = -logp / np.maximum(np.asarray(answer_tokens, np.float64), 1.0)
    weights = np.where(valid, 4.0 * np.exp(-np.where(valid, mean_nll, 0.0)), 0.0)
  elif scheme == "uniform":
    weights = valid.astype(np.float64)
  else:
    weights = (valid & correct).astype(np.float64)
  members = collections.defaultdict(list)
  for i, g in enumerate(groups):
    members[g].append(i)
  entropies, dropped, no_correct, bound = [], 0, 0, []
  for idx in members.values():
    idx = np.asarray(idx)
    best = prob[idx].max(initial=0.0)
    if scheme == "paper" and prob[idx].sum() > 0:
      weights[idx] = prob[idx] / prob[idx].sum()
    if scheme == "balanced" and weights[idx].sum() > 0:
      weights[idx] = weights[idx] / weights[idx].sum()
    if guard > 0 and best < guard:
      weights[idx] = 0.0
      dropped += 1
    no_correct += not (correct[idx] & valid[idx]).any()
    bound.append(np.log(max(prob[idx].mean(), 1e-30)))
    w = weights[idx]
    if w.sum() > 0:
      q = w / w.sum()
      entropies.append(float(-(q[q > 0] * np.log(q[q > 0])).sum()))
  if scheme == "balanced" and weights.sum() > 0:
    weights *= np.count_nonzero(weights) / weights.sum()
  total = weights.sum()
  stats = {
      "weight_scheme": scheme,
      "trajectories": int(len(weights)),
      "valid_share": float(valid.mean()) if len(valid) else 0.0,
      "correct_share": float((correct & valid).mean()) if len(valid) else 0.0,
      "questions_without_correct_sample": float(no_correct / max(len(members), 1)),
      "questions_dropped_by_guard": int(dropped),
      "effective_sample_size": float(total ** 2 / np.square(weights).sum()) if total > 0 else 0.0,
      "weight_entropy": float(np.mean(entropies)) if entropies else 0.0,
      "weight_sum": float(total),
      # Monte-Carlo estimate of the GEM objective log p(y*|x) ≥ E_z log p(y*|x,z): mean log mean_z p(y*|x,z)
      "log_marginal_bound": float(np.mean(bound)) if bound else float("nan"),
  }
  return weights, stats
