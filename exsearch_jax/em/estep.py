"""The E-step: score log p(y*|x,z) for every sampled trajectory in batched jitted passes, weight them, and
turn them into M-step examples (the trajectory with the gold answer).

Scoring and weighing are apart because a multi-process run scores each process's share of the
trajectories and then weighs all of them together (weights are normalised per question)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from exsearch_jax.em import weights as W
from exsearch_jax.em.sequences import Example, pack, with_gold_answer
from exsearch_jax.em.train_step import score_answers
from exsearch_jax.eval import metrics


def gold_examples(trajectories, chat) -> list:
  """Each trajectory with its first gold answer in place of its own (None when it never reached the answer)."""
  out = []
  for t in trajectories:
    gold = (t.golden_answers or [""])[0]
    out.append(with_gold_answer(t, chat.encode(gold), chat.end_of_turn))
  return out


def score(model, examples: Sequence, rows: int = 64, max_length: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """log p(answer tokens) and their count for each example (NaN where the example is None)."""
  logp = np.full(len(examples), np.nan)
  count = np.zeros(len(examples))
  present = [i for i, e in enumerate(examples) if e is not None]
  for start in range(0, len(present), rows):
    idx = present[start:start + rows]
    answer_only = []
    for i in idx:  # only the gold answer is scored: mask everything before the answer turn
      e = examples[i]
      n_answer = len(e.tokens) - _answer_start(e)
      answer_only.append(Example(e.tokens, (False,) * (len(e.tokens) - n_answer) + (True,) * n_answer))
    total, n = score_answers(model, pack(answer_only, 1, rows, max_length))
    logp[idx], count[idx] = total[:len(idx)], n[:len(idx)]
  return logp, count


def _answer_start(example: Example) -> int:
  """The gold answer is the final run of trained tokens."""
  i = len(example.loss_mask)
  while i > 0 and example.loss_mask[i - 1]:
    i -= 1
  return i


def score_trajectories(model, chat, trajectories, rows: int = 64, max_length: int = 4096):
  """log p(y*|x,z) and the gold answer's token count per trajectory (NaN / 0 when it never reached the answer)."""
  return score(model, gold_examples(trajectories, chat), rows, max_length)


def weigh(chat, trajectories, logp: np.ndarray, count: np.ndarray, scheme: str,
          guard: float = 0.0) -> tuple[list[Example], dict]:
  """Weights every scored trajectory (stored on it as `.weight`) and returns the weighted M-step examples."""
  examples = gold_examples(trajectories, chat)
  correct = np.array([bool(t.answer) and metrics.exact_match(t.answer, t.golden_answers or []) > 0
                      for t in trajectories])
  valid = np.array([W.is_valid(t) for t in trajectories]) & np.array([e is not None for e in examples])
  weights, stats = W.compute_weights(scheme, [t.question_id for t in trajectories], logp, count, correct, valid,
                                     guard)
  kept = []
  for t, e, w in zip(trajectories, examples, weights):
    t.weight = float(w)
    if e is not None and w > 0:
      kept.append(Example(e.tokens, e.loss_mask, float(w)))
  stats["examples"] = len(kept)
  return kept, stats
