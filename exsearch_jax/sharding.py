"""The device mesh from config, and the one table that maps logical axis names to mesh axes.

Modules name their array axes (`embed`, `mlp`, `heads`, ...); nothing else in the code base mentions
mesh axes. A rule whose mesh axes do not divide an array dimension (e.g. SmolLM2's 3 KV heads on a
tensor axis of 2) falls back to replication for that dimension instead of failing.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

from exsearch_jax.errors import ConfigError

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axes, in priority order (MaxText-style: batch over data+fsdp, weights over fsdp+tensor)
LOGICAL_AXIS_RULES: tuple = (
    ("batch", ("data", "fsdp")),
    ("vocab", ("tensor",)),
    ("embed", ("fsdp",)),
    ("mlp", ("tensor",)),
    ("heads", ("tensor",)),
    ("kv_heads", ("tensor",)),
    ("head_dim", ()),
    ("length", ()),
    ("norm", ()),
)


def make_mesh(shape: Mapping[str, int], devices: Optional[Sequence] = None) -> Mesh:
  """Builds a (data, fsdp, tensor) mesh; one entry may be -1 to take the remaining devices."""
  devices = list(jax.devices() if devices is None else devices)
  unknown = set(shape) - set(MESH_AXES)
  if unknown:
    raise ConfigError(f"mesh: unknown axes {sorted(unknown)}; the axes are {MESH_AXES}")
  sizes = [int(shape.get(axis, 1)) for axis in MESH_AXES]
  if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
    raise ConfigError(f"mesh: sizes {dict(zip(MESH_AXES, sizes))} must be positive, with at most one -1")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if len(devices) % known:
      raise ConfigError(f"mesh: {dict(zip(MESH_AXES, sizes))} cannot fill {len(devices)} devices")
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ConfigError(f"mesh: {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, "
                      f"but {len(devices)} are visible ({devices[0].platform})")
  try:
    from jax.experimental import mesh_utils
    grid = mesh_utils.create_device_mesh(sizes, devices=devices)
  except (AssertionError, ValueError, NotImplementedError):
    grid = np.asarray(devices).reshape(sizes)
  return Mesh(grid, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def logical_to_spec(logical_axes: Sequence[Optional[str]], shape: Sequence[int], mesh: Mesh,
                    rules=LOGICAL_AXIS_RULES) -> PartitionSpec:
  """PartitionSpec for an array whose dimensions carry these logical names."""
  table = dict(rules)
  used: set = set()
  spec = []
  for name, size in zip(logical_axes, shape):
    if name is not None and name not in table:
      raise ConfigError(f"logical axis {name!r} has no rule; known: {sorted(table)}")
    chosen = []
    for mesh_axis in (table[name] if name else ()):
      if mesh_axis in used or mesh.shape[mesh_axis] == 1:
        continue
      if size % (math.prod(mesh.shape[a] for a in chosen) * mesh.shape[mesh_axis]) == 0:
        chosen.append(mesh_axis)
    used.update(chosen)
    spec.append(tuple(chosen) if len(chosen) > 1 else (chosen[0] if chosen else None))
  return PartitionSpec(*spec)


def state_shardings(state: nnx.State, mesh: Optional[Mesh], rules=LOGICAL_AXIS_RULES):
  """`state` with each Variable's value replaced by its sharding (a valid jit in/out_shardings tree)."""

  def one(variable: nnx.Variable):
    if mesh is None:
      return variable.replace(SingleDeviceSharding(jax.devices()[0]))
    axes = variable.get_metadata().get("logical_axes")
    spec = PartitionSpec() if axes is None else logical_to_spec(axes, variable.get_value().shape, mesh, rules)
    return variable.replace(NamedSharding(mesh, spec))

  return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_sharding(mesh: Optional[Mesh], ndim: int = 2):
  """Sharding for a (batch, ...) input array: batch over data and fsdp, the rest replicated."""
  if mesh is None:
    return SingleDeviceSharding(jax.devices()[0])
  return NamedSharding(mesh, PartitionSpec(("data", "fsdp"), *([None] * (ndim - 1))))
