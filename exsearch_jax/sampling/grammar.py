"""Grammar-constrained search turns: a token-level automaton applied as a logit mask in the jitted decode step.

As structured-generation libraries do, every row carries an automaton state; a (states, vocab) table says
which tokens the state allows and another which state each token leads to. The rollout writes a turn's
opening tag for the model (`<QUERY>` on the first turn, `<FACT>` on later ones), and the automaton then
keeps the turn inside the grammar of `trajectory.parse_step`:

  first turn:   <QUERY> (one token at least, no tag) [text] (<SEARCH> | end of turn)
  later turns:  <FACT> [text without a tag] (<QUERY> ... as above | <FINAL>)

Inside text, a token that holds "<" (the start of any tag or special token) is allowed only as the first
token of an allowed tag; once a tag is started, only its own tokens can follow. Tags are written as the
tokenizer encodes them alone, so the stop check sees `<SEARCH>` and `<FINAL>` exactly. Text is one line:
after a token with a line break only the tag (or, after a query, the end of the turn) may follow. A fact
turn cannot end before it says where it goes next, and every turn must end within its token budget: a
token is allowed only if the turn can still end in the tokens left, so a fact that runs long is closed with
a tag instead of being cut off unparseable; a fact may take half the turn's budget, so that the query
after it still has room. The answer turn is one line without tags.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from exsearch_jax import trajectory as tj

FREE = 0  # no constraint: every token allowed, the state never changes
_FAR = 1 << 20  # "never ends" in `to_end`


@dataclasses.dataclass(frozen=True)
class TurnGrammar:
  allowed: np.ndarray  # (states, vocab) bool: tokens a state may sample
  transition: np.ndarray  # (states, vocab) int32: the state after sampling a token
  to_end: np.ndarray  # (states,) int32: fewest tokens that end the turn from a state (budget-aware mask)
  half_spent: np.ndarray  # (states,) int32: the state to be in once half the turn's budget is written
  query_prefix: tuple  # tokens of the first turn's opening tag, written for the model
  fact_prefix: tuple  # tokens of a later turn's opening tag
  query_start: int  # state right after `query_prefix`
  fact_start: int  # state right after `fact_prefix`
  answer_start: int  # state of the answer turn: one line of text, no tag


class _Builder:
  """Adds states to the two tables; each new state starts as "allow everything, stay"."""

  def __init__(self, vocab: int):
    self.vocab = vocab
    self.allowed: list[np.ndarray] = []
    self.transition: list[np.ndarray] = []

  def state(self) -> int:
    self.allowed.append(np.ones(self.vocab, bool))
    self.transition.append(np.full(self.vocab, len(self.transition), np.int32))
    return len(self.allowed) - 1

  def text(self, state: int, tagged: np.ndarray, end_of_turn: int, may_end: bool, tags: dict, then: int) -> None:
    """`state` reads text: no token with "<" but the first tokens of `tags` ({tag tokens: state after it})."""
    self.allowed[state][tagged] = False
    self.allowed[state][end_of_turn] = may_end
    self.transition[state][:] = then
    self._trie(state, tags, depth=0)

  def _trie(self, state: int, tags: dict, depth: int) -> None:
    for first in sorted({t[depth] for t in tags}):
      rest = {t: s for t, s in tags.items() if t[depth] == first}
      self.allowed[state][first] = True
      done = [s for t, s in rest.items() if len(t) == depth + 1]
      if done:
        self.transition[state][first] = done[0]
        continue
      node = self.state()
      self.allowed[node][:] = False
      self.transition[state][first] = node
      self._trie(node, rest, depth + 1)


@functools.lru_cache(maxsize=8)
def grammar_for(chat) -> TurnGrammar:
  """`build_grammar(chat)`, built once per chat format."""
  return build_grammar(chat)


def build_grammar(chat) -> TurnGrammar:
  """The automaton for `chat`'s tokenizer (token texts decoded once; a few seconds for a 50k vocabulary)."""
  tokenizer = chat.tokenizer
  vocab = max(len(tokenizer), chat.end_of_turn + 1)
  texts = tokenizer.batch_decode([[i] for i in range(vocab)], skip_special_tokens=False)
  tagged = np.array(["<" in t for t in texts])
  tag = {name: tuple(chat.encode(name)) for name in tj.TAGS}
  for name, ids in tag.items():
    if not ids or not tagged[ids[0]]:
      raise ValueError(f"the tokenizer's first token of {name} does not hold '<'; cannot constrain turns")
  newline = np.array(["\n" in t for t in texts]) & ~tagged
  b = _Builder(vocab)
  free, query_first, query_text, query_end, fact_text, fact_end, answer, end = (b.state() for _ in range(8))
  assert free == FREE
  after_query, after_fact = {tag[tj.SEARCH]: end}, {tag[tj.QUERY]: query_first, tag[tj.FINAL]: end}
  b.text(query_first, tagged | newline, chat.end_of_turn, may_end=False, tags={}, then=query_text)
  b.text(query_text, tagged, chat.end_of_turn, may_end=True, tags=after_query, then=query_text)
  b.text(fact_text, tagged, chat.end_of_turn, may_end=False, tags=after_fact, then=fact_text)
  for text_state, end_state, tags in ((query_text, query_end, after_query), (fact_text, fact_end, after_fact)):
    b.transition[text_state][newline] = end_state  # one line of text, then the tag
    b.text(
        end_state, np.ones(vocab, bool), chat.end_of_turn, may_end=text_state == query_text, tags=tags, then=end_state
    )
  b.text(answer, tagged, chat.end_of_turn, may_end=True, tags={}, then=answer)
  b.transition[answer][newline] = end
  b.allowed[end][:] = False
  b.allowed[end][chat.end_of_turn] = True
  allowed, transition = np.stack(b.allowed), np.stack(b.transition)
  transition[:, chat.end_of_turn] = end  # the end of the turn, wherever it is allowed
  half_spent = np.arange(len(allowed), dtype=np.int32)
  half_spent[fact_text] = fact_end  # a fact takes half the turn at most: the next query needs room too
  return TurnGrammar(
      allowed,
      transition,
      _tokens_to_end(allowed, transition, end),
      half_spent,
      tag[tj.QUERY],
      tag[tj.FACT],
      query_start=query_first,
      fact_start=fact_text,
      answer_start=answer,
  )


def _tokens_to_end(allowed: np.ndarray, transition: np.ndarray, end: int) -> np.ndarray:
  """The fewest tokens from each state to the end of the turn (0 at `end` and in `FREE`, which may stop
  anywhere), by relaxing over the tables until nothing changes."""
  dist = np.full(len(allowed), _FAR, np.int64)
  dist[[FREE, end]] = 0
  while True:
    best = np.where(allowed, 1 + dist[transition], _FAR).min(axis=1)
    new = np.minimum(dist, best)
    new[[FREE, end]] = 0
    if (new == dist).all():
      return np.minimum(dist, _FAR).astype(np.int32)
    dist = new
