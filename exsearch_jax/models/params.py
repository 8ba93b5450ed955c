"""Creating a weight: an `nnx.Param` with its logical axis names (what `sharding.py` maps to the mesh)."""

import functools

import jax
import jax.numpy as jnp
from flax import nnx


def param(rngs: nnx.Rngs, shape, axes, dtype=jnp.float32, std=None) -> nnx.Param:
  """std: a float for N(0, std^2), "ones" for scales, None for zeros (biases); kept as `init_std` metadata
  so `loading.init_model` can draw each weight on its own."""
  key = rngs.params() if std not in ("ones", None) else None
  return nnx.Param(draw(key, shape, dtype, std), logical_axes=axes, init_std=std)


def draw(key, shape, dtype, std):
  """The initial value of a weight: N(0, std^2), ones or zeros (see `param`)."""
  if std == "ones":
    return jnp.ones(shape, dtype)
  if std is None:
    return jnp.zeros(shape, dtype)
  return std * jax.random.normal(key, shape, dtype)


@functools.lru_cache(maxsize=None)
def initializer(shape, dtype, std, sharding):
  """A jitted `key -> weight` placed by `sharding`; one compile per distinct (shape, dtype, std, sharding)."""
  return jax.jit(lambda key: draw(key, shape, dtype, std), out_shardings=sharding)
