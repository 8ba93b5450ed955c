"""Tiny randomly initialised transformers (PyTorch) models: the reference for parity tests."""

from __future__ import annotations

import numpy as np

TINY = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, max_position_embeddings=256)

# name -> (transformers class name, config overrides)
CASES = {
    "llama_mha_untied": ("Llama", dict(num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False)),
    "llama_gqa4_tied_theta": (
        "Llama",
        dict(num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=True, rope_theta=500000.0),
    ),
    "llama_mqa_bias": ("Llama", dict(num_attention_heads=4, num_key_value_heads=1, attention_bias=True)),
    "llama3_rope_scaling": (
        "Llama",
        dict(
            num_attention_heads=8,
            num_key_value_heads=2,
            rope_theta=500000.0,
            rope_scaling=dict(
                rope_type="llama3",
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=16,
            ),
        ),
    ),
    "qwen2_gqa_bias": (
        "Qwen2",
        dict(num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=True, rope_theta=1000000.0),
    ),
    "qwen2_mqa_untied": ("Qwen2", dict(num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=False)),
    "mistral_gqa_window": (
        "Mistral",
        dict(num_attention_heads=8, num_key_value_heads=2, sliding_window=7, head_dim=16),
    ),
}


def make_hf_model(case: str, seed: int = 0):
  import torch
  import transformers

  family, overrides = CASES[case]
  config = getattr(transformers, f"{family}Config")(**TINY, **overrides)
  torch.manual_seed(seed)
  model = getattr(transformers, f"{family}ForCausalLM")(config).eval()
  with torch.no_grad():  # random (not zero) biases and norms, so that their mapping is tested
    for name, p in model.named_parameters():
      if name.endswith("bias") or "norm" in name:
        p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "norm" in name else 0.0))
  return model


def hf_logits(model, input_ids: np.ndarray, attention_mask: np.ndarray | None = None) -> np.ndarray:
  import torch

  ids = torch.tensor(np.asarray(input_ids))
  kwargs = {}
  if attention_mask is not None:
    mask = torch.tensor(np.asarray(attention_mask))
    kwargs = dict(attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
  with torch.no_grad():
    return model(ids, **kwargs).logits.float().numpy()
