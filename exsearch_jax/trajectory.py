"""The search-trajectory grammar: how steps are written into a chat, and how model output is parsed.

A trajectory is a chat (the reference implementation's plain-text tags):
  system:    the instruction (the protocol below in words; `INSTRUCTIONS`, never trained on)
  user:      Question: {question}
  assistant: <QUERY> sub-query
  user:      <SEARCH> [1] Title: T. Content: C  [2] ...
  assistant: <FACT> what was learned <QUERY> next sub-query     (or: <FACT> ... <FINAL>)
  user:      please give the final answer to the input question: {question}
  assistant: the short answer
With the re-rank action (the paper's Zoo; `rollout.rerank`) each search returns its candidates' titles first
and the model orders them before the top ones are shown:
  user:      <CANDIDATES> [1] T1 [2] T2 ... [k] Tk
  assistant: <RERANK> 3 1                                      (candidate numbers, best first)
  user:      <SEARCH> [1] Title: T3. Content: ...  [2] Title: T1. ...
The parser accepts exactly what the renderer writes (whitespace aside) and reports anything else as
unparseable, so a broken trajectory is logged and weighted 0 instead of crashing a run.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Optional, Sequence

QUERY, SEARCH, FACT, FINAL = "<QUERY>", "<SEARCH>", "<FACT>", "<FINAL>"
TAGS = (QUERY, SEARCH, FACT, FINAL)
CANDIDATES, RERANK = "<CANDIDATES>", "<RERANK>"


class StopReason(enum.StrEnum):
  """Why a trajectory ended (a str, so it is written to JSON and compared as its value)."""

  ANSWERED = "answered"  # it gave an answer (after <FINAL>, or asked at the step budget)
  UNPARSEABLE = "unparseable"  # a turn the grammar cannot read
  TRUNCATED = "truncated"  # a search turn ran out of tokens
  STEP_BUDGET = "step_budget"  # it asked for a search past max_steps (answer_at_budget off)
  LENGTH = "length"  # the KV cache is full


RERANK_TAGS = (CANDIDATES, RERANK)  # only in trajectories with the re-rank action
ANSWER_REQUEST = "please give the final answer to the input question: {question}"

# What the model is told before the question. An instruct model that has never seen the protocol answers in
# prose without it (SmolLM2-135M-Instruct: 0 searches on real HotpotQA questions). Written in our own words
# after the reference implementation's prompt; it goes in the system turn (the user turn where the chat
# template has no system role) and is masked from the loss like every non-assistant turn.
INSTRUCTIONS = {
    "none": None,
    "exsearch": (
        "You answer questions by searching a Wikipedia-like collection of passages, one search at a time.\n"
        f"Step 1: write {QUERY} followed by a short search query about one thing the question needs.\n"
        f"The search results come back after {SEARCH}. Read them.\n"
        f"Step 2: write {FACT} followed by the fact you found in the results, then either {QUERY} with the "
        f"next search query, or {FINAL} when the facts you recorded answer the question.\n"
        "When asked for the final answer, reply with the short answer only: a name, a date, a number, "
        "yes or no.\n"
        f'Example, for "Which river flows through the city where Mozart was born?": "{QUERY} Mozart '
        f'birthplace", then "{FACT} Mozart was born in Salzburg.\\n{QUERY} river through Salzburg", then '
        f'"{FACT} The Salzach flows through Salzburg.\\n{FINAL}", then "Salzach".'
    ),
}


def instruction_text(name: str) -> str | None:
  """The instruction called `name` (None for "none"); a clear error for an unknown name."""
  if name not in INSTRUCTIONS:
    raise ValueError(f"unknown instruction {name!r}; choose one of {sorted(INSTRUCTIONS)}")
  return INSTRUCTIONS[name]


def question_turn(question: str) -> str:
  return f"Question: {question}"


def opening_messages(question: str, instruction: str = "none") -> list[dict]:
  """The turns before the model's first step: the instruction (a system turn) and the question."""
  text = instruction_text(instruction)
  system = [{"role": "system", "content": text}] if text else []
  return system + [{"role": "user", "content": question_turn(question)}]


def answer_request(question: str) -> str:
  return ANSWER_REQUEST.format(question=question)


def search_turn(hits: Sequence, shown: int) -> str:
  """The user turn that returns retrieved passages (`Hit`s or dicts with title/text), top `shown` only."""
  lines = []
  for i, hit in enumerate(list(hits)[:shown], 1):
    title, text = (hit["title"], hit["text"]) if isinstance(hit, dict) else (hit.title, hit.text)
    lines.append(f"[{i}] Title: {title}. Content: {text}")
  return f"{SEARCH} " + "\n".join(lines) if lines else f"{SEARCH} (no results)"


def candidates_turn(hits: Sequence) -> str:
  """The user turn that lists a search's candidates by title, numbered from 1, for the model to re-rank."""
  titles = [hit["title"] if isinstance(hit, dict) else hit.title for hit in hits]
  return (
      f"{CANDIDATES} " + " ".join(f"[{i}] {t}" for i, t in enumerate(titles, 1))
      if titles
      else f"{CANDIDATES} (no results)"
  )


def rerank_step(order: Sequence[int]) -> str:
  """The model's re-rank turn: 0-based candidate indices, best first, written 1-based."""
  return f"{RERANK} " + " ".join(str(i + 1) for i in order)


def parse_rerank(text: str, candidates: int) -> list[int]:
  """The 0-based order of a re-rank turn ("<RERANK> 3 1"): numbers 1..candidates, no repeats, at least one."""
  body = text.strip()
  if not body.startswith(RERANK):
    raise ParseError(f"not a re-rank turn: {text!r}")
  words = body[len(RERANK) :].split()
  if not words or not all(w.isdigit() and 1 <= int(w) <= candidates for w in words) or len(set(words)) != len(words):
    raise ParseError(f"a re-rank turn lists distinct candidate numbers 1..{candidates}: {text!r}")
  return [int(w) - 1 for w in words]


def reranked(hits: Sequence, order: Sequence[int]) -> list:
  """The candidates in the model's order; those it did not name follow in the retriever's order."""
  rest = [i for i in range(len(hits)) if i not in set(order)]
  return [hits[i] for i in list(order) + rest]


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


@dataclasses.dataclass
class SearchStep:
  """One search of a sampled trajectory: the model's sub-query, what the retriever returned (ids and titles,
  ranked), which passages were shown, the model's order of them (re-rank action), and the fact it recorded."""

  query: str
  retrieved_ids: list = dataclasses.field(default_factory=list)
  retrieved_titles: list = dataclasses.field(default_factory=list)
  shown_ids: list = dataclasses.field(default_factory=list)
  fact: Optional[str] = None
  rerank: Optional[list] = None


@dataclasses.dataclass
class Trajectory:
  """One sampled search for a question: its tokens (with what the model wrote and their log-probs), the
  parsed searches, the answer and why it ended; the E-step adds its weight."""

  question_id: str
  sample: int
  question: str
  tokens: list
  loss_mask: list  # True where the model wrote the token (the M-step trains on these)
  logprobs: list  # log p of each model-written token when sampled (0.0 elsewhere)
  prompt_length: int
  steps: list = dataclasses.field(default_factory=list)  # SearchStep, in order
  answer: Optional[str] = None
  stop_reason: str = ""  # a StopReason once it ended
  answer_start: int = -1  # index of the first answer-turn token (after the answer request); -1 = never asked
  golden_answers: Optional[list] = None
  weight: Optional[float] = None
  gold_logprob: Optional[float] = None  # log p(y*|x,z) scored on the rollout's own cache (None: not scored there)
  gold_tokens: int = 0  # tokens of that gold answer turn (its text and end of turn)

  @property
  def gold_answer(self) -> str:
    """The gold answer the E-step scores and trains on: the first (empty when none, so only the turn's end)."""
    return (self.golden_answers or [""])[0]

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, row: dict) -> "Trajectory":
    steps = [s if isinstance(s, SearchStep) else SearchStep(**s) for s in row.get("steps") or []]
    return cls(**{**row, "steps": steps})


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


def chat_messages(
    question: str, steps: Sequence[dict], answer: Optional[str], shown: int, instruction: str = "none"
) -> list[dict]:
  """A whole trajectory as chat messages. `steps`: [{"query", "hits", "fact"}] in order; a step with
  "rerank" (0-based order over its "hits", the candidates) has the re-rank action's two extra turns."""
  messages = opening_messages(question, instruction)
  fact = None
  for step in steps:
    messages.append({"role": "assistant", "content": assistant_step(fact, step["query"])})
    hits = step["hits"]
    if step.get("rerank") is not None:
      messages.append({"role": "user", "content": candidates_turn(hits)})
      messages.append({"role": "assistant", "content": rerank_step(step["rerank"])})
      hits = reranked(hits, step["rerank"])
    messages.append({"role": "user", "content": search_turn(hits, shown)})
    fact = step["fact"]
  messages.append({"role": "assistant", "content": assistant_step(fact, None)})
  messages.append({"role": "user", "content": answer_request(question)})
  if answer is not None:
    messages.append({"role": "assistant", "content": answer})
  return messages


def render_text(messages: Sequence[dict]) -> str:
  """A plain, readable transcript (for logs and `make_world`'s samples)."""
  return "\n".join(f"{m['role']:>9}: {m['content']}" for m in messages)
