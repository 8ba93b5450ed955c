"""Architecture hyper-parameters of a decoder-only LM, and their HF `config.json` form.

One dataclass covers Llama, Qwen2, Mistral and SmolLM2 (a Llama): the families differ only in
flags (q/k/v bias, tied embeddings, rope scaling, sliding window), not in code paths.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax.numpy as jnp

from exsearch_jax.errors import CheckpointError

# HF architecture name -> (model_type, qkv bias forced by the family or None = read attention_bias).
ARCHITECTURES = {
    "LlamaForCausalLM": ("llama", None),
    "MistralForCausalLM": ("mistral", False),
    "Qwen2ForCausalLM": ("qwen2", True),
}
MODEL_TYPES = {model_type: arch for arch, (model_type, _) in ARCHITECTURES.items()}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
  vocab_size: int
  hidden_size: int
  intermediate_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  rms_norm_eps: float = 1e-5
  rope_theta: float = 10000.0
  rope_scaling: Optional[tuple] = None  # sorted (key, value) pairs, hashable for jit
  max_position_embeddings: int = 2048
  tie_word_embeddings: bool = False
  qkv_bias: bool = False
  o_bias: bool = False
  sliding_window: Optional[int] = None
  architecture: str = "LlamaForCausalLM"
  bos_token_id: Optional[int] = None
  eos_token_id: Any = None
  pad_token_id: Optional[int] = None
  initializer_range: float = 0.02
  param_dtype: str = "float32"
  dtype: str = "float32"

  def __post_init__(self):
    if self.architecture not in ARCHITECTURES:
      raise CheckpointError(f"unknown architecture {self.architecture!r}; supported: {sorted(ARCHITECTURES)}")
    if self.num_heads % self.num_kv_heads:
      raise CheckpointError(
          f"num_attention_heads={self.num_heads} is not a multiple of num_key_value_heads={self.num_kv_heads}"
      )
    for field in ("param_dtype", "dtype"):
      if getattr(self, field) not in DTYPES:
        raise CheckpointError(f"{field}={getattr(self, field)!r}; choose one of {sorted(DTYPES)}")

  @property
  def jnp_dtype(self):
    return DTYPES[self.dtype]

  @property
  def jnp_param_dtype(self):
    return DTYPES[self.param_dtype]

  @property
  def rope_scaling_dict(self) -> Optional[dict]:
    return dict(self.rope_scaling) if self.rope_scaling else None

  def replace(self, **changes) -> "DecoderConfig":
    return dataclasses.replace(self, **changes)

  def num_params(self) -> int:
    e, f, h, kv, d = self.hidden_size, self.intermediate_size, self.num_heads, self.num_kv_heads, self.head_dim
    attn = e * d * (2 * h + 2 * kv) + (d * (h + 2 * kv) if self.qkv_bias else 0) + (e if self.o_bias else 0)
    per_layer = attn + 3 * e * f + 2 * e
    head = 0 if self.tie_word_embeddings else e * self.vocab_size
    return self.vocab_size * e + self.num_layers * per_layer + e + head

  # ---- HF config.json ------------------------------------------------------------------------
  @classmethod
  def from_hf_dict(cls, cfg: dict, source: str = "config.json", **overrides) -> "DecoderConfig":
    """Reads a transformers config dict (v4 `rope_theta`/`rope_scaling` or v5 `rope_parameters`)."""
    archs = cfg.get("architectures") or [MODEL_TYPES.get(cfg.get("model_type") or "")]
    arch = archs[0]
    if arch not in ARCHITECTURES:
      raise CheckpointError(
          f"{source}: field 'architectures' = {archs!r} (model_type={cfg.get('model_type')!r}) "
          f"is not supported; supported: {sorted(ARCHITECTURES)}"
      )
    _, forced_bias = ARCHITECTURES[arch]

    def need(key):
      if key not in cfg:
        raise CheckpointError(f"{source}: missing field {key!r}")
      return cfg[key]

    rope = dict(cfg.get("rope_parameters") or {})
    theta = rope.pop("rope_theta", cfg.get("rope_theta", 10000.0))
    if not rope and cfg.get("rope_scaling"):
      rope = dict(cfg["rope_scaling"])
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", "llama3", "linear"):
      raise CheckpointError(
          f"{source}: field 'rope_scaling.rope_type' = {rope_type!r} is not supported "
          "(supported: default, linear, llama3)"
      )
    scaling = (
        None
        if rope_type == "default"
        else tuple(sorted((k, v) for k, v in {**rope, "rope_type": rope_type}.items() if k != "type"))
    )
    heads = need("num_attention_heads")
    hidden = need("hidden_size")
    attention_bias = bool(cfg.get("attention_bias", False))
    qkv_bias = attention_bias if forced_bias is None else forced_bias
    window = cfg.get("sliding_window") if (arch == "MistralForCausalLM" or cfg.get("use_sliding_window")) else None
    kwargs = dict(
        vocab_size=need("vocab_size"),
        hidden_size=hidden,
        intermediate_size=need("intermediate_size"),
        num_layers=need("num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=cfg.get("num_key_value_heads") or heads,
        head_dim=cfg.get("head_dim") or hidden // heads,
        rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
        rope_theta=float(theta),
        rope_scaling=scaling,
        max_position_embeddings=cfg.get("max_position_embeddings", 2048),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        qkv_bias=qkv_bias,
        o_bias=attention_bias if arch == "LlamaForCausalLM" else False,
        sliding_window=window,
        architecture=arch,
        bos_token_id=cfg.get("bos_token_id"),
        eos_token_id=_hashable(cfg.get("eos_token_id")),
        pad_token_id=cfg.get("pad_token_id"),
        initializer_range=cfg.get("initializer_range", 0.02),
    )
    kwargs.update(overrides)
    return cls(**kwargs)

  def to_hf_dict(self) -> dict:
    model_type, forced_bias = ARCHITECTURES[self.architecture]
    rope = {"rope_type": "default", "rope_theta": self.rope_theta}
    if self.rope_scaling:
      rope = {**(self.rope_scaling_dict or {}), "rope_theta": self.rope_theta}
    cfg = {
        "architectures": [self.architecture],
        "model_type": model_type,
        "vocab_size": self.vocab_size,
        "hidden_size": self.hidden_size,
        "intermediate_size": self.intermediate_size,
        "num_hidden_layers": self.num_layers,
        "num_attention_heads": self.num_heads,
        "num_key_value_heads": self.num_kv_heads,
        "head_dim": self.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": self.rms_norm_eps,
        "rope_theta": self.rope_theta,
        "rope_parameters": rope,
        "rope_scaling": None if not self.rope_scaling else self.rope_scaling_dict,
        "max_position_embeddings": self.max_position_embeddings,
        "tie_word_embeddings": self.tie_word_embeddings,
        "initializer_range": self.initializer_range,
        "bos_token_id": self.bos_token_id,
        "eos_token_id": _listable(self.eos_token_id),
        "pad_token_id": self.pad_token_id,
        "torch_dtype": self.param_dtype,
        "dtype": self.param_dtype,
    }
    if self.architecture == "LlamaForCausalLM":
      if self.qkv_bias != self.o_bias:
        raise CheckpointError("LlamaForCausalLM needs q/k/v and o biases together (attention_bias)")
      cfg["attention_bias"] = self.qkv_bias
    elif self.qkv_bias != forced_bias:
      raise CheckpointError(f"{self.architecture} cannot express qkv_bias={self.qkv_bias}")
    if self.architecture == "MistralForCausalLM":
      cfg["sliding_window"] = self.sliding_window
    elif self.sliding_window:
      cfg.update(use_sliding_window=True, sliding_window=self.sliding_window, max_window_layers=0)
    return cfg


def _hashable(value):
  return tuple(value) if isinstance(value, list) else value


def _listable(value):
  return list(value) if isinstance(value, tuple) else value
