"""Exact maximum inner product search on device: chunked matmul + running top-k, one jitted program."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnames=("k",))
def _search(chunks, valid, queries, k):
  """chunks (C, chunk, d); valid (C, chunk); queries (q, d) -> top-k scores and flat indices."""
  chunk = chunks.shape[1]

  def step(best, xs):
    best_scores, best_ids = best
    index, vectors, mask = xs
    scores = jnp.where(mask[None, :], queries @ vectors.T, -jnp.inf)
    ids = index * chunk + jnp.arange(chunk)[None, :].repeat(queries.shape[0], 0)
    merged_scores = jnp.concatenate([best_scores, scores], axis=1)
    merged_ids = jnp.concatenate([best_ids, ids], axis=1)
    top, where = jax.lax.top_k(merged_scores, k)
    return (top, jnp.take_along_axis(merged_ids, where, axis=1)), None

  init = (jnp.full((queries.shape[0], k), -jnp.inf, queries.dtype), jnp.zeros((queries.shape[0], k), jnp.int32))
  (scores, ids), _ = jax.lax.scan(step, init, (jnp.arange(chunks.shape[0]), chunks, valid))
  return scores, ids


class ExactIndex:
  """Keeps the corpus on device in fixed-size chunks so memory per step is bounded for any corpus size."""

  def __init__(self, embeddings: np.ndarray, chunk_size: int = 16384):
    n, dim = embeddings.shape
    self.size = n
    chunk = min(chunk_size, max(n, 1))
    num_chunks = -(-n // chunk)
    padded = np.zeros((num_chunks * chunk, dim), np.float32)
    padded[:n] = embeddings
    self._chunks = jnp.asarray(padded.reshape(num_chunks, chunk, dim))
    self._valid = jnp.asarray((np.arange(num_chunks * chunk) < n).reshape(num_chunks, chunk))

  def search(self, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, self.size)
    scores, ids = _search(self._chunks, self._valid, jnp.asarray(query_vectors, jnp.float32), k)
    return np.asarray(scores), np.asarray(ids)
