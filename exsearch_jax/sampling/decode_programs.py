"""The jitted programs of a `DecodeSession` on its KV cache: a new cache, prefilling appended tokens (`extend`),
copying cache rows (`gather_rows`) and the decode round (`decode`); `extend_rows` and `decode_rows` compute only
the rows given. Shapes come bucketed from the session, so a run compiles a handful of programs; `compiles` counts
them."""

from __future__ import annotations

import dataclasses
import functools
from typing import Iterable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from exsearch_jax.models.decoder import KVCache, init_cache
from exsearch_jax.sampling.token_sampler import sample_logits

EOS, STOP, BUDGET = 1, 2, 3  # why a row's decode round ended
compiles = {"count": 0}  # incremented when jit traces a new shape
_DISALLOWED = -1e30  # logit of a token the grammar forbids (finite: no NaN if a state allowed none)


def _ends_with_stop(out, length, stops):
  """True per row when the generated tokens out[:, :length] end with one of `stops` (S, L; -1 = pad)."""
  if stops.shape[0] == 0:
    return jnp.zeros(out.shape[0], bool)
  width = stops.shape[1]
  idx = length[:, None] - width + jnp.arange(width)[None, :]
  tail = jnp.where(idx >= 0, jnp.take_along_axis(out, jnp.maximum(idx, 0), axis=1), -2)
  match = (stops[None, :, :] == -1) | (tail[:, None, :] == stops[None, :, :])  # stops right-aligned
  return match.all(axis=-1).any(axis=-1)


def _constrain(cache: KVCache, sharding) -> KVCache:
  if sharding is None:
    return cache
  return jax.tree.map(
      lambda x: jax.lax.with_sharding_constraint(
          x,
          jax.sharding.NamedSharding(
              sharding.mesh, jax.sharding.PartitionSpec(sharding.spec[0], *([None] * (x.ndim - 1)))
          ),
      ),
      cache,
  )


@functools.partial(jax.jit, static_argnames=("graphdef", "batch", "capacity", "sharding", "dtype"))
def new_cache(graphdef, state, *, batch, capacity, sharding, dtype=None):
  """An empty cache; `dtype` None = the model's compute dtype."""
  compiles["count"] += 1
  return _constrain(init_cache(nnx.merge(graphdef, state).config, batch, capacity, dtype), sharding)


@functools.partial(
    jax.jit, static_argnames=("graphdef", "sharding", "window", "held_bound"), donate_argnames=("cache", "last")
)
def extend(graphdef, state, cache, last, ids, mask, *, sharding, window, held_bound, packing=None):
  """Appends the real tokens of each row; rows with no real token keep their cache and last logits.
  `packing`: None, or where the real tokens lie (`Decoder.decode`), so that the dense layers compute only them."""
  compiles["count"] += 1
  cache, last = _append(nnx.merge(graphdef, state), cache, last, ids, mask, window, held_bound, packing)
  return _constrain(cache, sharding), last


@functools.partial(
    jax.jit, static_argnames=("graphdef", "sharding", "window", "held_bound"), donate_argnames=("cache", "last")
)
def extend_rows(graphdef, state, cache, last, rows, ids, mask, *, sharding, window, held_bound, packing=None):
  """`extend` of the rows `rows` (distinct) alone, ids and mask one row each: the others cost nothing."""
  compiles["count"] += 1
  sub, sub_last = _append(
      nnx.merge(graphdef, state), _rows_view(cache, rows, window), last[rows], ids, mask, window, held_bound, packing
  )
  return _constrain(_put_rows(cache, sub, rows), sharding), last.at[rows].set(sub_last)


ALL_ROWS = slice(None)  # `rows` of `_rows_view` and `_put_rows`: every row, sliced rather than gathered


def _rows_view(cache: KVCache, rows, window: int) -> KVCache:
  """The rows `rows` of the cache, their first `window` slots (which hold all they have and will have).

  A decode round runs on such a view, copied once (`ALL_ROWS` for a whole round): slicing the window out of the
  full cache inside the loop made XLA CPU copy each layer's window at every step, ~1/4 of a 128-row step at a
  512-slot window of 1,024 (docs/benchmarks.md). The window of a view is its capacity: no slice left to copy."""
  return KVCache(
      keys=[k[rows, :, :window] for k in cache.keys],
      values=[v[rows, :, :window] for v in cache.values],
      lengths=cache.lengths[rows],
  )


def _put_rows(cache: KVCache, sub: KVCache, rows) -> KVCache:
  """`cache` with the rows `rows` replaced by `sub` (in place when the cache is donated)."""
  window = sub.max_length
  return KVCache(
      keys=[k.at[rows, :, :window].set(s) for k, s in zip(cache.keys, sub.keys)],
      values=[v.at[rows, :, :window].set(s) for v, s in zip(cache.values, sub.values)],
      lengths=cache.lengths.at[rows].set(sub.lengths),
  )


def _append(model, cache, last, ids, mask, window, held_bound, packing):
  """(cache, last logits) after appending each row's real tokens: logits of each row's last real token only
  (all of them would cost (rows, width, vocab), a fifth of a prefill's time and gigabytes of memory)."""
  count = mask.sum(1)
  final = ids.shape[1] - 1 - jnp.argmax(mask[:, ::-1], axis=1)
  logits, cache = model.decode(
      ids, cache, attention_mask=mask, window=window, held_bound=held_bound, packing=packing, logits_at=final
  )
  return cache, jnp.where((count > 0)[:, None], logits[:, 0], last)


@functools.partial(jax.jit, static_argnames=("graphdef", "window"))
def continuation_logprobs(graphdef, state, cache, rows, keep, ids, mask, *, window):
  """(R, T-1): log p(ids[r, t+1]) given the first keep[r] cache slots of row rows[r] and ids[r, :t+1]; right
  padded (`mask`). The cache is read, not changed."""
  compiles["count"] += 1
  view = dataclasses.replace(_rows_view(cache, rows, window), lengths=keep)
  logits, _ = nnx.merge(graphdef, state).decode(ids, view, attention_mask=mask, window=window)
  logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
  return jnp.where(mask[:, 1:], jnp.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0], 0.0)


@functools.partial(jax.jit, static_argnames=("sharding",))
def gather_rows(parts, source, live, *, sharding):
  """Row r of the result is row `source[r]` of the (cache, last) pairs in `parts` stacked in order; rows not
  `live` are left empty."""
  compiles["count"] += 1
  stacked = jax.tree.map(lambda *xs: jnp.concatenate(xs)[source], *parts)
  cache, last = stacked
  cache = dataclasses.replace(cache, lengths=jnp.where(live, cache.lengths, 0))
  return _constrain(cache, sharding), last


class RoundRows(NamedTuple):
  """Where each row of a decode round stands: what `decode` returns beside the cache, and what a later call
  goes on from (`carry`). Arrays on the device, or their numpy copies on the host."""

  out: jax.Array  # (B, max_new) tokens sampled this round
  logprobs: jax.Array  # (B, max_new) their log-probabilities under the model
  lengths: jax.Array  # (B,) tokens sampled per row
  done: jax.Array  # (B,) rows that stopped (or were idle)
  reason: jax.Array  # (B,) why: EOS, STOP, BUDGET (0 while running)
  automaton: jax.Array  # (B,) grammar state per row (0 without a grammar)


@functools.partial(
    jax.jit,
    static_argnames=("graphdef", "max_new", "temperature", "top_p", "top_k", "sharding", "window", "floor"),
    donate_argnames=("cache",),
)
def decode(
    graphdef,
    state,
    cache,
    last,
    budget,
    keys,
    stop_ids,
    eos_ids,
    grammar,
    carry=None,
    *,
    max_new,
    temperature,
    top_p,
    top_k,
    sharding,
    window,
    floor=0,
):
  """Samples up to `budget[r]` tokens per row (0 = row idle). The stop token is sampled but not fed.
  Attention reads the first `window` cache slots, which hold every row's tokens and its budget.

  `grammar`: None, or (allowed (S, V), transition (S, V), to_end (S,), half_spent (S,), row states (B,)):
  each row samples among the tokens its state allows that still let the turn end within its budget, and
  moves to the state its token leads to (to `half_spent[state]` once half its budget is written; see
  `grammar.py`). Log-probs are the model's own, before the mask.

  The loop returns (cache, `RoundRows`) once at most `floor` rows are still running (0: once all ended).
  `carry`, a `RoundRows` of some of those rows, goes on from there instead of starting, so the host can continue
  the few long turns in a smaller batch (`DecodeSession.decode`).
  """
  compiles["count"] += 1
  model = nnx.merge(graphdef, state)
  batch = last.shape[0]
  rows = jnp.arange(batch)
  full, cache = cache, _rows_view(cache, ALL_ROWS, window)

  def sample(logits, positions, automaton, written):
    step_keys = jax.vmap(jax.random.fold_in)(keys, positions)
    masked = logits
    if grammar is not None:
      allowed, transition, to_end, half_spent = grammar[:4]
      automaton = jnp.where(2 * written >= budget, half_spent[automaton], automaton)
      fits = 1 + to_end[transition[automaton]] <= (budget - written)[:, None]
      masked = jnp.where(allowed[automaton] & fits, logits, _DISALLOWED)
    token = sample_logits(masked, step_keys, temperature, top_p, top_k)
    logprob = jnp.take_along_axis(jax.nn.log_softmax(logits.astype(jnp.float32)), token[:, None], 1)[:, 0]
    return token, logprob, automaton if grammar is None else grammar[1][automaton, token]

  def finished(out, lengths, token, done):
    reason = jnp.where(
        jnp.isin(token, eos_ids),
        EOS,
        jnp.where(_ends_with_stop(out, lengths, stop_ids), STOP, jnp.where(lengths >= budget, BUDGET, 0)),
    )
    return jnp.where(done, 0, reason)

  if carry is None:
    automaton = jnp.zeros((batch,), jnp.int32) if grammar is None else grammar[4]
    first, first_lp, automaton = sample(last, cache.lengths, automaton, jnp.zeros((batch,), jnp.int32))
    out = jnp.zeros((batch, max_new), jnp.int32).at[:, 0].set(first)
    logprobs = jnp.zeros((batch, max_new), jnp.float32).at[:, 0].set(first_lp)
    idle = budget <= 0
    lengths = jnp.where(idle, 0, 1).astype(jnp.int32)
    reason = finished(out, lengths, first, idle)
    start = RoundRows(out, logprobs, lengths, idle | (reason > 0), reason, automaton)
  else:
    start = RoundRows(*carry)

  def body(state: tuple) -> tuple:  # the loop's carry: (cache, RoundRows), one row per trajectory
    cache, s = state
    token = s.out[rows, jnp.maximum(s.lengths - 1, 0)]
    logits, cache = model.decode(token[:, None], cache, attention_mask=~s.done[:, None], window=window)
    nxt, lp, moved = sample(logits[:, 0], cache.lengths, s.automaton, s.lengths)
    write = jnp.where(s.done, max_new, s.lengths)
    lengths = s.lengths + (~s.done).astype(jnp.int32)
    out = s.out.at[rows, write].set(nxt, mode="drop")
    new_reason = finished(out, lengths, nxt, s.done)
    return cache, RoundRows(
        out=out,
        logprobs=s.logprobs.at[rows, write].set(lp, mode="drop"),
        lengths=lengths,
        done=s.done | (new_reason > 0),
        reason=jnp.maximum(s.reason, new_reason),
        automaton=jnp.where(s.done, s.automaton, moved),
    )

  cache, final = jax.lax.while_loop(lambda state: (~state[1].done).sum() > floor, body, (cache, start))
  return _constrain(_put_rows(full, cache, ALL_ROWS), sharding), final


@functools.partial(
    jax.jit,
    static_argnames=("graphdef", "max_new", "temperature", "top_p", "top_k", "sharding", "window", "floor"),
    donate_argnames=("cache",),
)
def decode_rows(graphdef, state, cache, last, rows, budget, keys, stop_ids, eos_ids, grammar, carry=None, **static):
  """`decode` of the rows `rows` (distinct) alone, `budget`, `carry` and the grammar's states one per row of
  `rows`."""
  sharding, window = static.pop("sharding"), static["window"]
  sub, result = decode(
      graphdef,
      state,
      _rows_view(cache, rows, window),
      last[rows],
      budget,
      keys[rows],
      stop_ids,
      eos_ids,
      grammar,
      carry,
      sharding=None,
      **static,
  )
  return _constrain(_put_rows(cache, sub, rows), sharding), result


def stop_array(stop: Iterable[Sequence[int]]) -> np.ndarray:
  stops = [list(s) for s in stop if len(s)]
  width = max((len(s) for s in stops), default=1)
  return np.array([[-1] * (width - len(s)) + s for s in stops], np.int32).reshape(len(stops), width)
