"""Tokenizers (with chat templates) from an HF directory or from the metadata inside a GGUF file."""

from __future__ import annotations

import os

from exsearch_jax.errors import CheckpointError


def check_vocabulary(tokenizer, vocab_size: int, where: str) -> None:
  """A tokenizer whose ids run past the model's embedding table does not belong to the model (the embedding
  lookup would clamp those ids silently). Models may have more rows than tokens (padded vocabularies)."""
  if len(tokenizer) > vocab_size:
    raise CheckpointError(
        f"{where}: the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is "
        f"{vocab_size}; the tokenizer belongs to another model"
    )


def load_tokenizer(path: str):
  from transformers import AutoTokenizer

  path = os.fspath(path)
  if path.endswith(".gguf"):
    if not os.path.exists(path):
      raise CheckpointError(f"{path}: no such GGUF file")
    with open(path, "rb") as f:
      if f.read(4) != b"GGUF":
        raise CheckpointError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
      return AutoTokenizer.from_pretrained(os.path.dirname(path) or ".", gguf_file=os.path.basename(path))
    except Exception as e:  # pylint: disable=broad-except  (any failure to parse the user's file)
      raise CheckpointError(f"{path}: no usable tokenizer in its metadata ({type(e).__name__}: {e})") from None
  if not os.path.exists(os.path.join(path, "tokenizer_config.json")) and not os.path.exists(
      os.path.join(path, "tokenizer.json")
  ):
    raise CheckpointError(f"{path}: no tokenizer.json or tokenizer_config.json")
  try:
    return AutoTokenizer.from_pretrained(path)
  except (ValueError, KeyError, OSError) as e:  # a truncated or foreign tokenizer.json
    raise CheckpointError(f"{path}: the tokenizer files do not load ({type(e).__name__}: {e})") from None
