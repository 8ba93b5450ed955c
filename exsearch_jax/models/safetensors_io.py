"""Lazy, memory-mapped safetensors reading (bf16 included) and writing, with errors that name the file.

We parse the format ourselves (8-byte header size, JSON header, raw little-endian data) so that a
loader can slice one shard of a tensor out of the memory map without materialising the rest, and so
that a truncated or corrupt file is reported as such instead of failing deep inside a library.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Optional

import ml_dtypes
import numpy as np

from exsearch_jax.errors import CheckpointError

DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


class SafetensorsFile:
  """Header parsed eagerly; tensors are read-only numpy views into a memory map."""

  def __init__(self, path: str):
    self.path = path
    size = os.path.getsize(path)
    with open(path, "rb") as f:
      raw = f.read(8)
      if len(raw) < 8:
        raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, no header)")
      (header_size,) = struct.unpack("<Q", raw)
      if 8 + header_size > size:
        raise CheckpointError(f"{path}: truncated safetensors file (header of {header_size} bytes, file {size})")
      try:
        header = json.loads(f.read(header_size))
      except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors header: {e}") from None
    self.metadata = header.pop("__metadata__", {}) or {}
    self.header = header
    self._data_start = 8 + header_size
    self._map: Optional[np.memmap] = None
    for name, info in header.items():
      if info.get("dtype") not in DTYPES:
        raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {info.get('dtype')!r}")
      end = self._data_start + info["data_offsets"][1]
      if end > size:
        raise CheckpointError(
            f"{path}: truncated safetensors file: tensor {name!r} ends at byte {end}, " f"the file has {size}"
        )

  def keys(self):
    return self.header.keys()

  def shape(self, name: str) -> tuple:
    return tuple(self.header[name]["shape"])

  def get(self, name: str) -> np.ndarray:
    if self._map is None:
      self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
    assert self._map is not None
    info = self.header[name]
    begin, end = (self._data_start + o for o in info["data_offsets"])
    return self._map[begin:end].view(DTYPES[info["dtype"]]).reshape(info["shape"])


def save_file(tensors: dict, path: str, metadata: dict | None = None) -> None:
  header, offset = {}, 0
  arrays = {}
  for name, array in tensors.items():
    array = np.ascontiguousarray(array)
    if array.dtype not in NAMES:
      raise CheckpointError(f"{path}: cannot write tensor {name!r} of dtype {array.dtype}")
    header[name] = {
        "dtype": NAMES[array.dtype],
        "shape": list(array.shape),
        "data_offsets": [offset, offset + array.nbytes],
    }
    arrays[name] = array
    offset += array.nbytes
  header["__metadata__"] = metadata or {"format": "pt"}
  blob = json.dumps(header, separators=(",", ":")).encode()
  blob += b" " * (-len(blob) % 8)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(struct.pack("<Q", len(blob)))
    f.write(blob)
    for array in arrays.values():
      f.write(array.tobytes())
  os.replace(tmp, path)
