"""GGUF files (llama.cpp): read the config and dequantize tensors with the `gguf` package, no torch.

llama.cpp names tensors its own way and stores Llama q/k projections with rows permuted for its
interleaved RoPE; we map names to HF's and undo the permutation, so a GGUF looks like an HF checkpoint.
"""

from __future__ import annotations

import os
import re

import numpy as np

from exsearch_jax.errors import CheckpointError

SUPPORTED = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
_PERMUTED = {"llama"}  # architectures whose q/k rows llama.cpp's converter permutes

_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def _hf_name(gguf_name: str):
  if gguf_name in _GLOBAL_NAMES:
    return _GLOBAL_NAMES[gguf_name]
  m = re.fullmatch(r"blk\.(\d+)\.(.+)", gguf_name)
  if m and m.group(2) in _LAYER_NAMES:
    return f"model.layers.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}"
  return None


def _unpermute(w: np.ndarray, heads: int) -> np.ndarray:
  """Inverse of llama.cpp's `permute`: interleaved rotary pairs back to HF's half-split layout."""
  rows = w.shape[0]
  return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class GGUFCheckpoint:
  """Tensors by HF name, dequantized to float32 on first access (cached for the unpermute/reshape)."""

  def __init__(self, path: str):
    import gguf

    if not os.path.exists(path):
      raise CheckpointError(f"{path}: no such GGUF file")
    try:
      self.reader = gguf.GGUFReader(path)
    except Exception as e:  # the gguf package raises bare ValueError/struct errors on corrupt files
      raise CheckpointError(f"{path}: not a readable GGUF file ({type(e).__name__}: {e})") from None
    self.path = path
    self.fields = {name: self._field(name) for name in self.reader.fields}
    arch = self.fields.get("general.architecture")
    if arch not in SUPPORTED:
      raise CheckpointError(
          f"{path}: field 'general.architecture' = {arch!r} is not supported; "
          f"supported GGUF architectures: {sorted(SUPPORTED)}"
      )
    self.arch = arch
    self._tensors = {}
    for tensor in self.reader.tensors:
      name = _hf_name(tensor.name)
      if name is not None:
        self._tensors[name] = tensor
    self.hf_config = self._config()

  def _field(self, name):
    try:
      return self.reader.fields[name].contents()
    except Exception:  # noqa: BLE001 - some array fields have no scalar form; they are not needed
      return None

  def _config(self) -> dict:
    a = self.arch

    def need(key):
      value = self.fields.get(f"{a}.{key}")
      if value is None:
        raise CheckpointError(f"{self.path}: missing GGUF field '{a}.{key}'")
      return value

    heads = int(need("attention.head_count"))
    cfg = {
        "architectures": [SUPPORTED[a]],
        "hidden_size": int(need("embedding_length")),
        "intermediate_size": int(need("feed_forward_length")),
        "num_hidden_layers": int(need("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(self.fields.get(f"{a}.attention.head_count_kv") or heads),
        "rms_norm_eps": float(need("attention.layer_norm_rms_epsilon")),
        "rope_theta": float(self.fields.get(f"{a}.rope.freq_base") or 10000.0),
        "max_position_embeddings": int(self.fields.get(f"{a}.context_length") or 2048),
        "vocab_size": int(self._tensors["model.embed_tokens.weight"].shape[-1]),
        "tie_word_embeddings": "lm_head.weight" not in self._tensors,
        "bos_token_id": self.fields.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": self.fields.get("tokenizer.ggml.eos_token_id"),
        "pad_token_id": self.fields.get("tokenizer.ggml.padding_token_id"),
    }
    scaling_type = self.fields.get(f"{a}.rope.scaling.type")
    if scaling_type == "linear":
      cfg["rope_scaling"] = {"rope_type": "linear", "factor": float(need("rope.scaling.factor"))}
    elif scaling_type not in (None, "none"):
      raise CheckpointError(f"{self.path}: field '{a}.rope.scaling.type' = {scaling_type!r} is not supported")
    return cfg

  def __contains__(self, name: str) -> bool:
    return name in self._tensors

  def shape(self, name: str) -> tuple:
    return tuple(int(s) for s in reversed(self._tensors[name].shape))

  def get(self, name: str) -> np.ndarray:
    import gguf

    tensor = self._tensors[name]
    data = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
    data = data.reshape(self.shape(name))
    if self.arch in _PERMUTED and name.endswith(("q_proj.weight", "k_proj.weight")):
      heads_field = "num_attention_heads" if "q_proj" in name else "num_key_value_heads"
      data = _unpermute(data, self.hf_config[heads_field])
    return data

  def describe(self, name: str) -> str:
    return self.path
