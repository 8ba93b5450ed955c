"""TFDS builder of the synthetic multi-hop world: `load_split("synthetic_world/demo_seed0", "dev")`.

The builder config fixes the world's size and seed, so a prepared dataset is the same world that
`launch/make_world.py --size SIZE --seed SEED` writes (questions only; the corpus is `corpus.jsonl`).
"""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from exsearch_jax.data.builders import QABuilder
from exsearch_jax.data.world import SIZES, make_world


@dataclasses.dataclass(eq=False)
class WorldConfig(tfds.core.BuilderConfig):
  size: str = "demo"
  seed: int = 0


def world_config(size: str, seed: int) -> WorldConfig:
  return WorldConfig(name=f"{size}_seed{seed}", description=f"The {size} world of seed {seed}.", size=size, seed=seed)


class SyntheticWorld(QABuilder):
  """Questions of the seeded fictional world (1-4 hops, bridge / compositional / comparison)."""

  name = "synthetic_world"
  BUILDER_CONFIGS = [world_config(size, 0) for size in SIZES]

  def _split_sources(self, dl_manager) -> dict:
    world = make_world(self.builder_config.seed, self.builder_config.size)
    return {split: world.splits[split] for split in ("train", "dev", "test")}

  def _generate_examples(self, source):
    yield from source
