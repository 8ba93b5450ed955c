"""A passage corpus built from the context paragraphs that HotpotQA, 2Wiki and MuSiQue files carry.

A user with only a benchmark file gets a corpus (and so an index) without a Wikipedia dump: every context
paragraph of the files becomes a passage `{"id", "title", "text"}`, written in the retrieval JSONL format.
HotpotQA and 2Wiki paragraphs are an article's lead, so a title is one passage (the first one seen; the
same lead recurs across questions) and its id is the title: gold passages are found by title. MuSiQue
paragraphs are sections of an article, so each distinct (title, text) is a passage; a title's later
sections get the ids "title [2]", "title [3]", ... Ids depend only on the files and their order.
Empty paragraphs are left out (`read_corpus` refuses empty passages). Everything is validated before
anything is written, and the file appears whole (written to a temporary name, then renamed).
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Iterator, Optional, Sequence

from exsearch_jax.data.examples import DatasetError
from exsearch_jax.data.qa_formats import hotpot_context, iter_json_list, iter_jsonl

CONTEXT_FORMATS = ("hotpotqa", "2wiki", "musique")


def context_paragraphs(path: str, fmt: str, limit: Optional[int] = None) -> Iterator[tuple[str, str]]:
  """(title, text) of every context paragraph of the first `limit` records (all: None) of `path`, in order."""
  if fmt in ("hotpotqa", "2wiki"):
    for rec in itertools.islice(iter_json_list(path), limit):
      rec.ident("_id")
      for title, sentences in hotpot_context(rec, []):
        yield title.strip(), " ".join(s.strip() for s in sentences if s.strip())
  elif fmt == "musique":
    for rec in itertools.islice(iter_jsonl(path), limit):
      rec.ident("id")
      for i, para in enumerate(rec.items("paragraphs", dict, [])):
        rec.check(
            isinstance(para.get("title"), str) and isinstance(para.get("paragraph_text"), str),
            f"paragraphs[{i}]",
            "an object with 'title' and 'paragraph_text' strings",
        )
        yield para["title"].strip(), para["paragraph_text"].strip()
  else:
    raise DatasetError(
        f"{path}: {fmt!r} files carry no context paragraphs (formats with them: "
        f"{', '.join(CONTEXT_FORMATS)}); set config.data.corpus to a passage corpus"
    )


def export_context_corpus(
    paths: Sequence[str], out_jsonl: str, fmt: str = "hotpotqa", limits: Optional[Sequence[Optional[int]]] = None
) -> int:
  """Writes the de-duplicated passages of `paths` (of their first `limits[i]` records) to `out_jsonl`;
  returns how many were written."""
  by_section = fmt == "musique"
  seen, per_title, passages = set(), {}, []
  for path, limit in zip(paths, limits or [None] * len(paths)):
    for title, text in context_paragraphs(path, fmt, limit):
      key = (title, text) if by_section else title
      if not title or not text or key in seen:
        continue
      seen.add(key)
      per_title[title] = per_title.get(title, 0) + 1
      pid = title if per_title[title] == 1 else f"{title} [{per_title[title]}]"
      passages.append({"id": pid, "title": title, "text": text})
  os.makedirs(os.path.dirname(os.path.abspath(out_jsonl)), exist_ok=True)
  tmp = f"{out_jsonl}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for passage in passages:
      f.write(json.dumps(passage, ensure_ascii=False) + "\n")
  os.replace(tmp, out_jsonl)
  return len(passages)


def export_hotpotqa_corpus(json_path: str, out_jsonl: str) -> int:
  """The corpus of one HotpotQA (or 2Wiki) file."""
  return export_context_corpus([json_path], out_jsonl, "hotpotqa")
