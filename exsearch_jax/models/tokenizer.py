"""Tokenizers (with chat templates) from an HF directory or from the metadata inside a GGUF file."""
from __future__ import annotations

import os

from exsearch_jax.errors import CheckpointError


def load_tokenizer(path: str):
  from transformers import AutoTokenizer
  path = os.fspath(path)
  if path.endswith(".gguf"):
    if not os.path.exists(path):
      raise CheckpointError(f"{path}: no such GGUF file")
    return AutoTokenizer.from_pretrained(os.path.dirname(path) or ".", gguf_file=os.path.basename(path))
  if not os.path.exists(os.path.join(path, "tokenizer_config.json")) and not os.path.exists(
      os.path.join(path, "tokenizer.json")):
    raise CheckpointError(f"{path}: no tokenizer.json or tokenizer_config.json")
  return AutoTokenizer.from_pretrained(path)
