"""QA metrics as the benchmarks define them: EM and token F1 (SQuAD/HotpotQA), Acc (FlashRAG's `acc`).

`normalize_answer` is the official SQuAD/HotpotQA normalisation, character for character: lower case,
drop ASCII punctuation (`string.punctuation`), drop the whole words a/an/the, collapse whitespace.
Non-ASCII letters are kept, so "Zürich" and "東京" survive, and a digit separator is punctuation:
"1,000" and "1000" both normalise to "1000". An empty (normalised) prediction scores 0 everywhere.
"""

from __future__ import annotations

import collections
import re
import string
from typing import Sequence

from exsearch_jax.errors import ExsearchError

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")  # whole words only: "Ai Weiwei" and "Iran" keep their letters
_YES_NO = ("yes", "no", "noanswer")


class MetricError(ExsearchError):
  """Metrics were asked for something undefined (no gold answers, mismatched lengths)."""


def normalize_answer(s: str) -> str:
  """Official SQuAD/HotpotQA normalisation (the order matters: punctuation goes before articles)."""
  text = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", text).split())


def _golds(golds: str | Sequence[str]) -> list[str]:
  golds = [golds] if isinstance(golds, str) else list(golds)
  if not golds:
    raise MetricError("no gold answers to score against (is this an unanswered test split?)")
  return golds


def _f1_one(pred: str, gold: str) -> float:
  """HotpotQA's token F1, on normalised strings: yes/no/noanswer must match exactly."""
  if (pred in _YES_NO or gold in _YES_NO) and pred != gold:
    return 0.0
  pred_tokens, gold_tokens = pred.split(), gold.split()
  same = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
  if same == 0:
    return 0.0
  precision, recall = same / len(pred_tokens), same / len(gold_tokens)
  return 2 * precision * recall / (precision + recall)


def _best(prediction: str, golds: str | Sequence[str], score) -> float:
  golds = _golds(golds)
  pred = normalize_answer(prediction or "")
  if not pred:
    return 0.0
  return max(float(score(pred, normalize_answer(g))) for g in golds)


def exact_match(prediction: str, golds: str | Sequence[str]) -> float:
  """1.0 if the normalised prediction equals some normalised gold."""
  return _best(prediction, golds, lambda p, g: p == g)


def f1(prediction: str, golds: str | Sequence[str]) -> float:
  """Token F1 against the best gold (HotpotQA rule for yes/no/noanswer)."""
  return _best(prediction, golds, _f1_one)


def accuracy(prediction: str, golds: str | Sequence[str]) -> float:
  """FlashRAG's `acc`: 1.0 if some non-empty normalised gold is a substring of the normalised prediction."""
  return _best(prediction, golds, lambda p, g: bool(g) and g in p)


def corpus_metrics(predictions: Sequence[str], golds_list: Sequence[str | Sequence[str]]) -> dict:
  """Means of EM, F1 and Acc over a set of questions, and how many there were."""
  if len(predictions) != len(golds_list):
    raise MetricError(f"{len(predictions)} predictions but {len(golds_list)} gold answer lists")
  if not predictions:
    raise MetricError("no predictions to score")
  n = len(predictions)
  total = {"em": 0.0, "f1": 0.0, "acc": 0.0}
  for pred, golds in zip(predictions, golds_list):
    total["em"] += exact_match(pred, golds)
    total["f1"] += f1(pred, golds)
    total["acc"] += accuracy(pred, golds)
  return {**{k: v / n for k, v in total.items()}, "n": n}


# a role header (ChatML, Llama 3, Gemma) goes with its role name; any other special token alone
_SPECIAL_TOKENS = re.compile(
    r"(?:<\|im_start\|>|<\|start_header_id\|>|<start_of_turn>)\s*\w+\s*"
    r"(?:<\|end_header_id\|>)?"
    r"|<\|[^|>]*\|>|</?s>|<eos>|<end_of_turn>|<FINAL>"
)
_ANSWER_PREFIX = re.compile(r"\banswer\s*(?:is\b\s*:?|:)", re.IGNORECASE)
_WRAPPERS = "\"'*`“”‘’ \t"


def extract_answer(text: str) -> str:
  """The short answer in a model's final turn: after the last "answer:"/"answer is", first line, no final period."""
  text = _SPECIAL_TOKENS.sub(" ", text or "")
  matches = list(_ANSWER_PREFIX.finditer(text))
  if matches:
    text = text[matches[-1].end() :]
  line = next((ln for ln in text.splitlines() if ln.strip()), "")
  line = line.strip().strip(_WRAPPERS)
  if line.endswith(".") and not line.endswith(".."):
    line = line[:-1].rstrip().strip(_WRAPPERS)
  return line
