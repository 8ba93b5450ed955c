"""Batched generation: one jitted prefill, then a bounded jitted decode loop with per-row stops.

Rows finish independently (end-of-sequence token, a stop sequence, or the token budget); a finished
row feeds a pad (mask 0) so it takes no more cache slots. Shapes are bucketed to powers of two so that
a run compiles a handful of programs, not one per prompt length.
"""
from __future__ import annotations

import functools
from typing import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from exsearch_jax.models.decoder import Decoder, init_cache


def bucket(n: int, minimum: int = 16) -> int:
  return max(minimum, 1 << max(0, int(n) - 1).bit_length())


def sample_logits(logits, key, temperature: float, top_p: float, top_k: int):
  """Greedy when temperature == 0, else temperature / top-k / nucleus sampling. logits (B, V)."""
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits / temperature
  if top_k:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    cumulative = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
    drop_sorted = cumulative - jax.nn.softmax(sorted_logits, axis=-1) >= top_p  # keep the first token past p
    drop = jnp.zeros_like(drop_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(drop_sorted)
    logits = jnp.where(drop, -jnp.inf, logits)
  return jax.vmap(jax.random.categorical)(key, logits).astype(jnp.int32)


def _ends_with_stop(out, length, stops):
  """True per row when the generated tokens out[:, :length] end with one of `stops` (S, L; -1 = pad)."""
  if stops.shape[0] == 0:
    return jnp.zeros(out.shape[0], bool)
  width = stops.shape[1]
  idx = length[:, None] - width + jnp.arange(width)[None, :]
  tail = jnp.where(idx >= 0, jnp.take_along_axis(out, jnp.maximum(idx, 0), axis=1), -2)
  # stops are right-aligned; -1 pads on the left match anything
  match = (stops[None, :, :] == -1) | (tail[:, None, :] == stops[None, :, :])
  return match.all(axis=-1).any(axis=-1)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new", "temperature", "top_p", "top_k", "max_length"),
                   donate_argnames=())
def _generate(graphdef, state, ids, mask, live, budget, keys, stop_ids, eos_ids, *, max_new, temperature, top_p, top_k,
              max_length):
  model = nnx.merge(graphdef, state)
  batch = ids.shape[0]
  cache = init_cache(model.config, batch, max_length)
  logits, cache = model.decode(ids, cache, attention_mask=mask)
  last = jnp.take_along_axis(logits, (mask.sum(1) - 1)[:, None, None], axis=1)[:, 0]

  def step_keys(step):
    return jax.vmap(lambda k: jax.random.fold_in(k, step))(keys)

  first = sample_logits(last, step_keys(0), temperature, top_p, top_k)
  out = jnp.zeros((batch, max_new), jnp.int32).at[:, 0].set(first)
  lengths = jnp.ones((batch,), jnp.int32)
  done = ~live | jnp.isin(first, eos_ids) | _ends_with_stop(out, lengths, stop_ids) | (budget <= 1)

  def cond(carry):
    step, _, _, _, done = carry
    return (step < budget) & ~done.all()

  def body(carry):
    step, cache, out, lengths, done = carry
    token = out[jnp.arange(batch), lengths - 1]
    logits, cache = model.decode(token[:, None], cache, attention_mask=~done[:, None])
    nxt = sample_logits(logits[:, 0], step_keys(step), temperature, top_p, top_k)
    out = out.at[jnp.arange(batch), jnp.where(done, max_new, lengths)].set(nxt, mode="drop")
    lengths = lengths + (~done).astype(jnp.int32)
    done = done | jnp.isin(nxt, eos_ids) | _ends_with_stop(out, lengths, stop_ids) | (lengths >= budget)
    return step + 1, cache, out, lengths, done

  _, _, out, lengths, _ = jax.lax.while_loop(cond, body, (jnp.int32(1), cache, out, lengths, done))
  return out, lengths


def _stop_array(stop: Iterable[Sequence[int]]) -> np.ndarray:
  stops = [list(s) for s in stop if len(s)]
  width = max((len(s) for s in stops), default=1)
  return np.array([[-1] * (width - len(s)) + s for s in stops], np.int32).reshape(len(stops), width)


def generate(model: Decoder, prompts: Sequence[Sequence[int]], max_new_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0, top_k: int = 0, stop: Iterable[Sequence[int]] = (), eos_token_ids=None,
             seed: int = 0) -> list[list[int]]:
  """Continues each prompt (token-id lists of any lengths); returns the new tokens of each row.

  A row stops after an end-of-sequence token (`eos_token_ids`, default the model's), after any token
  sequence in `stop` (both kept in the output), or after `max_new_tokens`. Row i samples with the key
  fold_in(PRNGKey(seed), i), so results do not depend on batch composition.
  """
  if not prompts or any(len(p) == 0 for p in prompts):
    raise ValueError("generate: every prompt needs at least one token")
  eos = model.config.eos_token_id if eos_token_ids is None else eos_token_ids
  eos = np.array([eos] if isinstance(eos, int) else list(eos or []), np.int32).reshape(-1)
  width = bucket(max(len(p) for p in prompts))
  rows = bucket(len(prompts), minimum=1)
  ids = np.zeros((rows, width), np.int32)
  mask = np.zeros((rows, width), bool)
  for i, p in enumerate(prompts):
    ids[i, :len(p)], mask[i, :len(p)] = p, True
  mask[len(prompts):, 0] = True  # filler rows up to the batch bucket: one token each, done at once
  live = np.arange(rows) < len(prompts)
  base = jax.random.PRNGKey(seed)
  keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(rows))
  max_new = bucket(max_new_tokens, minimum=8)
  graphdef, state = nnx.split(model)
  out, lengths = _generate(graphdef, state, ids, mask, live, np.int32(max_new_tokens), keys, _stop_array(stop), eos, max_new=max_new,
                           temperature=float(temperature), top_p=float(top_p), top_k=int(top_k),
                           max_length=width + max_new)
  out, lengths = np.asarray(out), np.asarray(lengths)
  return [out[i, :lengths[i]].tolist() for i in range(len(prompts))]
