"""The sampler's shortcut: nucleus among the top CANDIDATES, then WIDE_CANDIDATES, then a full sort for
wider rows; the same answers every way."""

import jax
import numpy as np
import pytest

from exsearch_jax.sampling import token_sampler
from exsearch_jax.sampling.token_sampler import sample_logits

V = 2000


def _flat_row():
  """A slowly decaying distribution whose 0.95-nucleus is ~3x wider than the candidates."""
  return -np.arange(V, dtype=np.float32) * 3.0 / V


def _peaked_row(seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=V) * 4.0).astype(np.float32)


def _nucleus(row, top_p):
  order = np.argsort(-row, kind="stable")
  p = np.exp(row[order] - row.max())
  p /= p.sum()
  return set(order[np.cumsum(p) - p < top_p].tolist())


@pytest.mark.parametrize("wide", [token_sampler.WIDE_CANDIDATES, 512])  # 512: the nucleus needs the full sort
def test_wide_nucleus_is_exact(monkeypatch, wide):
  monkeypatch.setattr(token_sampler, "WIDE_CANDIDATES", wide)
  row = _flat_row()
  nucleus = _nucleus(row, 0.95)
  assert 2 * token_sampler.CANDIDATES < len(nucleus) and (len(nucleus) > wide) == (wide == 512)
  keys = jax.random.split(jax.random.PRNGKey(0), 3000)
  tokens = np.asarray(sample_logits(np.tile(row, (3000, 1)), keys, 1.0, 0.95, 0))
  assert set(tokens.tolist()) <= nucleus
  assert (tokens >= token_sampler.CANDIDATES).mean() > 0.5  # beyond the candidates, as often as it should be


def test_a_row_does_not_depend_on_its_batch_or_path():
  flat, peaked = _flat_row(), _peaked_row()
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  together = np.asarray(sample_logits(np.stack([flat, peaked]), keys, 0.8, 0.95, 0))
  alone = [int(sample_logits(row[None], k[None], 0.8, 0.95, 0)[0]) for row, k in zip((flat, peaked), keys)]
  assert together.tolist() == alone


def test_candidates_and_full_sort_pick_the_same_token(monkeypatch):
  monkeypatch.setattr(token_sampler, "WIDE_CANDIDATES", 1)  # never covers a 0.95 nucleus: always the full sort
  rows = np.stack([_peaked_row(s) for s in range(64)])
  keys = jax.random.split(jax.random.PRNGKey(2), 64)
  fast = np.asarray(sample_logits(rows, keys, 0.8, 0.95, 0))
  logits = jax.numpy.asarray(rows) / 0.8
  u = jax.vmap(jax.random.uniform)(keys)
  lse = jax.nn.logsumexp(logits, axis=-1)
  slow = np.asarray(token_sampler._wide_rows(logits, lse, u, 0.95, np.ones(64, bool), np.zeros(64, np.int32)))
  assert (fast == slow).all()
  for row, token in zip(rows, fast):
    assert token in _nucleus(row / 0.8, 0.95)


def test_plain_temperature_sampling_follows_the_softmax():
  logits = np.log(np.array([[0.6, 0.3, 0.1]] * 4000, np.float32))
  keys = jax.random.split(jax.random.PRNGKey(3), 4000)
  tokens = np.asarray(sample_logits(logits, keys, 1.0, 1.0, 0))
  np.testing.assert_allclose(np.bincount(tokens, minlength=3) / 4000, [0.6, 0.3, 0.1], atol=0.03)
