"""Batched decoding on a persistent KV cache: jitted prefill of appended tokens, and bounded jitted decode
rounds with per-row stops that return to the host.

A `DecodeSession` holds one cache for a batch of rows across many turns: `extend` prefills only the
tokens appended to each row (a retrieved passage, a user turn), `decode` samples until every live row
hits end-of-sequence, a stop sequence or its budget. Row r samples the token at cache position p with
key fold_in(key_r, p), so its draws depend neither on the batch a row is in nor on how its turns were cut;
the batch decides the padding and the attention window, which move the logits by float rounding only (a
run is deterministic; the same row in another batch can, rarely, sample another token). Shapes are bucketed
(powers of two) so a run compiles a handful of programs; `compiles` counts them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Iterable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from exsearch_jax.models.decoder import Decoder, KVCache, init_cache

EOS, STOP, BUDGET = 1, 2, 3  # why a row's decode round ended
compiles = {"count": 0}  # incremented when jit traces a new shape
_DISALLOWED = -1e30  # logit of a token the grammar forbids (finite: no NaN if a state allowed none)
CANDIDATES = 256  # nucleus candidates per row (see `sample_logits`)
WIDE_CANDIDATES = 4096  # ... for the rare row whose nucleus is wider
SHARED_PREFIX = 32  # tokens common to every prompt of a session worth prefilling once (`DecodeSession.start`)


def bucket(n: int, minimum: int = 16) -> int:
  return max(minimum, 1 << max(0, int(n) - 1).bit_length())


def attention_window(need: int, capacity: int) -> int:
  """Cache slots the attention reads when no row will hold more than `need`: a power of two (>= 128), at most
  `capacity`. Slots past a row's length are masked to zeros, so the window changes the time, and float rounding
  only (XLA sums a short dot in another order): attention over an 8,192-slot cache whose rows hold 300 tokens
  reads 512 slots."""
  return min(int(capacity), bucket(need, minimum=128))


def _prefill_kwargs(held: int, width: int, need: int, capacity: int) -> dict:
  """`window` and `held_bound` of a prefill of `width` tokens onto rows holding <= `held` tokens, <= `need` after:
  where the cache has room, a window with `width` slots to spare past `held`, so query blocks may stop at their
  diagonal (held_bound = window - width: static, one program per window and width)."""
  if held + width <= capacity:
    window = attention_window(held + width, capacity)
    return {"window": window, "held_bound": window - width}
  return {"window": attention_window(need, capacity), "held_bound": None}


def length_groups(lengths: Sequence[int], shards: int = 1, saving: float = 0.5) -> list[list[int]]:
  """Indices of prompts to prefill together: one group per prefill width, when that computes at most `saving`
  of the padded tokens of one batch at the longest prompt's width (16 prompts of 37-360 tokens: 43%), else one
  group. Each group is a batch of its own (rows a power of two that `shards` divides): more programs to compile,
  far less padding."""
  rows = lambda n: -(-bucket(n, minimum=1) // shards) * shards  # noqa: E731
  widths = [_prefill_width(max(n, 1)) for n in lengths]
  groups: dict[int, list[int]] = {}
  for i, w in sorted(enumerate(widths), key=lambda iw: iw[1]):
    groups.setdefault(w, []).append(i)
  together = rows(len(lengths)) * max(widths, default=16)
  if len(groups) > 1 and sum(rows(len(g)) * w for w, g in groups.items()) <= saving * together:
    return list(groups.values())
  return [list(range(len(lengths)))]


def _common_prefix(sequences: Sequence[Sequence[int]]) -> tuple:
  """The longest run of tokens every sequence starts with."""
  shortest = min(sequences, key=len)
  for i, token in enumerate(shortest):
    if any(s[i] != token for s in sequences):
      return tuple(shortest[:i])
  return tuple(shortest)


def _prefill_width(n: int) -> int:
  """Powers of two and 3/4 of them: a prefill pays for its padding, so waste <= 1/3 for 2x the programs."""
  b = bucket(n)
  return b * 3 // 4 if b * 3 // 4 >= max(n, 16) else b


def sample_logits(logits, key, temperature: float, top_p: float, top_k: int):
  """Greedy when temperature == 0, else temperature / top-k / nucleus sampling. logits (B, V), key (B,).

  A row draws one uniform and picks its token by inverse CDF over the allowed tokens, best first. The
  nucleus is looked for among the `CANDIDATES` most likely tokens (`lax.top_k`: a full sort of the
  vocabulary every step costs more than the model on CPU). A row whose nucleus reaches past them, which
  is rare at top_p <= 0.95 (< 1% of SmolLM2 steps at temperature 0.8), is redone alone among its
  `WIDE_CANDIDATES` best tokens, and sorted in full if even those fall short. So the result is exact,
  and a row's token depends on its own logits and key only, never on the other rows.
  """
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = jnp.asarray(logits, jnp.float32) / temperature
  u = jax.vmap(jax.random.uniform)(key)
  if not top_k and top_p >= 1.0:
    return _pick(jnp.exp(logits - jax.nn.logsumexp(logits, axis=-1, keepdims=True)), u)
  values, ids = jax.lax.top_k(logits, min(top_k or CANDIDATES, logits.shape[-1]))
  lse = jax.nn.logsumexp(values if top_k else logits, axis=-1)  # top-k renormalises over its k tokens
  token, covered = _nucleus(values, ids, lse, u, top_p)
  if top_k or top_p >= 1.0:
    return token
  return _wide_rows(logits, lse, u, top_p, ~covered, token)


def _pick(probs, u):
  """Inverse CDF: the first index whose cumulative (unnormalised) probability reaches u * total."""
  cum = jnp.cumsum(probs, axis=-1)
  return jnp.minimum((cum < u[..., None] * cum[..., -1:]).sum(-1), probs.shape[-1] - 1).astype(jnp.int32)


def _nucleus(values, ids, lse, u, top_p):
  """Picks among candidates sorted best first (values, ids (..., k)); `covered`: the nucleus fits in them."""
  probs = jnp.exp(values - lse[..., None])
  cum = jnp.cumsum(probs, axis=-1)
  keep = cum - probs < top_p  # the first token past top_p is kept
  token = jnp.take_along_axis(ids, _pick(jnp.where(keep, probs, 0.0), u)[..., None], axis=-1)[..., 0]
  return token, cum[..., -1] >= top_p


def _wide_rows(logits, lse, u, top_p, rows, token):
  """Redoes the flagged rows one at a time among their WIDE_CANDIDATES best tokens, or the whole vocabulary."""
  wide = min(WIDE_CANDIDATES, logits.shape[-1])

  def body(state):
    token, rows = state
    r = jnp.argmax(rows)
    row = logits[r]
    best, covered = _nucleus(*jax.lax.top_k(row, wide), lse[r], u[r], top_p)

    def full_sort():
      order = jnp.argsort(-row)
      return _nucleus(row[order], order, lse[r], u[r], top_p)[0]

    return token.at[r].set(jax.lax.cond(covered, lambda: best, full_sort)), rows.at[r].set(False)

  return jax.lax.while_loop(lambda s: s[1].any(), body, (token, rows))[0]


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


@functools.partial(jax.jit, static_argnames=("graphdef", "batch", "capacity", "sharding"))
def _new_cache(graphdef, state, *, batch, capacity, sharding):
  compiles["count"] += 1
  return _constrain(init_cache(nnx.merge(graphdef, state).config, batch, capacity), sharding)


@functools.partial(
    jax.jit, static_argnames=("graphdef", "sharding", "window", "held_bound"), donate_argnames=("cache", "last")
)
def _extend(graphdef, state, cache, last, ids, mask, *, sharding, window, held_bound):
  """Appends the real tokens of each row; rows with no real token keep their cache and last logits.

  Each row's last real token goes in on its own, after the others: only its logits are needed, and
  computing (rows, width, vocab) logits would cost a fifth of a prefill's time and gigabytes of memory.
  """
  compiles["count"] += 1
  model = nnx.merge(graphdef, state)
  width = ids.shape[1]
  count = mask.sum(1)
  final = width - 1 - jnp.argmax(mask[:, ::-1], axis=1)
  _, cache = model.decode(
      ids,
      cache,
      attention_mask=mask & (jnp.arange(width)[None, :] != final[:, None]),
      window=window,
      held_bound=held_bound,
  )
  logits, cache = model.decode(
      jnp.take_along_axis(ids, final[:, None], axis=1), cache, attention_mask=(count > 0)[:, None], window=window
  )
  return _constrain(cache, sharding), jnp.where((count > 0)[:, None], logits[:, 0], last)


@functools.partial(jax.jit, static_argnames=("sharding",))
def _gather_rows(parts, source, live, *, sharding):
  """Row r of the result is row `source[r]` of the (cache, last) pairs in `parts` stacked in order; rows not
  `live` are left empty."""
  compiles["count"] += 1
  stacked = jax.tree.map(lambda *xs: jnp.concatenate(xs)[source], *parts)
  cache, last = stacked
  cache = dataclasses.replace(cache, lengths=jnp.where(live, cache.lengths, 0))
  return _constrain(cache, sharding), last


class _SamplingState(NamedTuple):
  """The decode loop's carry: one row per trajectory."""

  cache: object  # KVCache, every row's keys and values so far
  out: jax.Array  # (B, max_new) tokens sampled this round
  logprobs: jax.Array  # (B, max_new) their log-probabilities under the model
  lengths: jax.Array  # (B,) tokens sampled per row
  done: jax.Array  # (B,) rows that stopped (or were idle)
  reason: jax.Array  # (B,) why: EOS, STOP, BUDGET (0 while running)
  automaton: jax.Array  # (B,) grammar state per row (0 without a grammar)


@functools.partial(
    jax.jit,
    static_argnames=("graphdef", "max_new", "temperature", "top_p", "top_k", "sharding", "window"),
    donate_argnames=("cache",),
)
def _decode(
    graphdef,
    state,
    cache,
    last,
    budget,
    keys,
    stop_ids,
    eos_ids,
    grammar,
    *,
    max_new,
    temperature,
    top_p,
    top_k,
    sharding,
    window,
):
  """Samples up to `budget[r]` tokens per row (0 = row idle). The stop token is sampled but not fed.
  Attention reads the first `window` cache slots, which hold every row's tokens and its budget.

  `grammar`: None, or (allowed (S, V), transition (S, V), to_end (S,), half_spent (S,), row states (B,)):
  each row samples among the tokens its state allows that still let the turn end within its budget, and
  moves to the state its token leads to (to `half_spent[state]` once half its budget is written; see
  `grammar.py`). Log-probs are the model's own, before the mask.
  """
  compiles["count"] += 1
  model = nnx.merge(graphdef, state)
  batch = last.shape[0]
  rows = jnp.arange(batch)

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

  automaton = jnp.zeros((batch,), jnp.int32) if grammar is None else grammar[4]
  first, first_lp, automaton = sample(last, cache.lengths, automaton, jnp.zeros((batch,), jnp.int32))
  out = jnp.zeros((batch, max_new), jnp.int32).at[:, 0].set(first)
  logprobs = jnp.zeros((batch, max_new), jnp.float32).at[:, 0].set(first_lp)
  idle = budget <= 0
  lengths = jnp.where(idle, 0, 1).astype(jnp.int32)
  reason = finished(out, lengths, first, idle)
  done = idle | (reason > 0)

  def body(s: _SamplingState) -> _SamplingState:
    token = s.out[rows, jnp.maximum(s.lengths - 1, 0)]
    logits, cache = model.decode(token[:, None], s.cache, attention_mask=~s.done[:, None], window=window)
    nxt, lp, moved = sample(logits[:, 0], cache.lengths, s.automaton, s.lengths)
    write = jnp.where(s.done, max_new, s.lengths)
    lengths = s.lengths + (~s.done).astype(jnp.int32)
    out = s.out.at[rows, write].set(nxt, mode="drop")
    new_reason = finished(out, lengths, nxt, s.done)
    return _SamplingState(
        cache=cache,
        out=out,
        logprobs=s.logprobs.at[rows, write].set(lp, mode="drop"),
        lengths=lengths,
        done=s.done | (new_reason > 0),
        reason=jnp.maximum(s.reason, new_reason),
        automaton=jnp.where(s.done, s.automaton, moved),
    )

  final = jax.lax.while_loop(
      lambda s: ~s.done.all(), body, _SamplingState(cache, out, logprobs, lengths, done, reason, automaton)
  )
  return _constrain(final.cache, sharding), final.out, final.logprobs, final.lengths, final.reason


def stop_array(stop: Iterable[Sequence[int]]) -> np.ndarray:
  stops = [list(s) for s in stop if len(s)]
  width = max((len(s) for s in stops), default=1)
  return np.array([[-1] * (width - len(s)) + s for s in stops], np.int32).reshape(len(stops), width)


@dataclasses.dataclass
class Round:
  """One decode round's result per row: new tokens (stop token included), their log-probs, why it ended."""

  tokens: list
  logprobs: list
  reasons: list


class DecodeSession:
  """A batch of rows with one KV cache of `capacity` slots per row, kept on device across turns."""

  def __init__(self, model: Decoder, rows: int, capacity: int, seeds: Sequence[int], sharding=None, shards: int = 1):
    self.graphdef, self.state = nnx.split(model)
    self.rows = -(-bucket(rows, minimum=1) // shards) * shards  # idle rows pad to a size every shard divides
    self.capacity, self.sharding, self.shards = int(capacity), sharding, shards
    if len(seeds) != rows:
      raise ValueError(f"need one seed per row ({rows}), got {len(seeds)}")
    seeds = list(seeds) + [0] * (self.rows - rows)
    self.keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))
    self.cache = _new_cache(self.graphdef, self.state, batch=self.rows, capacity=self.capacity, sharding=sharding)
    self.last = jnp.zeros((self.rows, model.config.vocab_size), jnp.float32)
    self.lengths = np.zeros(self.rows, np.int64)  # host mirror of the cache lengths
    self._grammar: Optional[tuple] = None  # (TurnGrammar, its tables on device), uploaded once per session
    self.prefill_tokens = {"requested": 0, "computed": 0}  # prompt tokens of `start`: asked for, computed

  def extend(self, appends: Sequence[Optional[Sequence[int]]]):
    """Prefills the tokens appended to each row (None or [] = nothing for that row)."""
    width = _prefill_width(max((len(a) for a in appends if a), default=1))
    held = int(self.lengths.max())
    ids, mask = np.zeros((self.rows, width), np.int32), np.zeros((self.rows, width), bool)
    for r, tokens in enumerate(appends):
      if tokens:
        if self.lengths[r] + len(tokens) > self.capacity:
          raise ValueError(
              f"row {r}: {self.lengths[r]} + {len(tokens)} tokens exceed the cache capacity " f"{self.capacity}"
          )
        ids[r, : len(tokens)], mask[r, : len(tokens)] = tokens, True
        self.lengths[r] += len(tokens)
    self.cache, self.last = _extend(
        self.graphdef,
        self.state,
        self.cache,
        self.last,
        ids,
        mask,
        sharding=self.sharding,
        **_prefill_kwargs(held, width, int(self.lengths.max()), self.capacity),
    )

  def start(self, prompts: Sequence[Sequence[int]]):
    """Prefills each row's first tokens into this fresh session, computing shared tokens once (vLLM's prefix
    caching) and padding little: rows with the same prompt (the samples of one question) are prefilled once and
    their cache rows copied; a prefix common to all prompts of at least `SHARED_PREFIX` tokens (the instruction
    and chat template before the question) is prefilled once and copied before the rest; prompts of very
    different lengths are prefilled in groups of similar length (`length_groups`). `prefill_tokens` counts the
    prompt tokens asked for and those computed."""
    if self.lengths.any():
      raise ValueError("start: the session already holds tokens; use extend")
    for tokens in prompts:
      if len(tokens) > self.capacity:
        raise ValueError(f"a prompt of {len(tokens)} tokens exceeds the cache capacity {self.capacity}")
    first: dict[tuple, int] = {}
    source = [first.setdefault(tuple(p), len(first)) for p in prompts]
    unique = list(first)
    common = _common_prefix(unique) if len(unique) > 1 else ()
    common = common if len(common) >= SHARED_PREFIX else ()
    own = [p[len(common) :] for p in unique]
    self.prefill_tokens["requested"] += sum(len(p) for p in prompts)
    self.prefill_tokens["computed"] += len(common) + sum(map(len, own))
    groups = length_groups([len(t) for t in own], self.shards)
    if len(unique) == len(prompts) and not common and len(groups) == 1:
      self.extend(prompts)
      return
    prefix = self._prefilled(self.shards, [common]) if common else None
    caches, where = [], {}
    for group in groups:
      height = self._row_bucket(len(group))
      if prefix is None:
        cache, last = self._prefilled(height, [own[i] for i in group])
      else:  # the prefix's row copied to each of the group's rows, then each prompt's own tokens
        live = np.arange(height) < len(group)
        cache, last = _gather_rows((prefix,), np.zeros(height, np.int32), live, sharding=self.sharding)
        cache, last = self._prefilled(height, [own[i] for i in group], cache, last, len(common))
      offset = sum(c[1].shape[0] for c in caches)
      where.update({i: offset + j for j, i in enumerate(group)})
      caches.append((cache, last))
    rows = np.zeros(self.rows, np.int32)
    rows[: len(source)] = [where[s] for s in source]
    live = np.arange(self.rows) < len(prompts)
    self.cache, self.last = _gather_rows(tuple(caches), rows, live, sharding=self.sharding)
    self.lengths[: len(prompts)] = [len(p) for p in prompts]

  def _row_bucket(self, n: int) -> int:
    """Rows of a batch of n: a power of two that every shard divides."""
    return -(-bucket(n, minimum=1) // self.shards) * self.shards

  def _prefilled(self, batch: int, token_lists, cache=None, last=None, held: int = 0):
    """(cache, last logits) of `batch` rows after appending token_lists[r] to row r (a fresh cache unless given,
    whose rows hold `held` tokens each)."""
    if cache is None:
      cache = _new_cache(self.graphdef, self.state, batch=batch, capacity=self.capacity, sharding=self.sharding)
      last = jnp.zeros((batch, self.last.shape[-1]), jnp.float32)
    width = _prefill_width(max((len(t) for t in token_lists), default=1))
    ids, mask = np.zeros((batch, width), np.int32), np.zeros((batch, width), bool)
    for r, tokens in enumerate(token_lists):
      ids[r, : len(tokens)], mask[r, : len(tokens)] = tokens, True
    return _extend(
        self.graphdef,
        self.state,
        cache,
        last,
        ids,
        mask,
        sharding=self.sharding,
        **_prefill_kwargs(held, width, held + max(map(len, token_lists)), self.capacity),
    )

  def room(self, r: int) -> int:
    return int(self.capacity - self.lengths[r])

  def decode(
      self,
      budgets: Sequence[int],
      temperature: float = 0.0,
      top_p: float = 1.0,
      top_k: int = 0,
      stop: Iterable[Sequence[int]] = (),
      eos_token_ids: Sequence[int] = (),
      grammar=None,
      states: Optional[Sequence[int]] = None,
  ) -> Round:
    """Samples until each row with budget > 0 ends. Only the last (stop) token is not yet in the cache.

    `grammar` (a `grammar.TurnGrammar`) with `states` (each row's automaton state) constrains the tokens.
    """
    budget = np.zeros(self.rows, np.int32)
    budget[: len(budgets)] = [min(int(b), self.room(r)) for r, b in enumerate(budgets)]
    max_new = bucket(int(budget.max(initial=1)), minimum=8)
    eos = np.asarray(list(eos_token_ids), np.int32).reshape(-1)
    automaton: Optional[tuple] = None
    if grammar is not None:
      assert states is not None, "a grammar needs each row's automaton state"
      if self._grammar is None or self._grammar[0] is not grammar:
        # a model's vocabulary may be padded past its tokenizer's (Qwen2.5: 152,064 for 151,665 tokens): the
        # padding ids are never allowed
        extra = self.last.shape[-1] - grammar.allowed.shape[1]
        allowed = np.pad(grammar.allowed, ((0, 0), (0, max(extra, 0))))
        transition = np.pad(grammar.transition, ((0, 0), (0, max(extra, 0))), mode="edge")
        self._grammar = (grammar, *map(jnp.asarray, (allowed, transition, grammar.to_end, grammar.half_spent)))
      rows = np.zeros(self.rows, np.int32)
      rows[: len(states)] = states
      automaton = (*self._grammar[1:], rows)
    self.cache, out, logprobs, lengths, reasons = _decode(
        self.graphdef,
        self.state,
        self.cache,
        self.last,
        budget,
        self.keys,
        stop_array(stop),
        eos,
        automaton,
        max_new=max_new,
        temperature=float(temperature),
        top_p=float(top_p),
        top_k=int(top_k),
        sharding=self.sharding,
        window=attention_window(int((self.lengths + budget).max()), self.capacity),
    )
    out, logprobs, lengths, reasons = map(np.asarray, (out, logprobs, lengths, reasons))
    self.lengths += np.maximum(lengths - 1, 0)
    n = len(budgets)
    return Round(
        [out[r, : lengths[r]].tolist() for r in range(n)],
        [logprobs[r, : lengths[r]].tolist() for r in range(n)],
        reasons[:n].tolist(),
    )


def generate(
    model: Decoder,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    stop: Iterable[Sequence[int]] = (),
    eos_token_ids=None,
    seed: int = 0,
) -> list[list[int]]:
  """Continues each prompt (token-id lists of any lengths); returns the new tokens of each row.

  A row stops after an end-of-sequence token (`eos_token_ids`, default the model's), after any token
  sequence in `stop` (both kept in the output), or after `max_new_tokens`. Row i samples with seed
  `seed * 1_000_003 + i`, so results do not depend on the other rows.
  """
  if not prompts or any(len(p) == 0 for p in prompts):
    raise ValueError("generate: every prompt needs at least one token")
  eos = model.config.eos_token_id if eos_token_ids is None else eos_token_ids
  eos = [eos] if isinstance(eos, int) else list(eos or [])
  width = _prefill_width(max(len(p) for p in prompts))
  session = DecodeSession(
      model,
      len(prompts),
      width + bucket(max_new_tokens, minimum=8),
      seeds=[(seed * 1_000_003 + i) % (1 << 32) for i in range(len(prompts))],
  )
  session.start(prompts)
  return session.decode([max_new_tokens] * len(prompts), temperature, top_p, top_k, stop, eos).tokens
