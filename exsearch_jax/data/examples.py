"""The one QA example form every reader and builder yields (FlashRAG's, plus multi-hop annotations).

    {"id": str, "question": str, "golden_answers": [str], "supporting_ids": [str], "supporting_titles": [str],
     "hops": int (0 = unknown), "type": str ("" = unknown), "decomposition": [{"query": str, "fact": str}]}

`Record` wraps one raw record with where it came from, so that every complaint about it is one
`DatasetError` naming the file, the line (or the record index in a JSON-list file) and the field.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

from exsearch_jax.errors import ExsearchError

FIELDS = ("id", "question", "golden_answers", "supporting_ids", "supporting_titles", "hops", "type", "decomposition")
REQUIRED = object()
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean", list: "a list", dict: "an object"}


class DatasetError(ExsearchError):
  """A QA dataset file is missing or malformed; the message names file, line/record and field."""


def _type_name(kind) -> str:
  kinds = kind if isinstance(kind, tuple) else (kind,)
  return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


class Record:
  """One raw record (a dict) and its location, e.g. "dev.json: record 3" or "dev.jsonl:7"."""

  def __init__(self, where: str, row: Any):
    self.where = where
    if not isinstance(row, dict):
      self.fail(f"expected a JSON object, got {type(row).__name__}")
    self.row = row

  def fail(self, message: str):
    raise DatasetError(f"{self.where}: {message}")

  def check(self, ok: bool, field: str, expected: str):
    if not ok:
      self.fail(f"field '{field}' must be {expected}")

  def get(self, field: str, kind=str, default=REQUIRED):
    """The field's value, checked against `kind` (bool is never accepted as int); `default` if absent."""
    if field not in self.row or self.row[field] is None:
      if default is REQUIRED:
        self.fail(f"missing field '{field}'")
      return default
    value = self.row[field]
    bad_bool = isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
    if bad_bool or not isinstance(value, kind):
      self.fail(f"field '{field}' must be {_type_name(kind)}, got {type(value).__name__}")
    return value

  def text(self, field: str, default=REQUIRED) -> str:
    """A non-empty string field."""
    value = self.get(field, str, default)
    if value is not default and not value.strip():
      self.fail(f"field '{field}' is empty")
    return value

  def strings(self, field: str, default=REQUIRED) -> list[str]:
    """A list-of-strings field."""
    value = self.get(field, list, default)
    if value is not default:
      for i, item in enumerate(value):
        self.check(isinstance(item, str), f"{field}[{i}]", f"a string, got {type(item).__name__}")
    return value

  def items(self, field: str, kind, default=REQUIRED) -> list:
    """A list field whose items all have type `kind` (their inner shape is the caller's to check)."""
    value = self.get(field, list, default)
    if value is not default:
      for i, item in enumerate(value):
        self.check(isinstance(item, kind), f"{field}[{i}]", f"{_type_name(kind)}, got {type(item).__name__}")
    return value

  def ident(self, field: str = "id") -> str:
    """The record's id (a string or an integer, given as a string); later complaints quote it."""
    value = self.get(field, (str, int))
    if not str(value).strip():
      self.fail(f"field '{field}' is empty")
    self.where = f"{self.where} (id {str(value)!r})"
    return str(value)


def unique(strings: Iterable[str]) -> list[str]:
  """Order-preserving de-duplication (answer aliases, supporting titles)."""
  return list(dict.fromkeys(s for s in strings if s))


def make_example(
    id: str,
    question: str,
    golden_answers: list[str],
    *,
    supporting_ids=(),
    supporting_titles=(),
    hops: int = 0,
    type: str = "",
    decomposition=(),
) -> dict:
  """The common example dict with every field present."""
  return {
      "id": id,
      "question": question,
      "golden_answers": list(golden_answers),
      "supporting_ids": list(supporting_ids),
      "supporting_titles": list(supporting_titles),
      "hops": int(hops),
      "type": type,
      "decomposition": [dict(step) for step in decomposition],
  }


def complete(example: Any, where: str) -> dict:
  """Validates a generated example (e.g. from a builder's `_generate_examples`) and fills absent optional fields.

  Fields outside `FIELDS` are dropped: the stored features are exactly the common form.
  """
  rec = Record(where, example)
  qid = rec.ident()
  steps = rec.items("decomposition", dict, [])
  for i, step in enumerate(steps):
    for key in ("query", "fact"):
      rec.check(isinstance(step.get(key), str), f"decomposition[{i}].{key}", "a string")
  return make_example(
      qid,
      rec.text("question"),
      rec.strings("golden_answers"),
      supporting_ids=rec.strings("supporting_ids", []),
      supporting_titles=rec.strings("supporting_titles", []),
      hops=rec.get("hops", int, 0),
      type=rec.get("type", str, ""),
      decomposition=steps,
  )


def check_unique_ids(examples: Iterable[tuple[str, dict]]) -> Iterator[dict]:
  """Passes (where, example) pairs through as examples, failing on the first repeated id."""
  first: dict[str, str] = {}
  for where, example in examples:
    if example["id"] in first:
      raise DatasetError(f"{where}: duplicate id {example['id']!r} (first at {first[example['id']]})")
    first[example["id"]] = where
    yield example


def to_features(example: dict) -> dict:
  """The stored form: the decomposition as JSON text (robust to any step shape)."""
  return {**example, "decomposition": json.dumps(example["decomposition"], ensure_ascii=False)}


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def from_features(record: dict) -> dict:
  """Inverse of `to_features` on what a TFDS data source returns (bytes, numpy scalars and arrays)."""
  return make_example(
      _text(record["id"]),
      _text(record["question"]),
      [_text(a) for a in record["golden_answers"]],
      supporting_ids=[_text(s) for s in record["supporting_ids"]],
      supporting_titles=[_text(s) for s in record["supporting_titles"]],
      hops=int(record["hops"]),
      type=_text(record["type"]),
      decomposition=json.loads(_text(record["decomposition"])),
  )
