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


def _sizes(
    shape: Mapping[str, int], count: int, what: str = "mesh", unit: str = "devices", note: str = ""
) -> list[int]:
  """Axis sizes of `shape` over `count` devices (or slices, processes); one entry may be -1."""
  unknown = set(shape) - set(MESH_AXES)
  if unknown:
    raise ConfigError(f"{what}: unknown axes {sorted(unknown)}; the axes are {MESH_AXES}")
  sizes = [int(shape.get(axis, 1)) for axis in MESH_AXES]
  named = lambda: dict(zip(MESH_AXES, sizes))  # noqa: E731
  if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
    raise ConfigError(f"{what}: sizes {named()} must be positive, with at most one -1")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if count % known:
      raise ConfigError(f"{what}: {named()} cannot fill {count} {unit}")
    sizes[sizes.index(-1)] = count // known
  if math.prod(sizes) != count:
    raise ConfigError(f"{what}: {named()} needs {math.prod(sizes)} {unit}, but {count} are visible{note}")
  return sizes


def _mesh(grid) -> Mesh:
  return Mesh(grid, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def make_mesh(shape: Mapping[str, int], devices: Optional[Sequence] = None) -> Mesh:
  """Builds a (data, fsdp, tensor) mesh; one entry may be -1 to take the remaining devices."""
  devices = list(jax.devices() if devices is None else devices)
  sizes = _sizes(shape, len(devices), note=f" ({devices[0].platform})")
  try:
    from jax.experimental import mesh_utils

    grid = mesh_utils.create_device_mesh(sizes, devices=devices)
  except (AssertionError, ValueError, NotImplementedError):
    grid = np.asarray(devices).reshape(sizes)
  return _mesh(grid)


def train_mesh(mesh_cfg) -> Optional[Mesh]:
  """The M-step mesh: None on one device; `mesh.train` over every device; or, when `mesh.dcn` has a degree
  above 1, a hybrid mesh with `mesh.train` inside each granule (a TPU slice, else a process: fast ICI/NVLink)
  and `mesh.dcn` across granules (the slower data-center network), so an axis's collectives stay inside
  a granule wherever the degrees allow."""
  devices = jax.devices()
  dcn = dict(getattr(mesh_cfg, "dcn", None) or {})
  if all(int(v) == 1 for v in dcn.values()):
    return make_mesh(mesh_cfg.train) if len(devices) > 1 else None
  by_slice = len({getattr(d, "slice_index", 0) for d in devices}) > 1
  granules = len({d.slice_index if by_slice else d.process_index for d in devices})
  dcn_sizes = _sizes(dcn, granules, "mesh.dcn", "slices" if by_slice else "processes")
  ici_sizes = _sizes(mesh_cfg.train, len(devices) // granules, "mesh.train (per granule)")
  from jax.experimental import mesh_utils

  return _mesh(mesh_utils.create_hybrid_device_mesh(ici_sizes, dcn_sizes, devices, process_is_granule=not by_slice))


def sampling_meshes(shape: Mapping[str, int]) -> tuple[Mesh, Mesh]:
  """(global, local): `shape` over this process's devices (local), and every process's such mesh stacked
  along `data` (global). No weight shards over `data`, so under the global mesh each process holds a
  whole copy of the model and can sample on its own."""
  grids = [
      make_mesh(shape, [d for d in jax.devices() if d.process_index == p]).devices for p in range(jax.process_count())
  ]
  local = _mesh(grids[jax.process_index()])
  return (_mesh(np.concatenate(grids, axis=0)) if len(grids) > 1 else local), local


def host_local_copy(state: nnx.State, meshes: tuple[Mesh, Mesh]) -> nnx.State:
  """`state`, resharded for the sampling meshes, as arrays on this process's devices only: jitted code on
  it runs on this process alone, so processes roll out different questions at their own pace."""
  global_mesh, local_mesh = meshes
  moved = jax.device_put(state, state_shardings(state, global_mesh))
  if global_mesh is local_mesh:
    return moved

  def local(x):
    sharding = NamedSharding(local_mesh, x.sharding.spec)
    shards = {s.device: s.data for s in x.addressable_shards}
    return jax.make_array_from_single_device_arrays(
        x.shape, sharding, [shards[d] for d in sharding.addressable_devices_indices_map(x.shape)]
    )

  return jax.tree.map(local, moved)


def logical_to_spec(
    logical_axes: Sequence[Optional[str]], shape: Sequence[int], mesh: Mesh, rules=LOGICAL_AXIS_RULES
) -> PartitionSpec:
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
