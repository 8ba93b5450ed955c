"""The turn automaton: what it allows where, that every turn can end within its budget, and (in test_rollout)
that an untrained model under it writes only parseable trajectories."""

import numpy as np
import pytest

from exsearch_jax import trajectory as tj
from exsearch_jax.assets import asset_path
from exsearch_jax.models.tokenizer import load_tokenizer
from exsearch_jax.models.word_tokenizer import build_word_tokenizer
from exsearch_jax.sampling.chat import ChatFormat
from exsearch_jax.sampling.grammar import FREE, build_grammar


@pytest.fixture(scope="module", params=["word", "smollm2"])
def chat(request):
  if request.param == "word":
    return ChatFormat(build_word_tokenizer(["<QUERY> <SEARCH> <FACT> <FINAL> Paris is big . \n who < x"]))
  return ChatFormat(load_tokenizer(asset_path("smollm2-135m-instruct")))


def _walk(grammar, state, tokens):
  """The states visited while writing `tokens`; fails at the first token the automaton refuses."""
  for token in tokens:
    assert grammar.allowed[state, token], f"token {token} refused in state {state}"
    state = grammar.transition[state, token]
  return state


def test_a_fact_then_a_query_or_final_is_accepted_and_ends_the_turn(chat):
  g = build_grammar(chat)
  assert g.query_prefix == tuple(chat.encode(tj.QUERY)) and g.fact_prefix == tuple(chat.encode(tj.FACT))
  fact = chat.encode(" Paris is big .\n")
  after_query = _walk(g, g.fact_start, fact + chat.encode(tj.QUERY))
  assert after_query == g.query_start
  end = _walk(g, after_query, chat.encode(" who") + chat.encode(tj.SEARCH))
  assert g.allowed[end].sum() == 1 and g.allowed[end, chat.end_of_turn]  # only the end of the turn is left
  assert _walk(g, g.fact_start, fact + chat.encode(tj.FINAL)) == end
  assert _walk(g, g.query_start, chat.encode(" who") + [chat.end_of_turn]) == end


def test_text_holds_no_tag_or_special_token_and_a_fact_cannot_just_stop(chat):
  g = build_grammar(chat)
  texts = chat.tokenizer.batch_decode([[i] for i in range(g.allowed.shape[1])], skip_special_tokens=False)
  first_of_tags = {chat.encode(t)[0] for t in (tj.QUERY, tj.FINAL)}
  for i, text in enumerate(texts):
    if "<" in text and i not in first_of_tags:
      assert not g.allowed[g.fact_start, i], text
  assert not g.allowed[g.fact_start, chat.end_of_turn]
  assert not g.allowed[g.query_start, chat.end_of_turn]  # an empty query is not a query
  assert not g.allowed[g.query_start, chat.encode(tj.SEARCH)[0]]
  fact_tag = chat.encode(tj.FACT)
  assert not g.allowed[_walk(g, g.fact_start, chat.encode(" x")), fact_tag[0]] or len(fact_tag) > 1
  line_break = chat.encode(" big .\n")
  if "\n" in chat.decode(line_break):  # (a word-level tokenizer drops line breaks)
    after_line = _walk(g, g.fact_start, line_break)
    assert g.allowed[after_line].sum() == len({chat.encode(tj.QUERY)[0], chat.encode(tj.FINAL)[0]})  # a tag only
  others = np.arange(g.allowed.shape[1]) != chat.end_of_turn
  assert g.allowed[FREE].all() and (g.transition[FREE][others] == FREE).all()


def test_every_state_knows_how_many_tokens_end_its_turn(chat):
  g = build_grammar(chat)
  final, query = len(chat.encode(tj.FINAL)), len(chat.encode(tj.QUERY))
  assert g.to_end[g.fact_start] == min(final, query + 2)  # <FINAL>, or <QUERY> + a word + the end of turn
  assert g.to_end[g.query_start] == 2  # a word, then the end of the turn
  assert g.to_end[g.answer_start] == 1 and g.to_end[FREE] == 0
  reachable = np.unique(g.transition[g.allowed])
  assert (g.to_end[reachable] < 10).all()  # no state the automaton can reach is a dead end


def test_a_fact_gives_way_to_its_tag_after_half_the_budget(chat):
  g = build_grammar(chat)
  closed = g.half_spent[g.fact_start]
  assert closed != g.fact_start and not g.allowed[closed, chat.encode(" x")[0]]  # text is over
  assert g.allowed[closed, chat.encode(tj.QUERY)[0]] and g.allowed[closed, chat.encode(tj.FINAL)[0]]
  others = [s for s in range(len(g.half_spent)) if s != g.fact_start]
  assert (g.half_spent[others] == others).all()
