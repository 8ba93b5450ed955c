"""Rotary position embeddings (HF "rotate_half" layout) with default, linear and Llama-3 scaling."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from exsearch_jax.models.decoder_config import DecoderConfig


def inverse_frequencies(config: DecoderConfig) -> np.ndarray:
  """Per-pair rotation frequencies, float64 numpy (computed once, baked into the jitted graph)."""
  dim = config.head_dim
  inv_freq = 1.0 / (config.rope_theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
  scaling = config.rope_scaling_dict
  if not scaling:
    return inv_freq
  kind = scaling["rope_type"]
  if kind == "linear":
    return inv_freq / scaling["factor"]
  if kind == "llama3":
    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_len = scaling["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old_len / low, old_len / high
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return np.where(medium, smoothed, scaled)
  raise ValueError(f"rope_type {kind!r}")


def apply_rope(x: jnp.ndarray, positions: jnp.ndarray, inv_freq: np.ndarray) -> jnp.ndarray:
  """Rotates x (batch, length, heads, head_dim) by integer positions (batch, length)."""
  angles = positions[..., None].astype(jnp.float32) * jnp.asarray(inv_freq, jnp.float32)
  cos = jnp.cos(angles)[:, :, None, :]
  sin = jnp.sin(angles)[:, :, None, :]
  x32 = x.astype(jnp.float32)
  first, second = jnp.split(x32, 2, axis=-1)
  rotated = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
  return rotated.astype(x.dtype)
