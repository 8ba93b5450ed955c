"""ScaNN: partitioning tree + anisotropic hashing + exact re-ordering, sized from the corpus."""

from __future__ import annotations

import math
import os

import numpy as np

BRUTE_FORCE_BELOW = 20_000


def default_options(n: int) -> dict:
  """Parameters scaled to the corpus: about sqrt(n) leaves, searching 1/8 of them, re-ordering 100.

  Below BRUTE_FORCE_BELOW passages a tree saves nothing worth its recall loss (on 1,000 real passages
  31 leaves / 4 searched found only 62% of the exact top-10), so ScaNN scores them all.
  """
  leaves = 1 if n < BRUTE_FORCE_BELOW else min(int(math.sqrt(n)), 4096)
  return dict(
      num_leaves=leaves,
      num_leaves_to_search=max(1, math.ceil(leaves / 8)),
      training_sample_size=min(n, 250_000),
      dimensions_per_block=2,
      anisotropic_quantization_threshold=0.2,
      reorder=100,
  )


class ScannIndex:

  def __init__(self, searcher):
    self._searcher = searcher

  @classmethod
  def build(cls, embeddings: np.ndarray, **options) -> "ScannIndex":
    from scann.scann_ops.py import scann_ops_pybind

    opts = {**default_options(len(embeddings)), **options}
    builder = scann_ops_pybind.builder(np.ascontiguousarray(embeddings, np.float32), 10, "dot_product")
    if opts["num_leaves"] < 2:
      builder = builder.score_brute_force()
    else:
      builder = builder.tree(
          num_leaves=opts["num_leaves"],
          num_leaves_to_search=opts["num_leaves_to_search"],
          training_sample_size=opts["training_sample_size"],
      )
      builder = builder.score_ah(
          opts["dimensions_per_block"], anisotropic_quantization_threshold=opts["anisotropic_quantization_threshold"]
      )
      builder = builder.reorder(opts["reorder"])
    return cls(builder.build())

  def save(self, directory: str) -> None:
    """ScaNN records its asset paths as given and reads them back from elsewhere, so they must be absolute
    (a relative workdir gave "Error loading artifacts: File too short" on load)."""
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    self._searcher.serialize(directory)

  @classmethod
  def load(cls, directory: str) -> "ScannIndex":
    """Loads the artifacts in `directory` wherever they were written: the asset paths ScaNN recorded at save
    time are pointed at this directory's files, so an index moved with its workdir (or built into a temporary
    directory and renamed, or copied to each host) loads. Never reads a pickled docids file."""
    import re
    from scann.scann_ops.py import scann_ops_pybind
    from exsearch_jax.retrieval.index import RetrievalIndexError

    directory = os.path.abspath(directory)
    assets = os.path.join(directory, "scann_assets.pbtxt")
    if not os.path.exists(assets):
      raise RetrievalIndexError(f"{directory}: no scann_assets.pbtxt; not a ScaNN index saved by this package")
    if os.path.exists(os.path.join(directory, "scann_docids.pkl")):
      raise RetrievalIndexError(f"{directory}: holds a pickled docids file, which is never loaded; rebuild the index")
    with open(assets, encoding="utf-8") as f:
      text = re.sub(
          r'asset_path: "([^"]*)"',
          lambda m: f'asset_path: "{os.path.join(directory, os.path.basename(m.group(1)))}"',
          f.read(),
      )
    return cls(scann_ops_pybind.ScannSearcher(scann_ops_pybind.scann_pybind.ScannNumpy(directory, text), None))

  def search(self, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ids, scores = self._searcher.search_batched(np.ascontiguousarray(query_vectors, np.float32), final_num_neighbors=k)
    return np.asarray(scores), np.asarray(ids).astype(np.int64)
