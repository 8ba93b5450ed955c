"""The static shapes of a `DecodeSession`'s calls: rows, prefill widths, attention windows, packed sizes and
length groups, bucketed so that a run compiles a handful of programs and pays little for padding."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

# Length groups are prefilled apart when they compute at most this share of one call's padded slots: prompts
# (`start`, once per session: every group also costs a copy of its cache rows and programs to compile) and the
# turns appended after a search (`extend`, every turn, in place: measured in docs/benchmarks.md with
# `benchmarks/rollout_breakdown.py`).
PROMPT_SAVING, APPEND_SAVING = 0.5, 0.9
# A decode round of R rows returns to the host once at most R/SHRINK_SHARE are still running, when that is at
# least SHRINK_ROWS, and goes on with those rows alone: a turn's few long rows stop paying for the batch's
# finished ones (measured in docs/benchmarks.md with `benchmarks/rollout_breakdown.py`).
SHRINK_SHARE, SHRINK_ROWS = 2, 8


def bucket(n: int, minimum: int = 16) -> int:
  return max(minimum, 1 << max(0, int(n) - 1).bit_length())


def attention_window(need: int, capacity: int) -> int:
  """Cache slots the attention reads when no row will hold more than `need`: a power of two (>= 128), at most
  `capacity`. Slots past a row's length are masked to zeros, so the window changes the time, and float rounding
  only (XLA sums a short dot in another order): attention over an 8,192-slot cache whose rows hold 300 tokens
  reads 512 slots."""
  return min(int(capacity), bucket(need, minimum=128))


def prefill_kwargs(held: int, width: int, need: int, capacity: int) -> dict:
  """`window` and `held_bound` of a prefill of `width` tokens onto rows holding <= `held` tokens, <= `need` after:
  where the cache has room, a window with `width` slots to spare past `held`, so query blocks may stop at their
  diagonal (held_bound = window - width: static, one program per window and width)."""
  if held + width <= capacity:
    window = attention_window(held + width, capacity)
    return {"window": window, "held_bound": window - width}
  return {"window": attention_window(need, capacity), "held_bound": None}


def length_groups(lengths: Sequence[int], shards: int = 1, saving: float = PROMPT_SAVING) -> list[list[int]]:
  """Indices of prompts (or of a turn's appends) to prefill together: one group per prefill width, when that
  computes at most `saving` of the padded tokens of one batch at the longest one's width (16 prompts of 37-360
  tokens: 43%), else one group. Each group is a batch of its own (rows a power of two that `shards` divides):
  more programs to compile, far less padding."""
  rows = lambda n: -(-bucket(n, minimum=1) // shards) * shards  # noqa: E731
  widths = [prefill_width(max(n, 1)) for n in lengths]
  groups: dict[int, list[int]] = {}
  for i, w in sorted(enumerate(widths), key=lambda iw: iw[1]):
    groups.setdefault(w, []).append(i)
  together = rows(len(lengths)) * max(widths, default=16)
  if len(groups) > 1 and sum(rows(len(g)) * w for w, g in groups.items()) <= saving * together:
    return list(groups.values())
  return [list(range(len(lengths)))]


def prefill_width(n: int) -> int:
  """Powers of two and 3/4 of them: a prefill pays for its padding, so waste <= 1/3 for 2x the programs."""
  b = bucket(n)
  return b * 3 // 4 if b * 3 // 4 >= max(n, 16) else b


# A prefill packs its real tokens (`Decoder.decode`'s `packing`: the dense layers compute those only) when their
# packed size is at most this share of the call's (rows, width) slots; above it the gathers cost what they save.
PACK_SAVING = 0.85


def packed_size(n: int) -> int:
  """Entries of a packed prefill of n real tokens: a multiple of an eighth of the power of two above n (>= 64),
  so <= 25% waste, four programs per octave."""
  step = max(8, bucket(n, minimum=64) // 8)
  return max(64, -(-int(n) // step) * step)


def packing_index(mask: np.ndarray, saving: float = PACK_SAVING) -> Optional[np.ndarray]:
  """`Decoder.decode`'s `packing` for a (rows, width) real-token mask: the flat positions of the real tokens in
  order, then rows*width for each unused entry; None when packing would not save enough (`PACK_SAVING`)."""
  real = np.flatnonzero(np.asarray(mask).reshape(-1))
  size = packed_size(len(real))
  if size > saving * mask.size:
    return None
  return np.concatenate([real, np.full(size - len(real), mask.size)]).astype(np.int32)
