"""The rollout host loop: a scripted policy proves the protocol, a fuzzed one proves it never crashes,
and a real (random) decoder gives the same trajectories on 8 devices as on 1."""

import dataclasses
import random

import numpy as np
import pytest

from exsearch_jax import retrieval
from exsearch_jax import trajectory as tj
from exsearch_jax.data import world as W
from exsearch_jax.models import DecoderConfig, init_model
from exsearch_jax.models.word_tokenizer import build_word_tokenizer
from exsearch_jax.sampling import engine
from exsearch_jax.sampling.chat import ChatFormat
from exsearch_jax.sampling.rollout import RolloutConfig, rollout


def plain(**fields) -> RolloutConfig:
  """The plain protocol these tests script (no instruction, free turns, no forced answer), at small sizes."""
  return RolloutConfig(
      **{
          **dict(samples=4, max_steps=6, capacity=2048, instruction="none", constrained=False, answer_at_budget=False),
          **fields,
      }
  )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  w = W.make_world(1, "tiny")
  paths = W.write_world(w, str(tmp_path_factory.mktemp("world")))
  retriever = retrieval.build(paths["corpus"], str(tmp_path_factory.mktemp("bm25")), kind="bm25", progress=False)
  texts = [p["title"] + " " + p["text"] for p in w.passages] + [q["question"] for s in w.splits.values() for q in s]
  texts.append(tj.answer_request("") + " Question: Title: Content: [1] [2] [3] (no results)")
  return w, retriever, ChatFormat(build_word_tokenizer(texts))


class CountingRetriever:

  def __init__(self, inner):
    self.inner, self.calls = inner, []

  def search(self, queries, k):
    self.calls.append(list(queries))
    return self.inner.search(queries, k)


class ScriptedSession:
  """Stands in for `engine.DecodeSession`: `policy(row, history_tokens)` writes each assistant turn."""

  def __init__(self, policy, rows, capacity, seeds, sharding=None, shards=1):
    self.policy, self.capacity, self.history = policy, capacity, [[] for _ in range(rows)]

  def extend(self, appends):
    for r, tokens in enumerate(appends):
      self.history[r] += tokens or []

  start = extend

  def room(self, r):
    return self.capacity - len(self.history[r])

  def decode(self, budgets, temperature, top_p, top_k, stop, eos_token_ids):
    tokens, reasons = [], []
    for r, budget in enumerate(budgets):
      out = self.policy(r, self.history[r])[: min(budget, self.room(r))] if budget else []
      reason = 0
      if out:
        ends_stop = any(len(s) and out[-len(s) :] == list(s) for s in stop)
        reason = engine.EOS if out[-1] in eos_token_ids else engine.STOP if ends_stop else engine.BUDGET
        self.history[r] += out[:-1]
      tokens.append(out)
      reasons.append(reason)
    return engine.Round(tokens, [[-0.5] * len(t) for t in tokens], reasons)


def _oracle_policy(chat, questions_by_text):
  """Follows the world's decomposition, checking that each search result was inserted before it goes on."""

  def policy(row, history):
    text = chat.decode(history)
    question = next(q for t, q in questions_by_text.items() if t in text)
    steps = question["decomposition"]
    done = text.count(tj.SEARCH)
    if "please give the final answer" in text:
      return chat.assistant_turn(question["golden_answers"][0])
    if done:
      assert "Title :" in text.rsplit(tj.SEARCH, 1)[1]  # the passages were appended
    fact = steps[done - 1]["fact"] if done else None
    query = steps[done]["query"] if done < len(steps) else None
    return chat.assistant_turn(tj.assistant_step(fact, query))

  return policy


def test_scripted_policy_searches_exactly_when_asked_and_answers(world):
  w, retriever, chat = world
  questions = w.splits["dev"][:5]
  counting = CountingRetriever(retriever)
  cfg = plain(samples=2, max_steps=6, shown=2, capacity=1024)
  trajs = rollout(
      _oracle_policy(chat, {q["question"]: q for q in questions}),
      chat,
      counting,
      questions,
      cfg,
      session_factory=ScriptedSession,
  )
  assert len(trajs) == 10 and [t.sample for t in trajs[:2]] == [0, 1]
  expected_calls = max(q["hops"] for q in questions)
  assert len(counting.calls) == expected_calls  # one batched call per round, not one per query
  assert sum(len(c) for c in counting.calls) == 2 * sum(q["hops"] for q in questions)
  for t, q in zip(trajs, [q for q in questions for _ in range(2)]):
    assert t.stop_reason == "answered" and t.answer == q["golden_answers"][0]
    assert [s.query for s in t.steps] == [s["query"] for s in q["decomposition"]]
    assert [s.fact for s in t.steps] == [s["fact"] for s in q["decomposition"]]
    assert all(len(s.retrieved_ids) == cfg.retrieve_k and len(s.shown_ids) == 2 for s in t.steps)
    assert len(t.tokens) == len(t.loss_mask) == len(t.logprobs)
    written = [tok for tok, m in zip(t.tokens, t.loss_mask) if m]
    assert chat.decode(written).count(tj.QUERY) == q["hops"]
    assert "Title" not in chat.decode(written)  # passages are never model-written


class RecordingSession(ScriptedSession):
  """A ScriptedSession that keeps itself, so a test can compare what the model saw with the trajectory."""

  made = []

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    RecordingSession.made.append(self)


def _answer_only_policy(chat, questions_by_text):
  def policy(row, history):
    text = chat.decode(history)
    assert "please give the final answer" in text, "a search turn the rollout policy writes is never decoded"
    return chat.assistant_turn(next(q for t, q in questions_by_text.items() if t in text)["golden_answers"][0])

  return policy


def test_oracle_policy_writes_the_gold_search_turns_and_the_model_only_the_answer(world):
  w, retriever, chat = world
  questions = w.splits["dev"][:6]
  RecordingSession.made.clear()
  cfg = plain(samples=1, max_steps=6, shown=2, capacity=1024, policy="oracle")
  trajs = rollout(
      _answer_only_policy(chat, {q["question"]: q for q in questions}),
      chat,
      retriever,
      questions,
      cfg,
      session_factory=RecordingSession,
  )
  (session,) = RecordingSession.made
  for row, (t, q) in enumerate(zip(trajs, questions)):
    assert (t.stop_reason, t.answer) == ("answered", q["golden_answers"][0])
    assert [s.query for s in t.steps] == [s["query"] for s in q["decomposition"]]
    assert [s.fact for s in t.steps] == [s["fact"] for s in q["decomposition"]]
    assert all(len(s.shown_ids) == 2 for s in t.steps)
    assert session.history[row] == t.tokens[:-1]  # the cache holds exactly the trajectory (its last token unread)
    written = chat.decode([tok for tok, m in zip(t.tokens, t.loss_mask) if m])
    assert tj.QUERY not in written and tj.FACT not in written and q["golden_answers"][0] in written


def test_question_policy_retrieves_once_with_the_question_then_answers(world):
  w, retriever, chat = world
  questions = w.splits["dev"][:3]
  counting = CountingRetriever(retriever)
  policy = _fixed_policy(chat, "<FACT> Who founded <QUERY> Who founded it ?", "Who")
  cfg = plain(samples=1, max_steps=1, answer_at_budget=True, policy="question")
  trajs = rollout(policy, chat, counting, questions, cfg, session_factory=ScriptedSession)
  assert counting.calls == [[q["question"] for q in questions]]
  for t in trajs:
    assert (t.stop_reason, t.answer, [s.query for s in t.steps]) == ("answered", "Who", [t.question])
    assert t.steps[0].fact == "Who founded"
    written = chat.decode([tok for tok, m in zip(t.tokens, t.loss_mask) if m])
    assert written.count(tj.QUERY) == 1 and tj.FACT in written  # the model wrote its fact turn, not the first


@pytest.fixture(scope="module")
def rerank_chat(world):
  from exsearch_jax.em.setup import word_tokenizer_texts

  w = world[0]
  texts = word_tokenizer_texts(
      [p["title"] + " " + p["text"] for p in w.passages], [q for s in w.splits.values() for q in s], rerank=True
  )
  return ChatFormat(build_word_tokenizer(texts, extra_specials=tj.RERANK_TAGS))


def _rerank_policy(chat, order):
  """Searches the first sub-query of its question, re-ranks with `order`, then stops and answers "Who"."""

  def policy(row, history):
    text = chat.decode(history)
    if "please give the final answer" in text:
      return chat.assistant_turn("Who")
    if text.rstrip().endswith(tj.RERANK):
      return chat.encode(" " + " ".join(str(i) for i in order)) + [chat.end_of_turn]
    if tj.SEARCH in text:
      return chat.assistant_turn(tj.assistant_step("Who founded", None))
    return chat.assistant_turn("<QUERY> Who founded it ?")

  return policy


@pytest.mark.parametrize("order", [(1, 2), (3, 1)])
def test_rerank_order_decides_which_passages_are_shown(world, rerank_chat, order):
  w, retriever, _ = world
  chat = rerank_chat
  cfg = plain(samples=1, max_steps=3, retrieve_k=4, shown=2, capacity=1024, rerank=True)
  trajs = rollout(
      _rerank_policy(chat, order), chat, retriever, w.splits["dev"][:3], cfg, session_factory=ScriptedSession
  )
  for t in trajs:
    (step,) = t.steps
    assert t.stop_reason == "answered" and step.rerank == [i - 1 for i in order]
    assert step.shown_ids == [step.retrieved_ids[i - 1] for i in order]
    text = chat.decode(t.tokens)
    assert text.index(tj.CANDIDATES) < text.index(tj.RERANK) < text.index(tj.SEARCH)
    first_shown = text.split(tj.SEARCH)[1].split("Title :")[1].split(". Content")[0].strip()
    assert first_shown == step.retrieved_titles[order[0] - 1]
    written = chat.decode([tok for tok, m in zip(t.tokens, t.loss_mask) if m])
    assert tj.RERANK in written and tj.CANDIDATES not in written  # the order is the model's, the titles are not


def test_an_unreadable_rerank_turn_ends_the_trajectory(world, rerank_chat):
  w, retriever, _ = world
  cfg = plain(samples=1, max_steps=3, retrieve_k=4, shown=2, capacity=1024, rerank=True)
  trajs = rollout(
      _rerank_policy(rerank_chat, (7,)),
      rerank_chat,
      retriever,
      w.splits["dev"][:2],
      cfg,
      session_factory=ScriptedSession,
  )
  assert [t.stop_reason for t in trajs] == ["unparseable"] * 2


def test_policies_are_checked():
  from exsearch_jax.errors import ConfigError

  with pytest.raises(ConfigError, match=r"config\.rollout\.policy=.psychic.: must be one of .model., .question."):
    RolloutConfig(policy="psychic")


def test_oracle_policy_needs_decompositions(world):
  from exsearch_jax.errors import ConfigError

  w, retriever, chat = world
  questions = [dict(q, decomposition=[]) for q in w.splits["dev"][:2]]
  with pytest.raises(ConfigError, match="decomposition"):
    rollout(
        _fixed_policy(chat, "x"), chat, retriever, questions, plain(policy="oracle"), session_factory=ScriptedSession
    )


def _fixed_policy(chat, turn_text, answer_text=None, eot=True):
  def policy(row, history):
    text = turn_text if "please give the final answer" not in chat.decode(history) else answer_text
    return chat.encode(text) + ([chat.end_of_turn] if eot else [])

  return policy


@pytest.mark.parametrize(
    "policy_args,cfg_kwargs,reason",
    [
        (("hello there",), {}, "unparseable"),
        (("<QUERY> Who founded it ?",), {"max_steps": 3}, "step_budget"),
        (("<QUERY> Who founded it ?",), {"max_steps": 50, "capacity": 160}, "length"),
        (("<QUERY> " + "word " * 100,), {"step_tokens": 16}, "truncated"),
    ],
)
def test_bad_trajectories_end_with_their_stop_reason(world, policy_args, cfg_kwargs, reason):
  w, retriever, chat = world
  cfg = plain(samples=1, **cfg_kwargs)
  trajs = rollout(
      _fixed_policy(chat, *policy_args), chat, retriever, w.splits["dev"][:3], cfg, session_factory=ScriptedSession
  )
  assert [t.stop_reason for t in trajs] == [reason] * 3
  if reason == "step_budget":
    assert all(len(t.steps) == 3 for t in trajs)


def test_a_trajectory_at_its_step_budget_is_asked_for_the_answer(world):
  w, retriever, chat = world
  policy = _fixed_policy(chat, "<QUERY> Who founded it ?", "Who")
  cfg = plain(samples=1, max_steps=2, answer_at_budget=True)
  trajs = rollout(policy, chat, retriever, w.splits["dev"][:3], cfg, session_factory=ScriptedSession)
  for t in trajs:
    assert (t.stop_reason, t.answer, len(t.steps)) == ("answered", "Who", 2)
    asked = chat.decode(t.tokens[: t.answer_start])
    assert asked.endswith(chat.decode(chat.user_turn(tj.answer_request(t.question))))
    assert asked.count(tj.SEARCH) == 2 and asked.count(tj.QUERY) == 3  # the third query is not searched


def test_a_search_whose_results_overflow_the_cache_is_followed_by_the_answer(world):
  w, retriever, chat = world
  policy = _fixed_policy(chat, "<QUERY> Who founded it ?", "Who")
  cfg = plain(samples=1, max_steps=50, capacity=160, answer_at_budget=True)
  for t in rollout(policy, chat, retriever, w.splits["dev"][:3], cfg, session_factory=ScriptedSession):
    assert (t.stop_reason, t.answer) == ("answered", "Who") and t.steps[-1].retrieved_ids == []
    assert all(s.retrieved_ids for s in t.steps[:-1]) and len(t.tokens) <= 160


def test_the_instruction_is_the_system_turn_of_every_trajectory(world):
  w, retriever, chat = world
  policy = _fixed_policy(chat, "<QUERY> Who founded it ?")
  cfg = plain(samples=1, max_steps=1, instruction="exsearch")
  (t,) = rollout(policy, chat, retriever, w.splits["dev"][:1], cfg, session_factory=ScriptedSession)
  assert t.tokens[: t.prompt_length] == chat.prompt(tj.question_turn(t.question), tj.INSTRUCTIONS["exsearch"])
  assert not any(t.loss_mask[: t.prompt_length])


def test_an_answer_cut_by_its_token_budget_still_counts(world):
  w, retriever, chat = world
  policy = _fixed_policy(chat, "<QUERY> x <SEARCH>", None)

  def answers_forever(row, history):
    text = chat.decode(history)
    if "please give the final answer" in text:
      return chat.encode("Who " * 100)
    return chat.encode("<FACT> born <FINAL>") if tj.SEARCH in text else policy(row, history)

  trajs = rollout(
      answers_forever,
      chat,
      retriever,
      w.splits["dev"][:2],
      plain(samples=1, answer_tokens=8),
      session_factory=ScriptedSession,
  )
  assert [(t.stop_reason, t.answer) for t in trajs] == [("answered", "Who " * 7 + "Who")] * 2  # its 8 tokens
  assert [(len(t.steps), t.steps[0].fact) for t in trajs] == [(1, "born")] * 2


def test_fuzzed_token_streams_never_crash_the_loop(world):
  w, retriever, chat = world
  rng = random.Random(0)
  vocab = len(chat.tokenizer)
  specials = chat.encode(" ".join(tj.TAGS)) + [chat.end_of_turn]

  def noise(row, history):
    return [rng.choice(specials) if rng.random() < 0.3 else rng.randrange(vocab) for _ in range(rng.randint(1, 40))]

  trajs = rollout(
      noise,
      chat,
      retriever,
      w.splits["train"][:40],
      plain(samples=4, max_steps=4, capacity=512),
      session_factory=ScriptedSession,
  )
  assert len(trajs) == 160
  assert {t.stop_reason for t in trajs} <= {"answered", "unparseable", "step_budget", "length", "truncated"}
  assert all(len(t.tokens) == len(t.loss_mask) == len(t.logprobs) for t in trajs)


def _tiny_decoder(chat, mesh=None):
  config = DecoderConfig(
      vocab_size=len(chat.tokenizer),
      hidden_size=32,
      intermediate_size=64,
      num_layers=2,
      num_heads=4,
      num_kv_heads=2,
      head_dim=8,
      eos_token_id=chat.end_of_turn,
  )
  return init_model(config, mesh=mesh, seed=3)


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_real_decoder_rollout_is_seeded_and_equal_on_8_devices(world):
  from exsearch_jax.sharding import make_mesh

  w, retriever, chat = world
  cfg = plain(
      samples=2,
      max_steps=2,
      step_tokens=12,
      answer_tokens=6,
      capacity=256,
      batch_rows=8,
      temperature=1.0,
      top_p=0.95,
      seed=5,
  )
  questions = w.splits["dev"][:6]
  one = rollout(_tiny_decoder(chat), chat, retriever, questions, cfg)
  again = rollout(_tiny_decoder(chat), chat, retriever, questions, cfg)
  mesh = make_mesh({"data": 8})
  eight = rollout(_tiny_decoder(chat, mesh), chat, retriever, questions, cfg, mesh=mesh)
  assert [t.tokens for t in one] == [t.tokens for t in again] == [t.tokens for t in eight]
  assert len({tuple(t.tokens) for t in one}) == len(one)  # samples differ
  for t in one:
    assert all(lp <= 0.0 for lp in t.logprobs) and any(lp < 0 for lp in t.logprobs)


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_continuing_after_appended_text_equals_recomputing(world):
  _, _, chat = world
  model = _tiny_decoder(chat)
  prompt = chat.prompt("Question: Who directed it ?")
  session = engine.DecodeSession(model, 2, 256, seeds=[0, 1])
  session.extend([prompt, prompt[:5]])
  first = session.decode([7, 3], temperature=1.0)
  appended = chat.user_turn("<SEARCH> [1] Title: A. Content: B.")
  session.extend([[first.tokens[0][-1]] + appended, [first.tokens[1][-1]] + appended[:4]])
  for row, (start, extra) in enumerate(((prompt, appended), (prompt[:5], appended[:4]))):
    full = start + first.tokens[row] + extra
    reference = np.asarray(model(np.array([full])))[0, -1]
    np.testing.assert_allclose(np.asarray(session.last)[row], reference, atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_an_untrained_model_under_the_grammar_writes_parseable_trajectories(world):
  """Random weights and sampling at temperature 1: every turn still parses, and none is cut off."""
  w, retriever, chat = world
  cfg = plain(
      samples=4,
      max_steps=3,
      step_tokens=12,
      answer_tokens=6,
      capacity=512,
      batch_rows=16,
      temperature=1.0,
      top_p=1.0,
      constrained=True,
      answer_at_budget=True,
      seed=2,
  )
  trajs = rollout(_tiny_decoder(chat), chat, retriever, w.splits["dev"][:8], cfg)
  assert {t.stop_reason for t in trajs} == {"answered"}
  for t in trajs:
    assert 1 <= len(t.steps) <= 3 and all(s.query.strip() for s in t.steps)
    turns = chat.decode(t.tokens[t.prompt_length : t.answer_start]).split(chat.end_of_turn_text)
    assert turns[0].lstrip().startswith(tj.QUERY)
    assert all(s.fact is not None for s in t.steps[:-1])  # every search but a budget-cut last one got a fact


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_gold_answers_scored_on_the_rollout_cache_equal_the_full_forward_pass(world):
  """`score_gold`: log p(y*|x,z) of each trajectory that asked for its answer, from the session's cache cut back to
  the answer request with the gold answer appended, equals the E-step's full forward pass over the gold example;
  the trajectories are those of a rollout without it, and `score_trajectories` keeps these scores unless the
  example is longer than its `max_length`."""
  from exsearch_jax.em import estep

  w, retriever, chat = world
  cfg = plain(
      samples=2,
      max_steps=3,
      step_tokens=12,
      answer_tokens=6,
      capacity=512,
      batch_rows=8,
      temperature=1.0,
      constrained=True,
      answer_at_budget=True,
      seed=4,
  )
  model = _tiny_decoder(chat)
  scored = rollout(model, chat, retriever, w.splits["dev"][:5], cfg, score_gold=True)
  unscored = rollout(model, chat, retriever, w.splits["dev"][:5], cfg)
  assert [t.tokens for t in scored] == [t.tokens for t in unscored]
  assert all(t.gold_logprob is None for t in unscored)
  assert all(t.answer_start > 0 and t.gold_logprob is not None for t in scored)
  logp, count = estep.score(model, estep.gold_examples(scored, chat))
  np.testing.assert_allclose([t.gold_logprob for t in scored], logp, rtol=1e-4, atol=1e-4)
  assert [t.gold_tokens for t in scored] == count.tolist() == [len(chat.assistant_turn(t.gold_answer)) for t in scored]
  marked = dataclasses.replace(scored[0], gold_logprob=-123.0)
  assert estep.score_trajectories(model, chat, [marked])[0][0] == -123.0
  cut = estep.score_trajectories(model, chat, [marked], max_length=marked.answer_start + 1)
  assert cut[0][0] != -123.0 and cut[1][0] == 1  # scored again, over the one answer token that fits
