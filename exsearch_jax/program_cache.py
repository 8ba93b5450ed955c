"""Keeps a long run's compiled programs under the kernel's limit on a process's memory mappings.

XLA's CPU backend maps each compiled kernel's code on its own: ~80 mappings for a small 30-layer program, some
25,000 for the rollout programs of one SmolLM2 E-step. Linux refuses a process more than `vm.max_map_count`
mappings (65,530 by default); past it LLVM fails with "Cannot allocate memory" and the process dies in a
segmentation fault. An EM run compiles new shapes in every iteration (longer trajectories, other batch
widths), and a sweep runs several EM runs in one process, so the count only grows: the `samples` sweep's K=8
run crashed that way in its fifth iteration. `release_if_crowded` drops JAX's compiled programs once the
process holds more than a share of the limit; the calls after it compile again. The EM loop checks before
each phase and the rollout between its chunks.
"""

from __future__ import annotations

import gc
from typing import Optional

from absl import logging

# Programs are dropped once a process holds this share of `vm.max_map_count`. The demo model's K=8 E-step needs
# ~35,000 mappings at once (at 0.5 its programs were dropped and compiled again four times in 15 minutes), and
# compiling adds up to ~7,000 a minute: at 0.75 a check between rollout chunks still leaves ~16,000 spare.
CROWDED_SHARE = 0.75
_MAPS, _LIMIT = "/proc/self/maps", "/proc/sys/vm/max_map_count"


def mappings() -> Optional[int]:
  """The memory mappings this process holds; None where the system does not say (no /proc)."""
  try:
    with open(_MAPS, "rb") as f:
      return sum(1 for _ in f)
  except OSError:
    return None


def mapping_limit() -> Optional[int]:
  try:
    with open(_LIMIT, encoding="ascii") as f:
      return int(f.read().strip())
  except (OSError, ValueError):
    return None


def release_if_crowded(share: float = CROWDED_SHARE, limit: Optional[int] = None) -> bool:
  """Drops every compiled JAX program when this process holds more than `share` of `limit` mappings
  (default: the system's `vm.max_map_count`); True when it did. Arrays are kept; programs compile again."""
  import jax

  held, limit = mappings(), limit if limit is not None else mapping_limit()
  if held is None or limit is None or held <= share * limit:
    return False
  jax.clear_caches()
  gc.collect()
  logging.warning(
      "%d of the system's %d memory mappings held (vm.max_map_count): compiled programs dropped, %s after; "
      "the next calls compile again",
      held,
      limit,
      mappings(),
  )
  return True
