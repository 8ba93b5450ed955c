"""Seed trajectories from a benchmark's own supervision: [{"query", "fact", "title"}] steps, in reasoning order.

Warm-up needs a few worked searches, and the benchmarks already hold them: HotpotQA's supporting
sentences, 2Wiki's evidence triples, MuSiQue's decompositions. A step's "title" names the supporting
paragraph that holds its fact, so the trainer can make sure that paragraph is among the shown results.
"""

from __future__ import annotations

import re
from typing import Sequence

_DISAMBIGUATION = re.compile(r"\s*\([^()]*\)\s*$")
_WORD = re.compile(r"\w+")
_STOPWORDS = frozenset("a an and as at by for from in is of on or the to was were which who with".split())


def subject_name(title: str) -> str:
  """A Wikipedia title without its trailing disambiguation: "Kiss and Tell (1945 film)" → "Kiss and Tell"."""
  name = _DISAMBIGUATION.sub("", title).strip()
  return name or title.strip()


def _mentions(text: str, name: str) -> bool:
  """Whether `name` occurs in `text` as whole words, ignoring case."""
  return re.search(rf"(?<!\w){re.escape(name.lower())}(?!\w)", text.lower()) is not None


def _content_words(text: str) -> set[str]:
  return set(_WORD.findall(text.lower())) - _STOPWORDS


def reasoning_order(question: str, steps: Sequence[dict]) -> list[dict]:
  """Steps ordered so each query is named by the question or by a fact already found.

  Repeatedly takes the first remaining step whose query the question or a chosen fact mentions; when
  none is, the one whose query shares the most words with them (ties: given order). So a bridge
  question's named paragraph comes before the bridge entity, and a comparison keeps the given order.
  """
  remaining, ordered, known = list(steps), [], question
  while remaining:
    step = next((s for s in remaining if _mentions(known, s["query"])), None)
    if step is None:
      words = _content_words(known)
      step = max(remaining, key=lambda s: len(_content_words(s["query"]) & words))  # max keeps the first tie
    remaining.remove(step)
    ordered.append(step)
    known = f"{known} {step['fact']}"
  return ordered


def hotpot_steps(
    question: str, facts: Sequence[tuple[str, int]], context: Sequence[tuple[str, list[str]]]
) -> list[dict]:
  """One step per supporting paragraph: query its subject, record its supporting sentences.

  `facts` are validated [title, sentence index] pairs; `context` is [(title, sentences)], where the
  first paragraph under a title counts (as in the exported corpus). A fact that points outside `context`
  gives no sentence, as in HotpotQA's own evaluation (a few official training records have such a fact);
  a paragraph left without sentences gives no step.
  """
  paragraphs: dict[str, list[str]] = {}
  for title, sentences in context:
    paragraphs.setdefault(title, sentences)
  chosen: dict[str, set[int]] = {}
  for title, index in facts:
    in_range = 0 <= index < len(paragraphs.get(title, []))
    chosen.setdefault(title, set()).update([index] if in_range else [])
  steps = []
  for title, indices in chosen.items():
    kept = (paragraphs[title][j].strip() for j in sorted(indices))  # HotpotQA's later ones start with a space
    fact = " ".join(filter(None, kept))
    if fact:
      steps.append({"query": subject_name(title), "fact": fact, "title": title})
  return reasoning_order(question, steps)


def subject_title(subject: str, titles: Sequence[str]) -> str:
  """The supporting title about `subject` (2Wiki): equal to it, equal without disambiguation, else containing it."""
  wanted = subject.strip().casefold()
  if not wanted:
    return ""
  for matches in (
      lambda t: t.casefold() == wanted,
      lambda t: subject_name(t).casefold() == wanted,
      lambda t: wanted in t.casefold(),
  ):
    found = next((t for t in titles if matches(t)), None)
    if found is not None:
      return found
  return ""
