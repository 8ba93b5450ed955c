"""Flax NNX decoder-only Transformer (Llama / Qwen2 / Mistral / SmolLM2) with a slot-compacted KV cache.

Every weight carries `logical_axes` metadata; `exsearch_jax.sharding` maps those names to mesh axes.

Padding and the cache: a batch row may hold pad tokens anywhere (left, right, or between turns).
Only real tokens take cache slots: token t of row b goes to slot `lengths[b] + (#real tokens before t)`,
pads are dropped, so a row's cache is always a dense prefix, its slot index is its RoPE position, and
left- and right-padded batches give the same result as unpadded rows.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
from flax import nnx

from exsearch_jax.models.decoder_config import DecoderConfig
from exsearch_jax.models.params import param as _param
from exsearch_jax.models.rope import apply_rope, inverse_frequencies

_MASKED = -1e30  # finite, so a row with no visible key (a leading pad) gives a uniform softmax, not NaN


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class KVCache:
  """Per-layer keys/values (batch, kv_heads, slots, head_dim) and the filled length of each row.

  Heads before slots: attention contracts each head's (slots, head_dim) block as it lies in memory, where
  the slots-major layout made XLA transpose every layer's whole cache at every decode step.
  """

  keys: list
  values: list
  lengths: jnp.ndarray  # (batch,) int32

  @property
  def max_length(self) -> int:
    return self.keys[0].shape[2]


def init_cache(config: DecoderConfig, batch: int, max_length: int, dtype=None) -> KVCache:
  shape = (batch, config.num_kv_heads, max_length, config.head_dim)
  dtype = dtype or config.jnp_dtype
  zeros = lambda: [jnp.zeros(shape, dtype) for _ in range(config.num_layers)]  # noqa: E731
  return KVCache(keys=zeros(), values=zeros(), lengths=jnp.zeros((batch,), jnp.int32))


class RMSNorm(nnx.Module):

  def __init__(self, config: DecoderConfig, rngs: nnx.Rngs):
    self.eps = config.rms_norm_eps
    self.scale = _param(rngs, (config.hidden_size,), ("norm",), config.jnp_param_dtype, "ones")

  def __call__(self, x):
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return self.scale[...].astype(x.dtype) * normed.astype(x.dtype)


class Attention(nnx.Module):
  """Grouped-query attention; MHA and MQA are the ratios 1 and num_heads."""

  def __init__(self, config: DecoderConfig, rngs: nnx.Rngs):
    e, h, kv, d = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim
    pd, std = config.jnp_param_dtype, config.initializer_range
    self.config = config
    self.q = _param(rngs, (e, h, d), ("embed", "heads", "head_dim"), pd, std)
    self.k = _param(rngs, (e, kv, d), ("embed", "kv_heads", "head_dim"), pd, std)
    self.v = _param(rngs, (e, kv, d), ("embed", "kv_heads", "head_dim"), pd, std)
    self.o = _param(rngs, (h, d, e), ("heads", "head_dim", "embed"), pd, std)
    if config.qkv_bias:
      self.q_bias = _param(rngs, (h, d), ("heads", "head_dim"), pd)
      self.k_bias = _param(rngs, (kv, d), ("kv_heads", "head_dim"), pd)
      self.v_bias = _param(rngs, (kv, d), ("kv_heads", "head_dim"), pd)
    if config.o_bias:
      self.o_bias = _param(rngs, (e,), ("embed",), pd)

  def _project(self, x, name):
    w = getattr(self, name)[...].astype(self.config.jnp_dtype)
    y = _dense(x, w.reshape(w.shape[0], -1)).reshape(*x.shape[:2], *w.shape[1:])
    if self.config.qkv_bias:
      y = y + getattr(self, name + "_bias")[...].astype(self.config.jnp_dtype)
    return y

  def __call__(self, x, positions, mask, inv_freq, cache_kv=None, write_slots=None, held_bound=None, packing=None):
    """x (B,T,E); mask (B,T,K) True where a query may see a key; returns (out, (k, v) of this layer).

    Without a cache the mask is causal in token order, so query block [lo, hi) only needs keys [0, hi):
    `_query_blocks` splits the queries and skips the keys above the diagonal. With `packing` (`Decoder.decode`)
    x, positions and write_slots are (1,N) real tokens: the projections compute those only, and the queries go
    to their (B,T) places for attention and back.
    """
    cfg = self.config
    q = apply_rope(self._project(x, "q"), positions, inv_freq)
    k = apply_rope(self._project(x, "k"), positions, inv_freq)
    v = self._project(x, "v")
    if cache_kv is not None:
      b, t = mask.shape[:2]
      rows = jnp.arange(b)[:, None] if packing is None else (packing // t)[None]  # indexed block: k's shape
      k = cache_kv[0].at[rows, :, write_slots].set(k.astype(cache_kv[0].dtype), mode="drop")
      v = cache_kv[1].at[rows, :, write_slots].set(v.astype(cache_kv[1].dtype), mode="drop")
      window = mask.shape[-1]  # attention reads the first `window` slots only (Decoder.decode)
      if packing is not None:
        q = jnp.zeros((b * t, *q.shape[2:]), q.dtype).at[packing].set(q[0], mode="drop").reshape(b, t, *q.shape[2:])
      if t == 1:
        out = self._attend_one(q, k[:, :, :window], v[:, :, :window], mask)
      else:  # query block [lo, hi) sees at most held_bound + hi slots (fresh prompts: the keys up to hi)
        blocks = _query_blocks(t) if held_bound is not None else [(0, t)]
        ends = [window if held_bound is None else min(window, held_bound + hi) for _, hi in blocks]
        out = jnp.concatenate(
            [
                self._attend(q[:, lo:hi], k[:, :, :end], v[:, :, :end], mask[:, lo:hi, :end], kv_layout="bksd")
                for (lo, hi), end in zip(blocks, ends)
            ],
            axis=1,
        )
      if packing is not None:
        out = jnp.take(out.reshape(b * t, *out.shape[2:]), packing, axis=0, mode="clip")[None]
    else:
      out = jnp.concatenate(
          [
              self._attend(q[:, lo:hi], k[:, :hi], v[:, :hi], mask[:, lo:hi, :hi])
              for lo, hi in _query_blocks(x.shape[1])
          ],
          axis=1,
      )
    b, t, h, d = out.shape
    out = _dense(out.reshape(b, t, h * d), self.o[...].astype(cfg.jnp_dtype).reshape(h * d, -1))
    if cfg.o_bias:
      out = out + self.o_bias[...].astype(cfg.jnp_dtype)
    return out, (k, v)

  def _attend(self, q, k, v, mask, kv_layout="bskd"):
    """Softmax attention of q (B,T,H,D) over k, v (B,S,KV,D), or (B,KV,S,D) as the cache holds them
    (`kv_layout="bksd"`); mask (B,T,S). f32 scores and softmax."""
    cfg = self.config
    b, t, h, d = q.shape
    q = q.reshape(b, t, cfg.num_kv_heads, h // cfg.num_kv_heads, d)
    scores = jnp.einsum(f"btkgd,{kv_layout}->bkgts", q, k.astype(q.dtype)).astype(jnp.float32) * (d**-0.5)
    scores = jnp.where(mask[:, None, None, :, :], scores, _MASKED)
    probs = jax.nn.softmax(scores, axis=-1).astype(cfg.jnp_dtype)
    return jnp.einsum(f"bkgts,{kv_layout}->btkgd", probs, v.astype(cfg.jnp_dtype)).reshape(b, t, h, d)

  def _attend_one(self, q, k, v, mask):
    """One query per row (a decode step) over the cache k, v (B,KV,S,D); mask (B,1,S). Written as
    multiply-and-reduce, which XLA fuses into one pass over the cache: as a batched dot it became B x KV
    tiny matmuls, 1.3-1.9x slower per SmolLM2 decode step on CPU at batch 64 (128-512 slots). f32 sums."""
    cfg = self.config
    b, _, h, d = q.shape
    q = q.reshape(b, cfg.num_kv_heads, h // cfg.num_kv_heads, 1, d).astype(jnp.float32)
    scores = (q * k[:, :, None].astype(jnp.float32)).sum(-1) * (d**-0.5)  # (B,KV,G,S)
    scores = jnp.where(mask[:, None, None, 0, :], scores, _MASKED)
    probs = jax.nn.softmax(scores, axis=-1)
    out = (probs[..., None] * v[:, :, None].astype(jnp.float32)).sum(-2)  # (B,KV,G,D)
    return out.astype(cfg.jnp_dtype).reshape(b, 1, h, d)


class MLP(nnx.Module):
  """SwiGLU feed-forward."""

  def __init__(self, config: DecoderConfig, rngs: nnx.Rngs):
    e, f, pd, std = config.hidden_size, config.intermediate_size, config.jnp_param_dtype, config.initializer_range
    self.dtype = config.jnp_dtype
    self.gate = _param(rngs, (e, f), ("embed", "mlp"), pd, std)
    self.up = _param(rngs, (e, f), ("embed", "mlp"), pd, std)
    self.down = _param(rngs, (f, e), ("mlp", "embed"), pd, std)

  def __call__(self, x):
    gate = _dense(x, self.gate[...].astype(self.dtype))
    up = _dense(x, self.up[...].astype(self.dtype))
    return _dense(jax.nn.silu(gate) * up, self.down[...].astype(self.dtype))


class Block(nnx.Module):

  def __init__(self, config: DecoderConfig, rngs: nnx.Rngs):
    self.attn_norm = RMSNorm(config, rngs)
    self.attn = Attention(config, rngs)
    self.mlp_norm = RMSNorm(config, rngs)
    self.mlp = MLP(config, rngs)

  def __call__(self, x, positions, mask, inv_freq, cache_kv=None, write_slots=None, held_bound=None, packing=None):
    attn_out, new_kv = self.attn(
        self.attn_norm(x), positions, mask, inv_freq, cache_kv, write_slots, held_bound, packing
    )
    x = x + attn_out
    return x + self.mlp(self.mlp_norm(x)), new_kv


class Decoder(nnx.Module):
  """`model(input_ids)` -> logits (batch, length, vocab) in float32."""

  def __init__(self, config: DecoderConfig, rngs: nnx.Rngs):
    self.config = config
    pd, std = config.jnp_param_dtype, config.initializer_range
    self.embed = _param(rngs, (config.vocab_size, config.hidden_size), ("vocab", "embed"), pd, std)
    self.layers = nnx.List([Block(config, rngs) for _ in range(config.num_layers)])
    self.final_norm = RMSNorm(config, rngs)
    if not config.tie_word_embeddings:
      self.lm_head = _param(rngs, (config.hidden_size, config.vocab_size), ("embed", "vocab"), pd, std)

  def __call__(self, input_ids, attention_mask=None, remat: bool = False):
    return self.logits(self.hidden_states(input_ids, attention_mask, remat))

  def logits(self, hidden):
    dtype = self.config.jnp_dtype
    if self.config.tie_word_embeddings:
      out = _dense(hidden, self.embed[...].astype(dtype).T)
    else:
      out = _dense(hidden, self.lm_head[...].astype(dtype))
    return out.astype(jnp.float32)

  def hidden_states(self, input_ids, attention_mask=None, remat: bool = False):
    """Final-norm hidden states of a full (uncached) forward pass; pads may sit anywhere. With `remat` the
    backward pass keeps only each layer's input and recomputes the rest, one layer at a time (long sequences
    of a large model: activations from layers x (scores + MLP) down to layers x hidden + one layer)."""
    mask = _real_tokens(input_ids, attention_mask)
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
    t = input_ids.shape[1]
    causal = jnp.arange(t)[None, :] <= jnp.arange(t)[:, None]
    visible = causal[None] & mask[:, None, :] & self._in_window(positions[:, :, None], positions[:, None, :])
    x = self._embed(input_ids)
    inv_freq = inverse_frequencies(self.config)
    for layer in self.layers:
      if remat:
        x = _rematerialised_block(layer, x, positions, visible, inv_freq)
      else:
        x, _ = layer(x, positions, visible, inv_freq)
    return self.final_norm(x)

  def decode(
      self,
      input_ids,
      cache: KVCache,
      attention_mask=None,
      window: Optional[int] = None,
      held_bound: Optional[int] = None,
      packing: Optional[jnp.ndarray] = None,
      logits_at: Optional[jnp.ndarray] = None,
  ):
    """Appends the real tokens of `input_ids` to each row's cache; returns (logits, new cache).

    Static hints a caller that knows the lengths gives: `window`, attention reads only the first `window`
    slots of the cache, which must then hold every row's keys, old and new (a short conversation in a long
    cache pays for its own length only); `held_bound`, no row holds more than this many tokens before the
    call, so a prefill's query blocks skip the slots past their diagonal, as the uncached pass does.

    `packing` (N,): the flat positions b*T+t of the real tokens, in order, then B*T for each unused entry
    (`shapes.packing_index`). The per-token parts of each layer (norms, projections, MLP: most of a prefill's
    work) then compute N tokens instead of B*T, only attention sees the padded (B,T) layout: a turn whose
    appends range from 30 to 140 tokens pays for the tokens it has. `logits_at` (B,): logits of that token of
    each row only, (B,1,V), as a prefill needs (all of them would cost (B,T,V)).
    """
    mask = _real_tokens(input_ids, attention_mask)
    slots = cache.lengths[:, None] + jnp.cumsum(mask, axis=1) - 1  # (B,T) slot == RoPE position
    write_slots = jnp.where(mask, slots, cache.max_length)  # pads go out of range and are dropped
    new_lengths = cache.lengths + mask.sum(axis=1).astype(jnp.int32)
    key_slots = jnp.arange(min(window or cache.max_length, cache.max_length))[None, None, :]
    visible = (
        (key_slots <= slots[:, :, None])
        & (key_slots < new_lengths[:, None, None])
        & self._in_window(slots[:, :, None], key_slots)
    )
    positions = jnp.maximum(slots, 0)
    if packing is not None:  # (B,T) -> (1,N) real tokens; unused entries write nowhere
      packed = lambda a, fill: jnp.take(a.reshape(-1), packing, mode="fill", fill_value=fill)[None]  # noqa: E731
      input_ids, positions = packed(input_ids, 0), packed(positions, 0)
      write_slots = packed(write_slots, cache.max_length)
    x = self._embed(input_ids)
    inv_freq = inverse_frequencies(self.config)
    keys, values = [], []
    for i, layer in enumerate(self.layers):
      cache_kv = (cache.keys[i], cache.values[i])
      x, (k, v) = layer(x, positions, visible, inv_freq, cache_kv, write_slots, held_bound, packing)
      keys.append(k)
      values.append(v)
    if logits_at is not None:
      b, t = mask.shape
      where = jnp.arange(b) * t + logits_at
      if packing is not None:  # the packed entry of each row's token (rows without one get any: masked later)
        where = jnp.minimum(jnp.searchsorted(packing, where), packing.shape[0] - 1)
      x = jnp.take(x.reshape(-1, x.shape[-1]), where, axis=0)[:, None]
    logits = self.logits(self.final_norm(x))
    return logits, KVCache(keys=keys, values=values, lengths=new_lengths)

  def _embed(self, input_ids):
    return jnp.take(self.embed[...], input_ids, axis=0).astype(self.config.jnp_dtype)

  def _in_window(self, query_pos, key_pos):
    if not self.config.sliding_window:
      return True
    return query_pos - key_pos < self.config.sliding_window


@nnx.remat
def _rematerialised_block(layer, x, positions, visible, inv_freq):
  return layer(x, positions, visible, inv_freq)[0]


def _dense(x, w):
  """x (B,T,I) @ w (I,O) as one 2-D matmul: XLA CPU ran the batched 3-D form ~1.5x slower (fwd+bwd)."""
  b, t, i = x.shape
  return (x.reshape(b * t, i) @ w).reshape(b, t, w.shape[1])


def _query_blocks(length: int, max_blocks: int = 16, min_block: int = 64) -> list[tuple[int, int]]:
  """[lo, hi) query blocks for causal attention. At 32 x 256 tokens, 4 blocks of 64 ran attention's fwd+bwd
  1.5-2x faster on XLA CPU than one (T, T) block: a quarter fewer scores and smaller intermediates."""
  size = max(min_block, -(-length // max_blocks))
  return [(lo, min(lo + size, length)) for lo in range(0, length, size)]


def _real_tokens(input_ids, attention_mask: Optional[jnp.ndarray]):
  if attention_mask is None:
    return jnp.ones(input_ids.shape, bool)
  return attention_mask.astype(bool)
