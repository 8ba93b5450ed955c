"""Where each of our weights lives in an HF checkpoint, and how its layout differs.

Our kernels are (in..., out...) with heads split out, e.g. q is (embed, heads, head_dim); HF stores
`nn.Linear` weights as (out, in). One table, used by loading (HF and GGUF) and by saving.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np

from exsearch_jax.models.decoder_config import DecoderConfig


@dataclasses.dataclass(frozen=True)
class WeightSpec:
  path: tuple  # path in the NNX state, e.g. ("layers", 3, "attn", "q")
  hf_name: str  # tensor name in the HF safetensors
  shape: tuple  # our shape
  linear_inputs: int  # 0: same layout; k>0: an HF (out, in) Linear whose first k of our dims are `in`
  flatten: bool = False  # HF keeps it 1-D (a bias whose heads we split out)

  @property
  def hf_shape(self) -> tuple:
    if self.linear_inputs == 0:
      return (math.prod(self.shape),) if self.flatten else self.shape
    k = self.linear_inputs
    return (math.prod(self.shape[k:]), math.prod(self.shape[:k]))

  def to_ours(self, hf: np.ndarray) -> np.ndarray:
    return (hf.T if self.linear_inputs else hf).reshape(self.shape)

  def to_hf(self, ours: np.ndarray) -> np.ndarray:
    if self.linear_inputs == 0:
      return ours.reshape(self.hf_shape)
    return ours.reshape(self.hf_shape[1], self.hf_shape[0]).T


def weight_specs(config: DecoderConfig) -> Iterator[WeightSpec]:
  e, f, h, kv, d, v = (
      config.hidden_size,
      config.intermediate_size,
      config.num_heads,
      config.num_kv_heads,
      config.head_dim,
      config.vocab_size,
  )
  yield WeightSpec(("embed",), "model.embed_tokens.weight", (v, e), 0)
  for i in range(config.num_layers):
    hf = f"model.layers.{i}."
    ours = ("layers", i)
    yield WeightSpec(ours + ("attn_norm", "scale"), hf + "input_layernorm.weight", (e,), 0)
    yield WeightSpec(ours + ("mlp_norm", "scale"), hf + "post_attention_layernorm.weight", (e,), 0)
    for name, heads in (("q", h), ("k", kv), ("v", kv)):
      yield WeightSpec(ours + ("attn", name), hf + f"self_attn.{name}_proj.weight", (e, heads, d), 1)
      if config.qkv_bias:
        yield WeightSpec(
            ours + ("attn", name + "_bias"), hf + f"self_attn.{name}_proj.bias", (heads, d), 0, flatten=True
        )
    yield WeightSpec(ours + ("attn", "o"), hf + "self_attn.o_proj.weight", (h, d, e), 2)
    if config.o_bias:
      yield WeightSpec(ours + ("attn", "o_bias"), hf + "self_attn.o_proj.bias", (e,), 0)
    yield WeightSpec(ours + ("mlp", "gate"), hf + "mlp.gate_proj.weight", (e, f), 1)
    yield WeightSpec(ours + ("mlp", "up"), hf + "mlp.up_proj.weight", (e, f), 1)
    yield WeightSpec(ours + ("mlp", "down"), hf + "mlp.down_proj.weight", (f, e), 1)
  yield WeightSpec(("final_norm", "scale"), "model.norm.weight", (e,), 0)
  if not config.tie_word_embeddings:
    yield WeightSpec(("lm_head",), "lm_head.weight", (e, v), 1)
