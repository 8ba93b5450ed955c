"""The search-trajectory grammar: how steps are written into a chat, and how model output is parsed.

A trajectory is a chat (the reference implementation's plain-text tags):
  user:      Question: {question}
  assistant: <QUERY> sub-query
  user:      <SEARCH> [1] Title: T. Content: C  [2] ...
  assistant: <FACT> what was learned <QUERY> next sub-query     (or: <FACT> ... <FINAL>)
  user:      please give the final answer to the input question: {question}
  assistant: the short answer
The parser accepts exactly what the renderer writes (whitespace aside) and reports anything else as
unparseable, so a broken trajectory is logged and weighted 0 instead of crashing a run.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional, Sequence

QUERY, SEARCH, FACT, FINAL = "<QUERY>", "<SEARCH>", "<FACT>", "<FINAL>"
TAGS = (QUERY, SEARCH, FACT, FINAL)
ANSWER_REQUEST = "please give the final answer to the input question: {question}"


def question_turn(question: str) -> str:
  return f"Question: {question}"


def answer_request(question: str) -> str:
  return ANSWER_REQUEST.format(question=question)


def search_turn(hits: Sequence, shown: int) -> str:
  """The user turn that returns retrieved passages (`Hit`s or dicts with title/text), top `shown` only."""
  lines = []
  for i, hit in enumerate(list(hits)[:shown], 1):
    title, text = (hit["title"], hit["text"]) if isinstance(hit, dict) else (hit.title, hit.text)
    lines.append(f"[{i}] Title: {title}. Content: {text}")
  return f"{SEARCH} " + "\n".join(lines) if lines else f"{SEARCH} (no results)"


def assistant_step(fact: Optional[str], query: Optional[str]) -> str:
  """One assistant turn: an optional fact from the last search, then a new query or the final marker."""
  parts = [f"{FACT} {fact}"] if fact is not None else []
  parts.append(f"{QUERY} {query}" if query is not None else FINAL)
  return "\n".join(parts)


@dataclasses.dataclass(frozen=True)
class Step:
  """A parsed assistant turn: `action` is "query" (search for `query`) or "final" (ready to answer)."""
  action: str
  query: str = ""
  fact: Optional[str] = None


class ParseError(ValueError):
  pass


_TAG_RE = re.compile("(" + "|".join(re.escape(t) for t in TAGS) + ")")


def parse_step(text: str, first: bool) -> Step:
  """Parses one assistant turn. The first turn is a bare query; later turns start with a fact."""
  pieces = [p.strip() for p in _TAG_RE.split(text.strip())]
  if pieces and pieces[0] == "":
    pieces = pieces[1:]
  tags, bodies = pieces[0::2], pieces[1::2] + [""] * (len(pieces[0::2]) - len(pieces[1::2]))
  fact = None
  if tags[:1] == [FACT] and not first:
    fact, tags, bodies = bodies[0], tags[1:], bodies[1:]
  if tags == [QUERY] or tags == [QUERY, SEARCH]:
    if not bodies[0] or (len(bodies) > 1 and bodies[1]):
      raise ParseError(f"empty query or text after {SEARCH}: {text!r}")
    return Step("query", bodies[0], fact)
  if tags == [FINAL] and not first and not bodies[0]:
    return Step("final", "", fact)
  raise ParseError(f"not a {'first ' if first else ''}step: {text!r}")


def chat_messages(question: str, steps: Sequence[dict], answer: Optional[str], shown: int) -> list[dict]:
  """A whole trajectory as chat messages. `steps`: [{"query", "hits", "fact"}] in order."""
  messages = [{"role": "user", "content": question_turn(question)}]
  fact = None
  for step in steps:
    messages.append({"role": "assistant", "content": assistant_step(fact, step["query"])})
    messages.append({"role": "user", "content": search_turn(step["hits"], shown)})
    fact = step["fact"]
  messages.append({"role": "assistant", "content": assistant_step(fact, None)})
  messages.append({"role": "user", "content": answer_request(question)})
  if answer is not None:
    messages.append({"role": "assistant", "content": answer})
  return messages


def render_text(messages: Sequence[dict]) -> str:
  """A plain, readable transcript (for logs and `make_world`'s samples)."""
  return "\n".join(f"{m['role']:>9}: {m['content']}" for m in messages)
