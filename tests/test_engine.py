"""Batched generate: per-row stops, budgets, seeds, and independence from batch composition."""

import numpy as np
import pytest

from exsearch_jax.models import DecoderConfig, init_model
from exsearch_jax.sampling import generate
from exsearch_jax.sampling.token_sampler import sample_logits

CONFIG = DecoderConfig(
    vocab_size=61,
    hidden_size=32,
    intermediate_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    eos_token_id=None,
)


@pytest.fixture(scope="module")
def model():
  return init_model(CONFIG, seed=0)


def _greedy_reference(model, prompt, n):
  seq = list(prompt)
  for _ in range(n):
    seq.append(int(np.argmax(np.asarray(model(np.array([seq])))[0, -1])))
  return seq[len(prompt) :]


@pytest.mark.slow  # a parity check over a real forward/backward: 10-40 s
def test_greedy_equals_argmax_of_full_forward(model):
  prompts = [[1, 2, 3, 4, 5, 6, 7], [9], [10, 11, 12]]
  got = generate(model, prompts, max_new_tokens=10)
  assert got == [_greedy_reference(model, p, 10) for p in prompts]


def test_eos_and_stop_sequences_end_rows_independently(model):
  prompts = [[1, 2, 3, 4, 5, 6, 7], [9], [10, 11, 12]]
  free = generate(model, prompts, max_new_tokens=12)
  eos = free[0][3]
  stop_seq = free[2][4:6]
  got = generate(model, prompts, max_new_tokens=12, eos_token_ids=[eos], stop=[stop_seq])
  first_eos = free[0].index(eos)
  assert got[0] == free[0][: first_eos + 1]
  for row, tokens in zip(free[1:], got[1:]):
    cut = next((i + 1 for i in range(len(row)) if row[i] == eos or row[max(0, i - 1) : i + 1] == stop_seq), len(row))
    assert tokens == row[:cut]


def test_budget_is_exact_not_bucketed(model):
  assert [len(t) for t in generate(model, [[1, 2], [3]], max_new_tokens=5)] == [5, 5]


def test_sampling_is_seeded_per_row(model):
  prompts = [[1, 2, 3], [4, 5], [6]]
  a = generate(model, prompts, 16, temperature=1.0, seed=7)
  b = generate(model, prompts, 16, temperature=1.0, seed=7)
  c = generate(model, prompts, 16, temperature=1.0, seed=8)
  assert a == b and a != c
  alone = generate(model, prompts[:1], 16, temperature=1.0, seed=7)
  assert alone[0] == a[0]  # row 0's samples do not depend on the other rows


def test_top_k_and_top_p_restrict_the_support():
  import jax

  logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 4000, np.float32))
  keys = jax.random.split(jax.random.PRNGKey(0), 4000)
  top1 = np.asarray(sample_logits(logits, keys, 1.0, 1.0, 1))
  assert set(top1) == {0}
  nucleus = np.asarray(sample_logits(logits, keys, 1.0, 0.75, 0))
  assert set(nucleus) == {0, 1}  # 0.5 < 0.75 needs the second token; 0.8 >= 0.75 stops there
  assert abs((nucleus == 0).mean() - 0.625) < 0.03
  full = np.asarray(sample_logits(logits, keys, 1.0, 1.0, 0))
  assert abs((full == 3).mean() - 0.05) < 0.015


def test_empty_prompt_is_an_error(model):
  with pytest.raises(ValueError, match="at least one token"):
    generate(model, [[1], []], 4)


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
@pytest.mark.parametrize("shards", [1, 8])
def test_shared_prompts_are_prefilled_once_and_sample_as_if_prefilled_apart(model, shards):
  """`DecodeSession.start`: the K samples of a question share their prompt; it is computed once and the cache
  rows copied, and every row then samples exactly what it samples when each prompt is prefilled on its own."""
  from exsearch_jax.sampling.engine import DecodeSession

  sharding = None
  if shards > 1:  # rows over 8 devices, as the rollout places them
    from exsearch_jax.sharding import batch_sharding, make_mesh

    mesh = make_mesh({"data": 8})
    model, sharding = init_model(CONFIG, mesh=mesh, seed=0), batch_sharding(mesh)
  prompts = [[1, 2, 3, 4, 5]] * 4 + [[9, 8]] * 4 + [[7, 6, 5, 4, 3, 2, 1]] * 3
  seeds = list(range(100, 100 + len(prompts)))

  def rounds(prefill):
    session = DecodeSession(model, len(prompts), 64, seeds, sharding=sharding, shards=shards)
    prefill(session)
    first = session.decode([8] * len(prompts), temperature=1.0)
    session.extend([[11, 12]] * len(prompts))  # a turn appended to every row, then more sampling
    return session, first.tokens + session.decode([8] * len(prompts), temperature=1.0).tokens

  shared, got = rounds(lambda s: s.start(prompts))
  apart, expected = rounds(lambda s: s.extend(prompts))
  assert got == expected
  assert shared.prefill_tokens == {"requested": 4 * 5 + 4 * 2 + 3 * 7, "computed": 5 + 2 + 7}
  np.testing.assert_array_equal(np.asarray(shared.cache.lengths), np.asarray(apart.cache.lengths))
  with pytest.raises(ValueError, match="already holds tokens"):
    shared.start(prompts)


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_a_prefix_common_to_every_prompt_is_prefilled_once(model):
  """An instruction before every question: `start` computes it once, then each distinct prompt's own tokens; the
  rows sample the tokens of the unshared path (log-probs equal to float rounding: the prefix's keys come from
  another pass)."""
  from exsearch_jax.sampling.engine import SHARED_PREFIX, DecodeSession

  rng = np.random.default_rng(1)
  common = rng.integers(1, CONFIG.vocab_size, SHARED_PREFIX + 8).tolist()
  suffixes = [rng.integers(1, CONFIG.vocab_size, n).tolist() for n in (5, 9, 1, 20)]
  prompts = [common + s for s in suffixes for _ in range(3)] + [common]  # one prompt is the prefix itself

  def rounds(prefill):
    session = DecodeSession(model, len(prompts), 128, seeds=list(range(len(prompts))))
    prefill(session)
    first = session.decode([16] * len(prompts), temperature=1.0)
    session.extend([[11, 12]] * len(prompts))
    second = session.decode([16] * len(prompts), temperature=1.0)
    return session, first.tokens + second.tokens, first.logprobs + second.logprobs

  shared, tokens, logprobs = rounds(lambda s: s.start(prompts))
  apart, expected, expected_logprobs = rounds(lambda s: s.extend(prompts))
  _assert_same_samples(tokens, logprobs, expected, expected_logprobs)
  assert shared.prefill_tokens == {"requested": sum(map(len, prompts)), "computed": len(common) + 5 + 9 + 1 + 20}
  np.testing.assert_array_equal(np.asarray(shared.cache.lengths), np.asarray(apart.cache.lengths))


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_attention_window_changes_no_result(model, monkeypatch):
  """Attention reads the slots the rows can hold (`attention_window`) and a prefill's query blocks stop at their
  diagonal: the samples are those of attention over the whole 2,048-slot cache, over several turns (log-probs to
  float rounding: XLA sums a short dot in another order than a long one)."""
  from exsearch_jax.sampling import engine
  from exsearch_jax.sampling.engine import DecodeSession, attention_window

  rng = np.random.default_rng(0)
  prompts = [rng.integers(1, CONFIG.vocab_size, int(n)).tolist() for n in rng.integers(5, 140, 8)]
  appends = [rng.integers(1, CONFIG.vocab_size, int(n)).tolist() for n in rng.integers(1, 60, 8)]

  def run(capacity):
    session = DecodeSession(model, 8, capacity, seeds=list(range(8)))
    session.start(prompts)
    first = session.decode([24] * 8, temperature=0.8, top_p=0.95)
    session.extend(appends)
    second = session.decode([24] * 8, temperature=0.8, top_p=0.95)
    return first.tokens + second.tokens, first.logprobs + second.logprobs

  tokens, logprobs = run(2048)
  monkeypatch.setattr(engine, "attention_window", lambda need, capacity: capacity)
  monkeypatch.setattr(engine, "prefill_kwargs", lambda *a: {"window": a[-1], "held_bound": None})
  expected, expected_logprobs = run(2048)
  _assert_same_samples(tokens, logprobs, expected, expected_logprobs)
  assert [attention_window(n, 2048) for n in (1, 128, 129, 300, 5000)] == [128, 128, 256, 512, 2048]
  assert attention_window(300, 200) == 200


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_rows_without_work_are_left_out_of_a_call_with_the_same_results(model, monkeypatch):
  """When at most half the rows have tokens to append or a budget (the rollout's late turns), a call computes
  those rows alone: the samples, log-probs and every row's cache are those of the call over all rows."""
  from exsearch_jax.sampling import engine
  from exsearch_jax.sampling.engine import DecodeSession

  rng = np.random.default_rng(1)
  prompts = [rng.integers(1, CONFIG.vocab_size, int(n)).tolist() for n in rng.integers(5, 40, 8)]
  live = [1, 5]
  appends = [rng.integers(1, CONFIG.vocab_size, 9).tolist() if r in live else None for r in range(8)]
  calls = []

  def run():
    session = DecodeSession(model, 8, 256, seeds=list(range(8)))
    session.start(prompts)
    first = session.decode([12] * 8, temperature=0.8, top_p=0.95)
    session.extend(appends)
    calls.append(session._compacted(live))  # pylint: disable=protected-access
    second = session.decode([12 if r in live else 0 for r in range(8)], temperature=0.8, top_p=0.95)
    return first.tokens + second.tokens, first.logprobs + second.logprobs, second.reasons, session

  tokens, logprobs, reasons, compacted = run()
  monkeypatch.setattr(engine.DecodeSession, "_compacted", lambda self, live: None)
  expected, expected_logprobs, expected_reasons, whole = run()
  assert calls[0].tolist() == live and calls[1] is None
  assert reasons == expected_reasons
  _assert_same_samples(tokens, logprobs, expected, expected_logprobs)
  assert all(tokens[8 + r] == [] for r in range(8) if r not in live)
  np.testing.assert_array_equal(compacted.lengths, whole.lengths)
  for got, want in zip(compacted.cache.keys + compacted.cache.values, whole.cache.keys + whole.cache.values):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
  np.testing.assert_allclose(np.asarray(compacted.last), np.asarray(whole.last), atol=1e-5)


def test_a_grammar_over_a_smaller_vocabulary_never_samples_the_padding_ids(model):
  """Model vocabularies are padded past the tokenizer's (Qwen2.5: 152,064 ids for 151,665 tokens); the grammar's
  tables cover the tokenizer, and the ids past it are never sampled."""
  from exsearch_jax.models.word_tokenizer import build_word_tokenizer
  from exsearch_jax.sampling.chat import ChatFormat
  from exsearch_jax.sampling.engine import DecodeSession
  from exsearch_jax.sampling.grammar import build_grammar

  chat = ChatFormat(build_word_tokenizer(["<QUERY> <SEARCH> <FACT> <FINAL> Paris is big . who"]))
  grammar = build_grammar(chat)
  assert grammar.allowed.shape[1] < CONFIG.vocab_size
  session = DecodeSession(model, 4, 64, seeds=[0, 1, 2, 3])
  session.start([chat.prompt("who is big")] * 4)
  out = session.decode([8] * 4, temperature=1.0, grammar=grammar, states=[grammar.query_start] * 4)
  assert all(0 <= t < grammar.allowed.shape[1] for row in out.tokens for t in row)
  for row in out.tokens:  # every token the automaton allows where it was written
    state = grammar.query_start
    for token in row:
      assert grammar.allowed[state, token]
      state = grammar.transition[state, token]


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_prompts_and_appends_of_very_different_lengths_are_prefilled_in_groups(model, monkeypatch):
  """Short and long prompts in one batch, then passages for some rows and two tokens for others: each group of
  similar length is a call of its own at its own width, so the short ones are not padded to the longest; the rows
  sample what they sample prefilled together (log-probs to float rounding: another padding width sums in another
  order)."""
  from exsearch_jax.sampling import engine

  lengths = [5, 7, 9, 12, 40, 45, 50, 200, 230, 260, 7, 300]
  assert engine.length_groups(lengths) == [[0, 1, 2, 3, 10], [4, 5], [6], [7, 8], [9, 11]]
  assert engine.length_groups([20, 21, 30, 31]) == [[0, 1, 2, 3]]  # little padding to save: one batch
  assert engine.length_groups([5] * 3 + [300], shards=8) == [[0, 1, 2, 3]]  # 8-row groups: no saving
  rng = np.random.default_rng(3)
  prompts = [rng.integers(1, CONFIG.vocab_size, n).tolist() for n in lengths]
  appends = [
      None if r % 5 == 4 else rng.integers(1, CONFIG.vocab_size, 2 if r % 3 else 150).tolist() for r in range(12)
  ]
  calls = []
  monkeypatch.setattr(engine.DecodeSession, "_extend_group", _counted(engine.DecodeSession._extend_group, calls))
  grouped, tokens, logprobs = _prompts_then_appends(model, prompts, appends)
  assert len(calls) == 2  # the appends: 150 tokens for four rows, 2 for five
  monkeypatch.setattr(engine, "length_groups", lambda lengths, *_: [list(range(len(lengths)))])
  together, expected, expected_logprobs = _prompts_then_appends(model, prompts, appends)
  _assert_same_samples(tokens, logprobs, expected, expected_logprobs)
  np.testing.assert_array_equal(np.asarray(grouped.cache.lengths), np.asarray(together.cache.lengths))


@pytest.mark.slow  # a parity check over a real forward/backward: 10-40 s
def test_packed_prefills_sample_what_padded_ones_do(model, monkeypatch):
  """Passages of 150 tokens for three rows and two tokens for seven others, in one call (no length groups): the
  call packs its real tokens, so its dense layers compute 512 entries instead of 16 x 192 slots, and the rows
  sample the same tokens as with the padded call (log-probs to float rounding)."""
  from exsearch_jax.sampling import engine

  rng = np.random.default_rng(4)
  prompts = [rng.integers(1, CONFIG.vocab_size, n).tolist() for n in (5, 9, 30, 12) * 3]
  appends = [
      None if r % 5 == 4 else rng.integers(1, CONFIG.vocab_size, 2 if r % 3 else 150).tolist() for r in range(12)
  ]
  monkeypatch.setattr(engine, "length_groups", lambda lengths, *_: [list(range(len(lengths)))])
  sizes = []
  extend = engine.programs.extend

  def recorded(*args, packing=None, **kwargs):
    sizes.append(None if packing is None else (len(packing), args[-1].size))
    return extend(*args, packing=packing, **kwargs)

  monkeypatch.setattr(engine.programs, "extend", recorded)
  _, tokens, logprobs = _prompts_then_appends(model, prompts, appends)
  assert sizes[-1] == (512, 16 * 192)  # 3 x 150 + 7 x 2 = 464 real tokens of 16 rows x 192 slots
  monkeypatch.setattr(engine, "packing_index", lambda mask: None)
  _, expected, expected_logprobs = _prompts_then_appends(model, prompts, appends)
  assert sizes[-1] is None
  _assert_same_samples(tokens, logprobs, expected, expected_logprobs)


@pytest.mark.slow  # a parity check over a real forward/backward: 10-40 s
def test_a_round_goes_on_with_its_few_long_rows_alone(model, monkeypatch):
  """32 rows, 28 with a budget of 3 tokens and 4 with 40: the round's call returns once few rows run (at most
  32 / SHRINK_SHARE), and the 4 long turns go on in a call of their own 4 rows, from where they were; every row
  samples what it samples in one call of all 32 (log-probs to float rounding), and the next round starts from
  the same cache."""
  from exsearch_jax.sampling import engine

  rng = np.random.default_rng(6)
  prompts = [rng.integers(1, CONFIG.vocab_size, 3 + r % 7).tolist() for r in range(32)]
  budgets = [40 if r % 8 == 5 else 3 for r in range(32)]
  calls = []
  for name in ("decode", "decode_rows"):
    program = getattr(engine.programs, name)

    def recorded(*args, _program=program, **kwargs):
      calls.append((kwargs["floor"], args[-1] is not None))  # (floor, went on from a carried state)
      return _program(*args, **kwargs)

    monkeypatch.setattr(engine.programs, name, recorded)

  def rounds():
    session = engine.DecodeSession(model, 32, 256, seeds=list(range(32)))
    session.start(prompts)
    first = session.decode(budgets, temperature=1.0)
    session.extend([[t[-1]] for t in first.tokens])
    second = session.decode([4] * 32, temperature=1.0)
    return first.tokens + second.tokens, first.logprobs + second.logprobs

  tokens, logprobs = rounds()
  floor = 32 // engine.SHRINK_SHARE
  assert calls[:2] == [(floor, False), (0, True)]  # the 32-row call, then the 4 long rows from where they were
  assert [len(t) for t in tokens[:32]] == budgets
  del calls[:]
  monkeypatch.setattr(engine, "SHRINK_ROWS", 10**6)
  expected, expected_logprobs = rounds()
  assert calls[0] == (0, False) and not any(carried for _, carried in calls)
  _assert_same_samples(tokens, logprobs, expected, expected_logprobs)


def _prompts_then_appends(model, prompts, appends):
  """Two sampling rounds of 16 tokens per row on one session, the prompts before the first and the appends
  before the second: (session, tokens, log-probs) of both rounds."""
  from exsearch_jax.sampling import engine

  session = engine.DecodeSession(model, len(prompts), 512, seeds=list(range(len(prompts))))
  session.start(prompts)
  first = session.decode([16] * len(prompts), temperature=1.0)
  session.extend(appends)
  second = session.decode([16] * len(prompts), temperature=1.0)
  return session, first.tokens + second.tokens, first.logprobs + second.logprobs


def _assert_same_samples(tokens, logprobs, expected, expected_logprobs):
  """The same tokens, their log-probs equal to float rounding (another batch or padding sums in another order)."""
  assert tokens == expected
  for got, want in zip(logprobs, expected_logprobs):
    np.testing.assert_allclose(got, want, atol=1e-5)


def _counted(method, calls):
  def wrapper(self, *args):
    calls.append(len(args[0]))
    return method(self, *args)

  return wrapper


def test_a_bfloat16_cache_keeps_its_dtype_through_every_call_and_rounds_only(model):
  """`cache_dtype` under float32 compute: shared-prompt prefill, grouped appends and decode rounds all keep the
  cache in bfloat16, and the log-probs differ from a float32 cache's by bfloat16 rounding only."""
  import jax.numpy as jnp

  from exsearch_jax.sampling import engine

  prompts = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [7] * 40]
  appends = [[9] * 60, None, [3, 4]]

  def rounds(dtype):
    session = engine.DecodeSession(model, 3, 256, seeds=[0, 1, 2], cache_dtype=dtype)
    session.start(prompts)
    first = session.decode([8] * 3)
    session.extend(appends)
    second = session.decode([8] * 3)
    return session, first.logprobs + second.logprobs

  half, half_logprobs = rounds(jnp.bfloat16)
  full, full_logprobs = rounds(None)
  assert {x.dtype for x in half.cache.keys + half.cache.values} == {jnp.dtype(jnp.bfloat16)}
  assert {x.dtype for x in full.cache.keys + full.cache.values} == {jnp.dtype(jnp.float32)}
  np.testing.assert_array_equal(np.asarray(half.cache.lengths), np.asarray(full.cache.lengths))
  for got, want in zip(half_logprobs, full_logprobs):
    np.testing.assert_allclose(got[:2], want[:2], atol=0.05)  # greedy paths may part later on a near tie
