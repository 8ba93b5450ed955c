"""program_cache: compiled programs are dropped, and their memory mappings returned, once a process holds too
many (XLA CPU maps every kernel apart; past vm.max_map_count a compile dies in a segmentation fault)."""

import sys

import jax
import jax.numpy as jnp
import pytest

from exsearch_jax import program_cache

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _layers(x, w):
  for i in range(12):  # distinct fusions, so the program maps many kernels
    x = x + jax.nn.silu(x @ w) * jnp.tanh(x) * (i + 1)
  return x


def test_the_count_and_the_limit_are_read():
  held, limit = program_cache.mappings(), program_cache.mapping_limit()
  assert held is not None and held > 0
  assert limit is not None and limit > held


def test_a_crowded_process_drops_its_programs_and_their_mappings():
  program = jax.jit(_layers)
  x, w = jnp.ones((8, 32)), jnp.ones((32, 32)) / 32
  expected = program(x, w)
  before = program_cache.mappings()
  assert program._cache_size() == 1

  assert not program_cache.release_if_crowded(limit=10**9)  # far below the share: nothing dropped
  assert program._cache_size() == 1

  assert program_cache.release_if_crowded(share=0.5, limit=before)  # past half of a limit
  assert program._cache_size() == 0
  assert program_cache.mappings() < before  # the compiled kernels' code was unmapped
  assert jnp.array_equal(program(x, w), expected)  # and the program compiles again
  assert program._cache_size() == 1
