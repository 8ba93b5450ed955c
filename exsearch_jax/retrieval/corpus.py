"""Passage corpora: JSONL (`id`, `title`, `text`, or FlashRAG's `contents` = "title\\ntext") and DPR TSV.

Reading streams and validates: bad JSON, a missing field, a duplicate id or an empty text is one
`CorpusError` naming the file and line. Nothing is skipped silently.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from typing import Iterator

from exsearch_jax.errors import ExsearchError


class CorpusError(ExsearchError):
  """A corpus file is malformed; the message names file and line."""


@dataclasses.dataclass(frozen=True)
class Passage:
  id: str
  title: str
  text: str

  @property
  def contents(self) -> str:
    """What the encoder and BM25 see: title and text (FlashRAG's convention)."""
    return f"{self.title}\n{self.text}" if self.title else self.text


def split_contents(contents: str) -> tuple[str, str]:
  """FlashRAG's `contents` (the title in double quotes, a line break, the text) as (title, text)."""
  title, sep, text = contents.partition("\n")
  if not sep:
    return "", contents
  return title.strip().strip('"'), text


def _jsonl(path: str) -> Iterator[tuple[int, Passage]]:
  with open(path, "rb") as f:
    for line_no, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise CorpusError(f"{path}:{line_no}: not UTF-8 (byte {e.start} of the line)") from None
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise CorpusError(f"{path}:{line_no}: invalid JSON ({e.msg})") from None
      if not isinstance(row, dict):
        raise CorpusError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
      if "id" not in row:
        raise CorpusError(f"{path}:{line_no}: missing field 'id'")
      if "text" in row:
        title, text = row.get("title") or "", row["text"]
      elif "contents" in row:
        title, text = split_contents(row["contents"])
      else:
        raise CorpusError(f"{path}:{line_no}: missing field 'text' (or FlashRAG 'contents')")
      if not isinstance(text, str) or not isinstance(title, str):
        raise CorpusError(f"{path}:{line_no}: field 'text'/'title' must be a string")
      yield line_no, Passage(str(row["id"]), title, text)


def _tsv(path: str) -> Iterator[tuple[int, Passage]]:
  with open(path, encoding="utf-8", newline="") as f:
    reader = csv.reader(f, delimiter="\t")
    try:
      header = next(reader, None)
      if header is None or [h.strip() for h in header[:3]] != ["id", "text", "title"]:
        raise CorpusError(f"{path}:1: expected the DPR header 'id<TAB>text<TAB>title', got {header!r}")
      for row in reader:
        line_no = reader.line_num
        if len(row) != 3:
          raise CorpusError(f"{path}:{line_no}: expected 3 tab-separated fields (id, text, title), got {len(row)}")
        yield line_no, Passage(row[0], row[2], row[1])
    except UnicodeDecodeError:
      raise CorpusError(f"{path}: not UTF-8 (after line {reader.line_num})") from None


def read_corpus(path: str) -> Iterator[Passage]:
  """Streams passages from a .jsonl or .tsv file, validating each line."""
  if not os.path.exists(path):
    raise CorpusError(f"{path}: no such corpus file")
  rows = _tsv(path) if path.endswith(".tsv") else _jsonl(path)
  seen: dict = {}
  for line_no, passage in rows:
    if not passage.id:
      raise CorpusError(f"{path}:{line_no}: field 'id' is empty")
    if passage.id in seen:
      raise CorpusError(f"{path}:{line_no}: duplicate id {passage.id!r} (first on line {seen[passage.id]})")
    if not passage.text.strip():
      raise CorpusError(f"{path}:{line_no}: field 'text' is empty (id {passage.id!r})")
    seen[passage.id] = line_no
    yield passage


def fingerprint(path: str) -> str:
  """sha256 of the corpus file's bytes: an index refuses to serve a corpus that changed."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()
