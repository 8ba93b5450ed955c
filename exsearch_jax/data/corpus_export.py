"""Passage corpus from HotpotQA (or 2Wiki, same `context` form) contexts, in the retrieval JSONL format.

Each context paragraph becomes `{"id": title, "title": title, "text": sentences joined}`; a title seen
again is skipped (the same Wikipedia paragraph recurs across questions), so supporting titles are ids.
Paragraphs without text are skipped too: `exsearch_jax.retrieval.read_corpus` refuses empty passages.
"""
from __future__ import annotations

import json
import os

from exsearch_jax.data.qa_formats import hotpot_context, iter_json_list


def export_hotpotqa_corpus(json_path: str, out_jsonl: str) -> int:
  """Writes the de-duplicated passages of `json_path` to `out_jsonl`; returns how many were written."""
  seen: set[str] = set()
  paragraphs = []
  for rec in iter_json_list(json_path):   # validate everything before writing anything
    rec.ident("_id")
    for title, sentences in hotpot_context(rec):
      text = "".join(sentences).strip()
      if title.strip() and text and title not in seen:
        seen.add(title)
        paragraphs.append({"id": title, "title": title, "text": text})
  os.makedirs(os.path.dirname(os.path.abspath(out_jsonl)), exist_ok=True)
  tmp = f"{out_jsonl}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for para in paragraphs:
      f.write(json.dumps(para, ensure_ascii=False) + "\n")
  os.replace(tmp, out_jsonl)
  return len(paragraphs)
