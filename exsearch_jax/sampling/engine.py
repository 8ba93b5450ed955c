"""Batched decoding on a persistent KV cache: jitted prefill of appended tokens, and bounded jitted decode
rounds with per-row stops that return to the host.

A `DecodeSession` holds one cache for a batch of rows across many turns: `extend` prefills only the
tokens appended to each row (a retrieved passage, a user turn), `decode` samples until every live row
hits end-of-sequence, a stop sequence or its budget. Row r samples the token at cache position p with
key fold_in(key_r, p), so its draws depend neither on the batch a row is in nor on how its turns were cut;
the batch decides the padding and the attention window, which move the logits by float rounding only (a
run is deterministic; the same row in another batch can, rarely, sample another token). Shapes are bucketed
(`shapes.py`) so a run compiles a handful of programs (`decode_programs`; `compiles` counts them).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from exsearch_jax.models.decoder import Decoder
from exsearch_jax.sampling import decode_programs as programs
from exsearch_jax.sampling.decode_programs import BUDGET, EOS, STOP, RoundRows, compiles, stop_array  # noqa: F401
from exsearch_jax.sampling.shapes import (  # noqa: F401 (bucket, attention_window: re-exported)
    APPEND_SAVING,
    SHRINK_ROWS,
    SHRINK_SHARE,
    attention_window,
    bucket,
    length_groups,
    packing_index,
    prefill_kwargs,
    prefill_width,
)

SHARED_PREFIX = 32  # tokens common to every prompt of a session worth prefilling once (`DecodeSession.start`)
SCORE_ROWS = 32  # rows per `continuation_logprobs` call: its logits are (rows, tokens, vocab) floats


def _common_prefix(sequences: Sequence[Sequence[int]]) -> tuple:
  """The longest run of tokens every sequence starts with."""
  shortest = min(sequences, key=len)
  for i, token in enumerate(shortest):
    if any(s[i] != token for s in sequences):
      return tuple(shortest[:i])
  return tuple(shortest)


@dataclasses.dataclass
class Round:
  """One decode round's result per row: new tokens (stop token included), their log-probs, why it ended."""

  tokens: list
  logprobs: list
  reasons: list


class DecodeSession:
  """A batch of rows with one KV cache of `capacity` slots per row, kept on device across turns."""

  def __init__(
      self,
      model: Decoder,
      rows: int,
      capacity: int,
      seeds: Sequence[int],
      sharding=None,
      shards: int = 1,
      cache_dtype=None,
  ):
    """`cache_dtype`: the KV cache's (None: the model's compute dtype; `benchmarks/decode_step.py` measures
    a bfloat16 cache under float32 compute: 1.05-3.2x slower per decode step on a CPU, whose XLA converts
    each element back inside the attention loop)."""
    self.cache_dtype = cache_dtype
    self.graphdef, self.state = nnx.split(model)
    self.rows = -(-bucket(rows, minimum=1) // shards) * shards  # idle rows pad to a size every shard divides
    self.capacity, self.sharding, self.shards = int(capacity), sharding, shards
    if len(seeds) != rows:
      raise ValueError(f"need one seed per row ({rows}), got {len(seeds)}")
    seeds = list(seeds) + [0] * (self.rows - rows)
    self.keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))
    self.cache = self._empty_cache(self.rows)
    self.last = jnp.zeros((self.rows, model.config.vocab_size), jnp.float32)
    self.lengths = np.zeros(self.rows, np.int64)  # host mirror of the cache lengths
    self._grammar: Optional[tuple] = None  # (TurnGrammar, its tables on device), uploaded once per session
    self.prefill_tokens = {"requested": 0, "computed": 0}  # prompt tokens of `start`: asked for, computed

  def extend(self, appends: Sequence[Optional[Sequence[int]]]):
    """Prefills the tokens appended to each row (None or [] = nothing for that row). Appends of very different
    lengths (retrieved passages for some rows, a short answer request for others) go in groups of similar
    length (`length_groups`), each a call of its own rows at its own width."""
    added = {r: tokens for r, tokens in enumerate(appends) if tokens}
    for r, tokens in added.items():
      if self.lengths[r] + len(tokens) > self.capacity:
        raise ValueError(f"row {r}: {self.lengths[r]} + {len(tokens)} tokens exceed the cache capacity {self.capacity}")
    live = list(added)
    if live:
      for group in length_groups([len(added[r]) for r in live], self.shards, APPEND_SAVING):
        self._extend_group([live[i] for i in group], added)

  def _extend_group(self, live: Sequence[int], added: dict[int, Sequence[int]]):
    """Prefills the tokens `added` to the rows `live` in one call at their width."""
    width = prefill_width(max(len(added[r]) for r in live))
    held = self.lengths.copy()
    ids, mask = np.zeros((self.rows, width), np.int32), np.zeros((self.rows, width), bool)
    for r in live:
      tokens = added[r]
      ids[r, : len(tokens)], mask[r, : len(tokens)] = tokens, True
      self.lengths[r] += len(tokens)
    rows = self._compacted(live)
    chosen = slice(None) if rows is None else rows
    kwargs = prefill_kwargs(int(held[chosen].max()), width, int(self.lengths[chosen].max()), self.capacity)
    if rows is None:
      self.cache, self.last = programs.extend(
          self.graphdef,
          self.state,
          self.cache,
          self.last,
          ids,
          mask,
          sharding=self.sharding,
          packing=packing_index(mask),
          **kwargs,
      )
    else:
      self.cache, self.last = programs.extend_rows(
          self.graphdef,
          self.state,
          self.cache,
          self.last,
          rows,
          ids[rows],
          mask[rows],
          sharding=self.sharding,
          packing=packing_index(mask[rows]),
          **kwargs,
      )

  def _all_rows(self, part: np.ndarray, rows: Optional[np.ndarray]) -> np.ndarray:
    """A result of the rows `rows` (None: of all rows) as one of all rows, zeros (nothing sampled) elsewhere."""
    if rows is None:
      return part
    full = np.zeros((self.rows, *part.shape[1:]), part.dtype)
    full[rows] = part
    return full

  def _compacted(self, live: Sequence[int]) -> Optional[np.ndarray]:
    """The rows a call computes when only `live` rows have work: those rows padded to a bucket with the idle
    rows holding the fewest tokens (the attention window spans the longest row), when that bucket is at most half
    the session's rows; else None (all rows, no copies). The late turns of a rollout, when most trajectories have
    answered, cost what their live rows cost."""
    height = self._row_bucket(len(live))
    if 2 * height > self.rows:
      return None
    taken = set(live)
    idle = sorted((r for r in range(self.rows) if r not in taken), key=lambda r: self.lengths[r])
    return np.asarray(sorted([*live, *idle[: height - len(live)]]), np.int32)

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
        cache, last = programs.gather_rows((prefix,), np.zeros(height, np.int32), live, sharding=self.sharding)
        cache, last = self._prefilled(height, [own[i] for i in group], cache, last, len(common))
      offset = sum(c[1].shape[0] for c in caches)
      where.update({i: offset + j for j, i in enumerate(group)})
      caches.append((cache, last))
    rows = np.zeros(self.rows, np.int32)
    rows[: len(source)] = [where[s] for s in source]
    live = np.arange(self.rows) < len(prompts)
    self.cache, self.last = programs.gather_rows(tuple(caches), rows, live, sharding=self.sharding)
    self.lengths[: len(prompts)] = [len(p) for p in prompts]

  def _row_bucket(self, n: int) -> int:
    """Rows of a batch of n: a power of two that every shard divides."""
    return -(-bucket(n, minimum=1) // self.shards) * self.shards

  def _empty_cache(self, batch: int):
    return programs.new_cache(
        self.graphdef, self.state, batch=batch, capacity=self.capacity, sharding=self.sharding, dtype=self.cache_dtype
    )

  def _prefilled(self, batch: int, token_lists, cache=None, last=None, held: int = 0):
    """(cache, last logits) of `batch` rows after appending token_lists[r] to row r (a fresh cache unless given,
    whose rows hold `held` tokens each)."""
    if cache is None:
      cache = self._empty_cache(batch)
      last = jnp.zeros((batch, self.last.shape[-1]), jnp.float32)
    width = prefill_width(max((len(t) for t in token_lists), default=1))
    ids, mask = np.zeros((batch, width), np.int32), np.zeros((batch, width), bool)
    for r, tokens in enumerate(token_lists):
      ids[r, : len(tokens)], mask[r, : len(tokens)] = tokens, True
    return programs.extend(
        self.graphdef,
        self.state,
        cache,
        last,
        ids,
        mask,
        sharding=self.sharding,
        packing=packing_index(mask),
        **prefill_kwargs(held, width, held + max(map(len, token_lists)), self.capacity),
    )

  def continuation_logprobs(
      self, rows: Sequence[int], keep: Sequence[int], tokens: Sequence[Sequence[int]]
  ) -> list[np.ndarray]:
    """For each row rows[i], its first keep[i] cache slots followed by tokens[i] (>= 2 tokens): the log-probs of
    tokens[i][1:], each given everything before it. The cache is left as it was. The E-step's log p(y*|x,z) of a
    trajectory on the cache it was sampled with: the gold answer's few tokens instead of the whole trajectory
    prefilled again."""
    for r, k, t in zip(rows, keep, tokens):
      if not (len(t) >= 2 and 0 <= k <= self.lengths[r] and k + len(t) <= self.capacity):
        raise ValueError(f"row {r}: cannot score {len(t)} tokens after {k} of its {self.lengths[r]} cached ones")
    scored = []
    for start in range(0, len(rows), SCORE_ROWS):
      part = list(range(start, min(start + SCORE_ROWS, len(rows))))
      height, width = self._row_bucket(len(part)), bucket(max(len(tokens[i]) for i in part), minimum=8)
      chosen, held = np.full(height, rows[part[0]], np.int32), np.zeros(height, np.int32)
      ids, mask = np.zeros((height, width), np.int32), np.zeros((height, width), bool)
      for j, i in enumerate(part):
        chosen[j], held[j] = rows[i], keep[i]
        ids[j, : len(tokens[i])], mask[j, : len(tokens[i])] = tokens[i], True
      window = attention_window(int((held + mask.sum(1)).max()), self.capacity)
      logp = np.asarray(
          programs.continuation_logprobs(self.graphdef, self.state, self.cache, chosen, held, ids, mask, window=window)
      )
      scored += [logp[j, : len(tokens[i]) - 1] for j, i in enumerate(part)]
    return scored

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
    A call returns to the host when at most half its rows still run (`SHRINK_SHARE`, `SHRINK_ROWS`); those go on
    alone.
    """
    budget = np.zeros(self.rows, np.int32)
    budget[: len(budgets)] = [min(int(b), self.room(r)) for r, b in enumerate(budgets)]
    max_new = bucket(int(budget.max(initial=1)), minimum=8)
    eos = np.asarray(list(eos_token_ids), np.int32).reshape(-1)
    stops = stop_array(stop)
    automaton: Optional[tuple] = None  # the grammar's tables and each row's state
    if grammar is not None:
      assert states is not None, "a grammar needs each row's automaton state"
      if self._grammar is None or self._grammar[0] is not grammar:
        # a model's vocabulary may be padded past its tokenizer's (Qwen2.5: 152,064 for 151,665 tokens): the
        # padding ids are never allowed
        extra = self.last.shape[-1] - grammar.allowed.shape[1]
        allowed = np.pad(grammar.allowed, ((0, 0), (0, max(extra, 0))))
        transition = np.pad(grammar.transition, ((0, 0), (0, max(extra, 0))), mode="edge")
        self._grammar = (grammar, *map(jnp.asarray, (allowed, transition, grammar.to_end, grammar.half_spent)))
      row_states = np.zeros(self.rows, np.int32)
      row_states[: len(states)] = states
      automaton = (*self._grammar[1:], row_states)
    rows = self._compacted(np.flatnonzero(budget).tolist())
    every: Optional[RoundRows] = None  # every row's state, on the host, after the first call
    height = self.rows + 1
    while every is None or not every.done.all():
      chosen = np.arange(self.rows) if rows is None else rows
      shrink = len(chosen) < height  # a call that may return early has fewer rows than the one before
      height = len(chosen)
      static = dict(
          max_new=max_new,
          temperature=float(temperature),
          top_p=float(top_p),
          top_k=int(top_k),
          sharding=self.sharding,
          window=attention_window(int((self.lengths + budget)[chosen].max()), self.capacity),
          floor=height // SHRINK_SHARE if shrink and height // SHRINK_SHARE >= SHRINK_ROWS else 0,
      )
      carry = None if every is None else RoundRows._make(a[chosen] for a in every)
      if rows is None:
        self.cache, computed = programs.decode(
            self.graphdef, self.state, self.cache, self.last, budget, self.keys, stops, eos, automaton, carry, **static
        )
      else:  # only these rows decode (those with a budget, or those still running)
        grammar_rows = None if automaton is None else (*automaton[:-1], automaton[-1][rows])
        self.cache, computed = programs.decode_rows(
            *(self.graphdef, self.state, self.cache, self.last, rows, budget[rows], self.keys, stops, eos),
            *(grammar_rows, carry),
            **static,
        )
      if every is None:  # rows outside the first call have nothing to do
        every = RoundRows._make(self._all_rows(np.array(c), rows) for c in computed)
        every.done[np.setdiff1d(np.arange(self.rows), chosen)] = True
      else:
        for full, part in zip(every, computed):
          full[chosen] = np.asarray(part)
      rows = self._compacted(np.flatnonzero(~every.done).tolist())
    out, logprobs, lengths, reasons = every.out, every.logprobs, every.lengths, every.reason
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
  width = prefill_width(max(len(p) for p in prompts))
  session = DecodeSession(
      model,
      len(prompts),
      width + bucket(max_new_tokens, minimum=8),
      seeds=[(seed * 1_000_003 + i) % (1 << 32) for i in range(len(prompts))],
  )
  session.start(prompts)
  return session.decode([max_new_tokens] * len(prompts), temperature, top_p, top_k, stop, eos).tokens
