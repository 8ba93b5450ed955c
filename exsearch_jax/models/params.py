"""Creating a weight: an `nnx.Param` with its logical axis names (what `sharding.py` maps to the mesh)."""
import jax
import jax.numpy as jnp
from flax import nnx


def param(rngs: nnx.Rngs, shape, axes, dtype=jnp.float32, std=None) -> nnx.Param:
  """std: a float for N(0, std^2), "ones" for scales, None for zeros (biases)."""
  value = (jnp.ones(shape, dtype) if std == "ones" else jnp.zeros(shape, dtype) if std is None
           else std * jax.random.normal(rngs.params(), shape, dtype))
  return nnx.Param(value, logical_axes=axes)
