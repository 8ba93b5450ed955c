"""BM25 (Lucene variant) via the bm25s library: sparse-matrix scoring, saved with the index."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _tokens(texts: Sequence[str]) -> list[list[str]]:
  import bm25s

  return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


class BM25Index:

  def __init__(self, model):
    self._model = model

  @classmethod
  def build(cls, texts: Sequence[str], k1: float = 1.5, b: float = 0.75) -> "BM25Index":
    import bm25s

    model = bm25s.BM25(k1=k1, b=b)
    model.index(bm25s.tokenize(list(texts), stopwords="en", show_progress=False), show_progress=False)
    return cls(model)

  def save(self, directory: str) -> None:
    self._model.save(directory)

  @classmethod
  def load(cls, directory: str) -> "BM25Index":
    import bm25s

    return cls(bm25s.BM25.load(directory))

  def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, self._model.scores["num_docs"])
    ids, scores = self._model.retrieve(_tokens(queries), k=k, show_progress=False, n_threads=1)
    return np.asarray(scores), np.asarray(ids).astype(np.int64)
