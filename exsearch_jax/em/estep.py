"""The E-step: score log p(y*|x,z) for every sampled trajectory in batched jitted passes, weight them, and
turn them into M-step examples (the trajectory with the gold answer).

Scoring and weighing are apart because a multi-process run scores each process's share of the
trajectories and then weighs all of them together (weights are normalised per question)."""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from exsearch_jax.em import weights as W
from exsearch_jax.em.sequences import Example, pack, with_gold_answer
from exsearch_jax.eval import metrics
from exsearch_jax.sampling import engine


def gold_examples(trajectories, chat) -> list:
  """Each trajectory with its first gold answer in place of its own (None when it never reached the answer)."""
  return [with_gold_answer(t, chat.assistant_turn(t.gold_answer)) for t in trajectories]


def score(model, examples: Sequence, rows: int = 64, max_length: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """log p(answer tokens) and their count for each example (NaN where the example is None).

  The answer is each example's final run of trained tokens (`_answer_start`); tokens past `max_length`
  are not scored.
  """
  logp = np.full(len(examples), np.nan)
  count = np.zeros(len(examples))
  present = [i for i, e in enumerate(examples) if e is not None]
  graphdef, state = nnx.split(model)
  for start in range(0, len(present), rows):
    idx = present[start : start + rows]
    height = min(rows, engine.bucket(len(idx), minimum=8))  # a last, partial chunk is not padded to `rows`
    batch = pack([examples[i] for i in idx], 1, height, max_length)
    width = batch.tokens.shape[-1]
    starts, ends = np.ones(height, np.int32), np.ones(height, np.int32)
    for r, i in enumerate(idx):
      starts[r], ends[r] = _answer_start(examples[i]), min(len(examples[i].tokens), width)
    span = engine.bucket(int(max(ends - starts, default=1)), minimum=8)
    total, n = _answer_logprobs(graphdef, state, batch.tokens[0], batch.attention_mask[0], starts, ends, span=span)
    logp[idx], count[idx] = np.asarray(total)[: len(idx)], np.asarray(n)[: len(idx)]
  return logp, count


def _answer_start(example: Example) -> int:
  """The gold answer is the final run of trained tokens."""
  i = len(example.loss_mask)
  while i > 0 and example.loss_mask[i - 1]:
    i -= 1
  return i


@functools.partial(jax.jit, static_argnames=("graphdef", "span"))
def _answer_logprobs(graphdef, state, tokens, attention_mask, starts, ends, *, span):
  """Per row: the sum of log p(token t) over answer tokens starts <= t < ends, and how many there are.

  Only the `span` positions that predict the answer go through the output layer: the whole (rows, width,
  vocab) logits of a real model's vocabulary would take gigabytes (64 x 1024 x 49,152 floats: 12.9 GB).
  """
  model = nnx.merge(graphdef, state)
  hidden = model.hidden_states(tokens, attention_mask)
  width = tokens.shape[1]
  predicting = starts[:, None] - 1 + jnp.arange(span)[None, :]
  valid = (predicting + 1 < ends[:, None]) & (predicting >= 0)
  predicting = jnp.clip(predicting, 0, width - 1)
  logits = model.logits(jnp.take_along_axis(hidden, predicting[..., None], axis=1))
  targets = jnp.take_along_axis(tokens, jnp.minimum(predicting + 1, width - 1), axis=1)
  logp = -optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  return (logp * valid).sum(axis=1), valid.sum(axis=1).astype(jnp.float32)


def score_trajectories(model, chat, trajectories, rows: int = 64, max_length: int = 4096):
  """log p(y*|x,z) and the gold answer's token count per trajectory (NaN / 0 when it never reached the answer).

  A trajectory the rollout scored on its own cache (`rollout(score_gold=True)`) keeps that score when its example
  fits in `max_length`; the others are scored here with a full forward pass (the same numbers to float rounding).
  """
  examples = gold_examples(trajectories, chat)
  done = [
      t.gold_logprob is not None and e is not None and len(e.tokens) <= max_length
      for t, e in zip(trajectories, examples)
  ]
  logp, count = score(model, [None if d else e for d, e in zip(done, examples)], rows, max_length)
  for i in np.flatnonzero(done):
    logp[i], count[i] = trajectories[i].gold_logprob, trajectories[i].gold_tokens
  return logp, count


def weigh(
    chat, trajectories, logp: np.ndarray, count: np.ndarray, scheme: str, guard: float = 0.0
) -> tuple[list[Example], dict]:
  """Weights every scored trajectory (stored on it as `.weight`) and returns the weighted M-step examples."""
  examples = gold_examples(trajectories, chat)
  correct = np.array(
      [bool(t.answer) and metrics.exact_match(t.answer, t.golden_answers or []) > 0 for t in trajectories]
  )
  valid = np.array([W.is_valid(t) for t in trajectories]) & np.array([e is not None for e in examples])
  weights, stats = W.compute_weights(scheme, [t.question_id for t in trajectories], logp, count, correct, valid, guard)
  kept = []
  for t, e, w in zip(trajectories, examples, weights):
    t.weight = float(w)
    if e is not None and w > 0:
      kept.append(Example(e.tokens, e.loss_mask, float(w)))
  stats["examples"] = len(kept)
  return kept, stats
