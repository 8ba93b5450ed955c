"""Training sequences for the M-step, and their packing into padded, bucketed batches.

An `Example` is one token sequence, the mask of tokens the loss trains on (what the model writes:
sub-queries, facts, the final marker, the answer), and its E-step weight. A sampled trajectory becomes
an example with the *gold* answer in place of the sampled one, so the M-step maximises
w(z)·[log p(z|x) + log p(y*|x,z)] as GEM asks.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Optional, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Example:
  tokens: tuple
  loss_mask: tuple
  weight: float = 1.0

  def to_json(self) -> dict:
    return {"tokens": list(self.tokens), "loss_mask": [int(m) for m in self.loss_mask], "weight": self.weight}

  @classmethod
  def from_json(cls, row: dict) -> "Example":
    return cls(tuple(row["tokens"]), tuple(bool(m) for m in row["loss_mask"]), float(row["weight"]))


def with_gold_answer(traj, answer: Sequence[int], weight: float = 1.0) -> Optional[Example]:
  """The trajectory up to its answer request, then the gold answer turn's tokens `answer` (all trained on). None
  if never asked."""
  if traj.answer_start < 0:
    return None
  cut = traj.answer_start
  return Example(
      tuple(traj.tokens[:cut]) + tuple(answer), tuple(traj.loss_mask[:cut]) + (True,) * len(answer), float(weight)
  )


@dataclasses.dataclass(frozen=True)
class Batch:
  """(micro_batches, rows, length) arrays; rows with weight 0 and no mask are padding."""

  tokens: np.ndarray
  loss_mask: np.ndarray
  attention_mask: np.ndarray
  weights: np.ndarray

  @property
  def real_tokens(self) -> int:
    return int(self.attention_mask.sum())


def pack(examples: Sequence[Example], micro_batches: int, rows: int, max_length: int, granularity: int = 64) -> Batch:
  """Right-pads examples (cut to `max_length`) into one batch of `micro_batches` × `rows` sequences.

  The width is the longest example rounded up to `granularity`, so a run compiles a few widths only.
  """
  total = micro_batches * rows
  if len(examples) > total:
    raise ValueError(f"{len(examples)} examples do not fit {micro_batches} x {rows}")
  longest = max(len(e.tokens) for e in examples)
  width = min(max_length, -(-longest // granularity) * granularity)
  tokens = np.zeros((total, width), np.int32)
  loss_mask = np.zeros((total, width), bool)
  attention = np.zeros((total, width), bool)
  weights = np.zeros((total,), np.float32)
  for i, e in enumerate(examples):
    n = min(len(e.tokens), width)
    tokens[i, :n], loss_mask[i, :n], attention[i, :n], weights[i] = e.tokens[:n], e.loss_mask[:n], True, e.weight
  shape = (micro_batches, rows)
  return Batch(
      tokens.reshape(*shape, width),
      loss_mask.reshape(*shape, width),
      attention.reshape(*shape, width),
      weights.reshape(shape),
  )


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, iteration: int, epoch: int, window: int = 16
) -> list[np.ndarray]:
  """One epoch's batches of example indices, fixed by (seed, iteration, epoch) so a resumed run replays it.

  Examples are shuffled, sorted by length inside windows of `window` batches (less padding: attention
  cost grows with the square of the width), cut into batches, and the batches shuffled again.
  """
  rng = np.random.default_rng([seed, iteration, epoch])
  order = rng.permutation(len(lengths))
  span = batch_size * window
  out = []
  for start in range(0, len(order), span):
    chunk = sorted(order[start : start + span], key=lambda i: (lengths[i], i))
    out += [np.asarray(chunk[b : b + batch_size]) for b in range(0, len(chunk), batch_size)]
  return [out[i] for i in rng.permutation(len(out))]


def batches(
    examples: Sequence[Example],
    batch_size: int,
    micro_batches: int,
    max_length: int,
    seed: int,
    iteration: int,
    epochs: int,
    start: int = 0,
) -> Iterator[tuple[int, Batch]]:
  """(global step, batch) over `epochs` shuffled passes, skipping the first `start` steps (resume)."""
  if batch_size % micro_batches:
    raise ValueError(f"batch size {batch_size} is not a multiple of micro_batches {micro_batches}")
  kept = [e for e in examples if e.weight > 0 and any(e.loss_mask)]
  lengths = [len(e.tokens) for e in kept]
  step = 0
  for epoch in range(epochs):
    for chosen in epoch_batches(lengths, batch_size, seed, iteration, epoch):
      if step >= start:
        yield step, pack([kept[i] for i in chosen], micro_batches, batch_size // micro_batches, max_length)
      step += 1


def steps_per_run(examples: Sequence[Example], batch_size: int, epochs: int) -> int:
  kept = sum(1 for e in examples if e.weight > 0 and any(e.loss_mask))
  return -(-kept // batch_size) * epochs
