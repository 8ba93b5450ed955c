"""The trajectory grammar: rendering and parsing agree; anything else is a ParseError, never a crash."""

import pytest

from exsearch_jax import trajectory as tj
from exsearch_jax.retrieval.base import Hit


def test_render_then_parse_round_trips():
  assert tj.parse_step(tj.assistant_step(None, "Who directed X?"), first=True) == tj.Step("query", "Who directed X?")
  assert tj.parse_step(tj.assistant_step("X was directed by Y.", "Where was Y born?"), first=False) == tj.Step(
      "query", "Where was Y born?", "X was directed by Y."
  )
  assert tj.parse_step(tj.assistant_step("Y was born in Z.", None), first=False) == tj.Step(
      "final", "", "Y was born in Z."
  )


def test_a_query_cut_at_search_parses_and_whitespace_is_free():
  assert tj.parse_step("  <QUERY>  who is Y <SEARCH>", first=True) == tj.Step("query", "who is Y")
  assert tj.parse_step("<FACT> a fact <QUERY> next", first=False).fact == "a fact"


@pytest.mark.parametrize(
    "text,first",
    [
        ("", True),
        ("hello", True),
        ("<FINAL>", True),
        ("<QUERY>", True),
        ("<FACT> f <QUERY> q", True),
        ("<QUERY> q <SEARCH> invented passage", True),
        ("<FACT> f", False),
        ("<FACT> f <FINAL> extra", False),
        ("<QUERY> a <QUERY> b", False),
        ("<SEARCH>", False),
        ("<FINAL> <QUERY> q", False),
    ],
)
def test_malformed_turns_raise_parse_error(text, first):
  with pytest.raises(tj.ParseError):
    tj.parse_step(text, first=first)


def test_search_turn_shows_top_passages_in_order():
  hits = [Hit("a", 1.0, "T1", "C1"), Hit("b", 0.5, "T2", "C2"), Hit("c", 0.1, "T3", "C3")]
  assert tj.search_turn(hits, shown=2) == "<SEARCH> [1] Title: T1. Content: C1\n[2] Title: T2. Content: C2"
  assert tj.search_turn([], shown=3) == "<SEARCH> (no results)"


def test_chat_messages_follow_the_paper_layout():
  steps = [
      {"query": "q1", "hits": [{"title": "T", "text": "C"}], "fact": "f1"},
      {"query": "q2", "hits": [], "fact": "f2"},
  ]
  messages = tj.chat_messages("Q?", steps, "A", shown=3)
  assert [m["role"] for m in messages] == [
      "user",
      "assistant",
      "user",
      "assistant",
      "user",
      "assistant",
      "user",
      "assistant",
  ]
  assert [m["content"] for m in messages[1::2]] == ["<QUERY> q1", "<FACT> f1\n<QUERY> q2", "<FACT> f2\n<FINAL>", "A"]
  assert messages[-2]["content"] == "please give the final answer to the input question: Q?"


def test_rerank_turns_render_and_parse_back():
  hits = [Hit(f"p{i}", 1.0, f"T{i}", f"text {i}") for i in range(4)]
  assert tj.candidates_turn(hits) == "<CANDIDATES> [1] T0 [2] T1 [3] T2 [4] T3"
  assert tj.parse_rerank(tj.rerank_step([2, 0]), 4) == [2, 0]
  assert tj.parse_rerank("  <RERANK>  4\n1 ", 4) == [3, 0]
  assert [h.id for h in tj.reranked(hits, [2, 0])] == ["p2", "p0", "p1", "p3"]
  for bad in ("<RERANK>", "<RERANK> 5", "<RERANK> 1 1", "<RERANK> one", "3 1", "<RERANK> 0"):
    with pytest.raises(tj.ParseError):
      tj.parse_rerank(bad, 4)
  messages = tj.chat_messages("Q?", [{"query": "q", "hits": hits, "rerank": [3, 1], "fact": "f"}], "A", shown=2)
  assert [m["content"].split()[0] for m in messages[1:5]] == ["<QUERY>", "<CANDIDATES>", "<RERANK>", "<SEARCH>"]
  assert messages[3]["content"] == "<RERANK> 4 2" and messages[4]["content"].startswith("<SEARCH> [1] Title: T3.")
  assert "Title: T1." in messages[4]["content"] and "T0" not in messages[4]["content"]
