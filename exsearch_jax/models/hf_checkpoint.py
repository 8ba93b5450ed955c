"""HF checkpoint directories: config.json + model.safetensors (or shards with an index) in and out."""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from exsearch_jax.errors import CheckpointError
from exsearch_jax.models.safetensors_io import SafetensorsFile, save_file

INDEX = "model.safetensors.index.json"


class SafetensorsCheckpoint:
  """Tensors by HF name across one or many safetensors files."""

  def __init__(self, directory: str):
    index_path = os.path.join(directory, INDEX)
    if os.path.exists(index_path):
      try:
        with open(index_path) as f:
          weight_map = json.load(f)["weight_map"]
      except (json.JSONDecodeError, KeyError) as e:
        raise CheckpointError(f"{index_path}: not a safetensors index ({e})") from None
      files = {fn: os.path.join(directory, fn) for fn in sorted(set(weight_map.values()))}
      missing = [p for p in files.values() if not os.path.exists(p)]
      if missing:
        raise CheckpointError(f"{index_path}: lists shard {missing[0]} which does not exist")
      opened = {fn: SafetensorsFile(p) for fn, p in files.items()}
      self._where = {name: opened[fn] for name, fn in weight_map.items()}
      self._listing = index_path
    else:
      paths = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
      if not paths:
        raise CheckpointError(f"{directory}: no model.safetensors or {INDEX} found")
      self._where = {}
      for path in paths:
        st = SafetensorsFile(path)
        self._where.update({name: st for name in st.keys()})
      self._listing = paths[0] if len(paths) == 1 else directory
    self.directory = directory

  def __contains__(self, name: str) -> bool:
    return name in self._where

  def shape(self, name: str) -> tuple:
    return self._where[name].shape(name)

  def get(self, name: str) -> np.ndarray:
    return self._where[name].get(name)

  def describe(self, name: str) -> str:
    """The file that holds `name`, or, for a missing name, the file (or index) that should have."""
    return self._where[name].path if name in self._where else self._listing


def read_config(directory: str) -> dict:
  path = os.path.join(directory, "config.json")
  if not os.path.isdir(directory):
    raise CheckpointError(f"{directory}: no such checkpoint directory or .gguf file")
  if not os.path.exists(path):
    raise CheckpointError(f"{path}: missing config.json (an HF checkpoint directory needs one)")
  return read_json(path)


def read_json(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path}: line {e.lineno}: invalid JSON: {e.msg}") from None


def write_directory(directory: str, config: dict, tensors: dict, max_shard_bytes: int) -> None:
  """Writes config.json and safetensors shards (with an index when more than one)."""
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
  shards, current, size = [], {}, 0
  for name, array in tensors.items():
    if current and size + array.nbytes > max_shard_bytes:
      shards.append(current)
      current, size = {}, 0
    current[name] = array
    size += array.nbytes
  shards.append(current)
  if len(shards) == 1:
    save_file(shards[0], os.path.join(directory, "model.safetensors"))
    return
  weight_map = {}
  for i, shard in enumerate(shards):
    filename = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    save_file(shard, os.path.join(directory, filename))
    weight_map.update({name: filename for name in shard})
  total = sum(a.nbytes for a in tensors.values())
  with open(os.path.join(directory, INDEX), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
