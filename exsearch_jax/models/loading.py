"""`from_pretrained` / `save_pretrained` / `init_model`: checkpoints straight into their shards.

Weights are read on the host (memory-mapped safetensors, or dequantized GGUF) and placed with
`jax.make_array_from_callback`, so each device receives only its own slice; no device ever holds
a full copy of a sharded weight.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from exsearch_jax.errors import CheckpointError
from exsearch_jax.models.decoder import Decoder
from exsearch_jax.models.decoder_config import DecoderConfig
from exsearch_jax.models.gguf_checkpoint import GGUFCheckpoint
from exsearch_jax.models.hf_checkpoint import SafetensorsCheckpoint, read_config, write_directory
from exsearch_jax.models.params import initializer
from exsearch_jax.models.weight_layout import weight_specs
from exsearch_jax.sharding import state_shardings


def _abstract(config: DecoderConfig, seed: int):
  return nnx.split(nnx.eval_shape(lambda: Decoder(config, nnx.Rngs(seed))))


def _variables(state: nnx.State) -> dict:
  return dict(nnx.to_flat_state(state))


def init_model(config: DecoderConfig, mesh: Optional[Mesh] = None, seed: int = 0) -> Decoder:
  """A randomly initialised model, each weight drawn straight into its shards by a small jitted function.

  Weight i (in state order) uses key `fold_in(key(seed), i)`. One jitted program creating the whole model
  compiled a random-number fusion per weight: 36 s for SmolLM2's 211 weights on CPU, > 80 s on an H200;
  here it is one compile per distinct shape.
  """
  graphdef, abstract_state = _abstract(config, seed)
  variables = _variables(abstract_state)
  shardings = _variables(state_shardings(abstract_state, mesh))
  root = jax.random.key(seed)
  for i, (path, variable) in enumerate(variables.items()):
    value = variable.get_value()
    draw = initializer(
        tuple(value.shape), jnp.dtype(value.dtype), variable.get_metadata()["init_std"], shardings[path].get_value()
    )
    variable.set_value(draw(jax.random.fold_in(root, i)))
  return nnx.merge(graphdef, nnx.from_flat_state(variables))


def load_config(path: str, **overrides) -> DecoderConfig:
  if path.endswith(".gguf"):
    return DecoderConfig.from_hf_dict(GGUFCheckpoint(path).hf_config, source=path, **overrides)
  return DecoderConfig.from_hf_dict(read_config(path), source=os.path.join(path, "config.json"), **overrides)


def from_pretrained(
    path: str, dtype: Optional[str] = None, param_dtype: Optional[str] = None, mesh: Optional[Mesh] = None
) -> Decoder:
  """Loads an HF directory (config.json + safetensors) or a `.gguf` file.

  dtype: compute dtype ("float32"/"bfloat16"); param_dtype: storage dtype (defaults to dtype, else float32).
  """
  path = os.fspath(path)
  tensors: GGUFCheckpoint | SafetensorsCheckpoint
  if path.endswith(".gguf"):
    tensors = GGUFCheckpoint(path)
    raw, source = tensors.hf_config, path
  else:
    raw, source = read_config(path), os.path.join(path, "config.json")
    tensors = SafetensorsCheckpoint(path)
  overrides: dict[str, Any] = {}
  if dtype:
    overrides["dtype"] = dtype
  if param_dtype or dtype:
    overrides["param_dtype"] = param_dtype or dtype
  config = DecoderConfig.from_hf_dict(raw, source=source, **overrides)
  return build_from_tensors(config, tensors, mesh)


def build_from_tensors(config: DecoderConfig, tensors, mesh: Optional[Mesh] = None) -> Decoder:
  """Places every tensor of `tensors` (HF names, HF layout) into the model's shards."""
  graphdef, abstract_state = _abstract(config, 0)
  variables = _variables(abstract_state)
  shardings = _variables(state_shardings(abstract_state, mesh))
  specs = {spec.path: spec for spec in weight_specs(config)}
  if set(specs) != set(variables):
    raise AssertionError(f"weight table out of date: {set(specs) ^ set(variables)}")
  for path, spec in specs.items():
    if spec.hf_name not in tensors:
      raise CheckpointError(f"{tensors.describe(spec.hf_name)}: tensor {spec.hf_name!r} is missing")
    if tensors.shape(spec.hf_name) != spec.hf_shape:
      raise CheckpointError(
          f"{tensors.describe(spec.hf_name)}: tensor {spec.hf_name!r} has shape "
          f"{tensors.shape(spec.hf_name)}, the config implies {spec.hf_shape}"
      )
    dtype = variables[path].get_value().dtype
    host = spec.to_ours(np.asarray(tensors.get(spec.hf_name))).astype(dtype)
    sharding = shardings[path].get_value()
    variables[path].set_value(jax.make_array_from_callback(host.shape, sharding, host.__getitem__))
  return nnx.merge(graphdef, nnx.from_flat_state(variables))


def save_pretrained(
    model: Decoder, directory: str, tokenizer=None, dtype: Optional[str] = None, max_shard_bytes: int = 5 * 2**30
) -> None:
  """Writes an HF directory transformers can load (config.json, safetensors shards, tokenizer)."""
  config = model.config
  hf_config = config.to_hf_dict()
  target = np.dtype(jnp.dtype(dtype or config.param_dtype))
  state = _variables(nnx.state(model, nnx.Param))
  tensors = {}
  for spec in weight_specs(config):
    value = state[spec.path].get_value()
    if not value.is_fully_addressable:
      value = multihost_utils.process_allgather(value, tiled=True)
    tensors[spec.hf_name] = spec.to_hf(np.asarray(jax.device_get(value))).astype(target)
  if jax.process_index() == 0:
    from exsearch_jax import atomic

    hf_config["torch_dtype"] = hf_config["dtype"] = str(target)
    with atomic.replaced_directory(directory) as tmp:  # a kill leaves the old directory or the new one
      write_directory(tmp, hf_config, tensors, max_shard_bytes)
      if tokenizer is not None:
        tokenizer.save_pretrained(tmp)


def build_model(model_config, mesh: Optional[Mesh] = None, seed: int = 0) -> Decoder:
  """The model a run config asks for: a checkpoint (path or `asset:NAME`) or a random init."""
  from exsearch_jax.assets import resolve_checkpoint

  if model_config.checkpoint:
    return from_pretrained(
        resolve_checkpoint(model_config.checkpoint),
        dtype=model_config.dtype,
        param_dtype=model_config.param_dtype,
        mesh=mesh,
    )
  config = DecoderConfig(**dict(model_config.init), dtype=model_config.dtype, param_dtype=model_config.param_dtype)
  return init_model(config, mesh=mesh, seed=seed)
