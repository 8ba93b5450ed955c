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
import dataclasses
from typing import Callable, Sequence

import numpy as np

from exsearch_jax.trajectory import StopReason


def is_valid(traj, max_empty_facts: int = 2) -> bool:
  if traj.stop_reason != StopReason.ANSWERED or not traj.answer:
    return False
  empty = sum(1 for s in traj.steps if not (s.fact or "").strip())
  return empty <= max_empty_facts


@dataclasses.dataclass(frozen=True)
class Samples:
  """One E-step's scored samples, as every weighting scheme reads them."""

  questions: list[np.ndarray]  # the indices of each question's samples
  prob: np.ndarray  # p(y*|x,z), 0 where invalid
  mean_nll: np.ndarray  # mean negative log-likelihood per answer token, 0 where invalid
  valid: np.ndarray
  correct: np.ndarray


Scheme = Callable[[Samples], np.ndarray]
SCHEMES: dict[str, Scheme] = {}  # name -> the scheme's weights per sample


def scheme(name: str) -> Callable[[Scheme], Scheme]:
  """Registers a weighting under `name` (then a valid `config.em.weights` and an arm of the weighting experiment)."""

  def register(fn: Scheme) -> Scheme:
    SCHEMES[name] = fn
    return fn

  return register


def _per_question(values: np.ndarray, s: Samples) -> np.ndarray:
  """`values` normalised to sum 1 within each question (a question whose values are all 0 stays 0)."""
  out = np.zeros_like(values)
  for idx in s.questions:
    total = values[idx].sum()
    if total > 0:
      out[idx] = values[idx] / total
  return out


@scheme("paper")
def _paper(s: Samples) -> np.ndarray:
  return _per_question(s.prob, s)


@scheme("code")
def _code(s: Samples) -> np.ndarray:
  return np.where(s.valid, 4.0 * np.exp(-s.mean_nll), 0.0)


@scheme("uniform")
def _uniform(s: Samples) -> np.ndarray:
  return s.valid.astype(np.float64)


@scheme("rejection")
def _rejection(s: Samples) -> np.ndarray:
  return (s.valid & s.correct).astype(np.float64)


@scheme("balanced")
def _balanced(s: Samples) -> np.ndarray:
  weights = _per_question(_rejection(s), s)
  return weights * (np.count_nonzero(weights) / weights.sum()) if weights.sum() > 0 else weights


def compute_weights(
    scheme: str,
    groups: Sequence[str],
    answer_logprob: np.ndarray,
    answer_tokens: np.ndarray,
    correct: np.ndarray,
    valid: np.ndarray,
    guard: float = 0.0,
) -> tuple[np.ndarray, dict]:
  """Weights per trajectory and E-step statistics. `groups[i]` is trajectory i's question id."""
  if scheme not in SCHEMES:
    raise ValueError(f"unknown weighting {scheme!r}; choose one of {tuple(SCHEMES)}")
  logp = np.asarray(answer_logprob, np.float64)
  valid = np.asarray(valid, bool) & np.isfinite(logp)
  correct = np.asarray(correct, bool)
  prob = np.where(valid, np.exp(np.where(valid, logp, -np.inf)), 0.0)
  mean_nll = np.where(valid, -np.where(valid, logp, 0.0) / np.maximum(np.asarray(answer_tokens, np.float64), 1.0), 0.0)
  members = collections.defaultdict(list)
  for i, g in enumerate(groups):
    members[g].append(i)
  questions = [np.asarray(idx) for idx in members.values()]
  kept = np.ones_like(valid)  # the guard: a question whose best sample is below it gets no weight at all
  for idx in questions:
    kept[idx] = not (guard > 0 and prob[idx].max(initial=0.0) < guard)
  samples = Samples(questions, np.where(kept, prob, 0.0), mean_nll, valid & kept, correct)
  weights = SCHEMES[scheme](samples).astype(np.float64)
  entropies, no_correct, bound = [], 0, []
  for idx in questions:
    no_correct += not (correct[idx] & valid[idx]).any()
    bound.append(np.log(max(prob[idx].mean(), 1e-30)))
    w = weights[idx]
    if w.sum() > 0:
      q = w / w.sum()
      entropies.append(float(-(q[q > 0] * np.log(q[q > 0])).sum()))
  dropped = sum(not kept[idx].all() for idx in questions)
  total = weights.sum()
  stats = {
      "weight_scheme": scheme,
      "trajectories": int(len(weights)),
      "valid_share": float(valid.mean()) if len(valid) else 0.0,
      "correct_share": float((correct & valid).mean()) if len(valid) else 0.0,
      "questions_without_correct_sample": float(no_correct / max(len(members), 1)),
      "questions_dropped_by_guard": int(dropped),
      "effective_sample_size": float(total**2 / np.square(weights).sum()) if total > 0 else 0.0,
      "weight_entropy": float(np.mean(entropies)) if entropies else 0.0,
      "weight_sum": float(total),
      # Monte-Carlo estimate of the GEM objective log p(y*|x) ≥ E_z log p(y*|x,z): mean log mean_z p(y*|x,z)
      "log_marginal_bound": float(np.mean(bound)) if bound else float("nan"),
  }
  return weights, stats
