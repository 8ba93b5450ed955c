"""Creating a weight: an `nnx.Param` with its logical axis names (what `sharding.py` maps to the mesh)."""
import functools

import jax
import jax.numpy as jnp
from flax import nnx


def param(rngs: nnx.Rngs, shape, axes, dtype=jnp.float32, std=None) -> nnx.Param:
  """std: a float for N(0, std^2), "ones" for scales, None for zeros (biases); kept as `init_std` metadata
  so `loading.init_model` can draw each weight on its own."""
  value = (jnp.ones(shape, dtype) if std == "ones" else jnp.zeros(shape, dtype) if std is None
           else std * jax.random.normal(rngs.params(), shape, dtype))
  return nnx.Param(value, logical_axes=axes, init_std=std)


@functools.lru_cache(maxsize=None)
def initializer(shape, dtype, std, sharding):
  """A jitted `key -> weight` placed by `sharding`; one compile per distinct (shape, dtype, std, sharding)."""

  def draw(key):
    if std == "ones":
      return jnp.ones(shape, dtype)
    if std is None:
      return jnp.zeros(shape, dtype)
    return std * jax.random.normal(key, shape, dtype)

  return jax.jit(draw, out_shardings=sharding)
