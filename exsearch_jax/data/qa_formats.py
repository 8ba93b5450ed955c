"""Readers for the QA benchmarks' official files, each yielding the common example form (`examples.py`).

Formats: HotpotQA and 2WikiMultihopQA (one JSON list), MuSiQue, NQ-open and FlashRAG (JSON lines),
Bamboogle (CSV). `labelled=False` reads a test file that ships without answers or supporting facts.
Passages are identified by title: `supporting_ids` are the ids `export_hotpotqa_corpus` writes.
The `decomposition` is a seed trajectory built from the benchmark's supervision (`oracle_seeds.py`).
Every problem is one `DatasetError` naming file, line (record index in a JSON list) and field.
"""

from __future__ import annotations

import csv
import json
import os
import re
from typing import Callable, Iterator

from exsearch_jax.data.examples import REQUIRED, DatasetError, Record, check_unique_ids, make_example, unique
from exsearch_jax.data.oracle_seeds import hotpot_steps, subject_title


def _check_exists(path: str):
  if not os.path.isfile(path):
    raise DatasetError(f"{path}: no such file")


def iter_json_list(path: str) -> Iterator[Record]:
  """Records of a file holding one JSON list (HotpotQA, 2Wiki), located by their 0-based index."""
  _check_exists(path)
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except json.JSONDecodeError as e:
    raise DatasetError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
  except UnicodeDecodeError as e:
    raise DatasetError(f"{path}: not UTF-8 text (byte {e.start})") from None
  if not isinstance(data, list):
    raise DatasetError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
  for i, row in enumerate(data):
    yield Record(f"{path}: record {i}", row)


def iter_jsonl(path: str) -> Iterator[Record]:
  """Records of a JSON-lines file, located by line number; blank lines are allowed."""
  _check_exists(path)
  with open(path, "rb") as f:
    for line_no, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
      except UnicodeDecodeError:
        raise DatasetError(f"{path}:{line_no}: not UTF-8 text") from None
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise DatasetError(f"{path}:{line_no}: invalid JSON ({e.msg})") from None
      yield Record(f"{path}:{line_no}", row)


def iter_csv(path: str, columns: tuple[str, ...]) -> Iterator[Record]:
  """Rows of a CSV file with a header naming at least `columns`, located by line number."""
  _check_exists(path)
  try:
    with open(path, encoding="utf-8-sig", newline="") as f:
      reader = csv.DictReader(f)
      header = reader.fieldnames or []
      for column in columns:
        if column not in header:
          raise DatasetError(f"{path}:1: missing column '{column}' (header: {header})")
      for row in reader:
        yield Record(f"{path}:{reader.line_num}", row)
  except UnicodeDecodeError as e:
    raise DatasetError(f"{path}: not UTF-8 text (byte {e.start})") from None


def _answers(rec: Record, labelled: bool, field: str = "answer") -> list[str]:
  answer = rec.text(field, REQUIRED if labelled else None)
  return [answer] if answer else []


def _supporting_facts(rec: Record, labelled: bool) -> list[tuple[str, int]]:
  """HotpotQA's and 2Wiki's `supporting_facts`: [[title, sentence index], ...]."""
  facts = rec.items("supporting_facts", list, REQUIRED if labelled else [])
  for i, fact in enumerate(facts):
    rec.check(
        len(fact) == 2 and isinstance(fact[0], str) and isinstance(fact[1], int) and not isinstance(fact[1], bool),
        f"supporting_facts[{i}]",
        "a [title, sentence index] pair",
    )
  return [(title, index) for title, index in facts]


def hotpot_context(rec: Record, default=REQUIRED) -> list[tuple[str, list[str]]]:
  """The `context` field of HotpotQA and 2Wiki: [[title, [sentence, ...]], ...]."""
  context = rec.items("context", list, default)
  for i, para in enumerate(context):
    rec.check(
        len(para) == 2
        and isinstance(para[0], str)
        and isinstance(para[1], list)
        and all(isinstance(s, str) for s in para[1]),
        f"context[{i}]",
        "a [title, [sentences]] pair",
    )
  return [(title, sentences) for title, sentences in context]


def _hotpot_fields(rec: Record, labelled: bool) -> tuple[dict, list[tuple[str, int]]]:
  """What HotpotQA and 2Wiki share: the example without a decomposition, and the supporting facts."""
  qid, question, answers = rec.ident("_id"), rec.text("question"), _answers(rec, labelled)
  facts = _supporting_facts(rec, labelled)
  titles = unique(title for title, _ in facts)
  example = make_example(
      qid,
      question,
      answers,
      supporting_ids=titles,
      supporting_titles=titles,
      hops=len(titles),
      type=rec.get("type", str, REQUIRED if labelled else ""),
  )
  return example, facts


def _hotpotqa(rec: Record, labelled: bool) -> dict:
  """The seed: one step per supporting paragraph, its subject as query and its supporting sentences as fact."""
  example, facts = _hotpot_fields(rec, labelled)
  context = hotpot_context(rec, REQUIRED if facts else [])  # a test file may omit it: no facts to look up
  example["decomposition"] = hotpot_steps(example["question"], facts, context)
  return example


_PREPOSITIONS = frozenset(("at", "by", "for", "from", "in", "of", "on", "to", "with"))


def relation_query(subject: str, relation: str) -> str:
  """A (subject, relation) pair read as a search query: "director of X", but "X educated at"."""
  subject, relation = subject.strip(), relation.strip()
  words = relation.split()
  return f"{subject} {relation}" if words and words[-1].lower() in _PREPOSITIONS else f"{relation} of {subject}"


def _2wiki(rec: Record, labelled: bool) -> dict:
  """Like HotpotQA, but the seed is `evidences` ([subject, relation, object] triples), from the subjects' paragraphs."""
  example, _ = _hotpot_fields(rec, labelled)
  triples = rec.items("evidences", list, REQUIRED if labelled else [])
  steps = []
  for i, triple in enumerate(triples):
    rec.check(
        len(triple) == 3 and all(isinstance(t, str) for t in triple),
        f"evidences[{i}]",
        "a [subject, relation, object] triple of strings",
    )
    subject, relation, obj = triple
    query = relation_query(subject, relation)
    title = subject_title(subject, example["supporting_titles"])
    steps.append({"query": query, "fact": f"{query}: {obj}", "title": title})
  example["decomposition"] = steps
  return example


_HOP_REFERENCE = re.compile(r"#(\d+)")


def _musique_query(text: str, answers: list[str]) -> str:
  """A sub-question with "#k" replaced by hop k's answer; "X >> relation" (MuSiQue's Wikidata form) read out."""
  text = _HOP_REFERENCE.sub(
      lambda m: answers[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(answers) else m.group(0), text
  )
  subject, sep, relation = text.partition(" >> ")
  return relation_query(subject, relation) if sep else text


def _musique(rec: Record, labelled: bool) -> dict:
  qid, question = rec.ident("id"), rec.text("question")
  golden = unique(_answers(rec, labelled) + rec.strings("answer_aliases", []))
  rec.get("answerable", bool, True)
  paragraphs = rec.items("paragraphs", dict)
  for i, para in enumerate(paragraphs):
    rec.check(
        isinstance(para.get("idx"), int)
        and isinstance(para.get("title"), str)
        and isinstance(para.get("paragraph_text"), str),
        f"paragraphs[{i}]",
        "an object with 'idx' (int), 'title' and 'paragraph_text' (strings)",
    )
  title_of = {para["idx"]: para["title"] for para in reversed(paragraphs)}  # the first paragraph with an idx
  steps = rec.items("question_decomposition", dict, REQUIRED if labelled else [])
  decomposition, answers, order = [], [], {}
  for i, step in enumerate(steps):
    rec.check(
        isinstance(step.get("question"), str) and isinstance(step.get("answer"), str),
        f"question_decomposition[{i}]",
        "an object with 'question' and 'answer' strings",
    )
    support = step.get("paragraph_support_idx")
    rec.check(
        support is None or (isinstance(support, int) and not isinstance(support, bool) and support in title_of),
        f"question_decomposition[{i}].paragraph_support_idx",
        "null or the 'idx' of one of the 'paragraphs'",
    )
    decomposition.append(
        {"query": _musique_query(step["question"], answers), "fact": step["answer"], "title": title_of.get(support, "")}
    )
    answers.append(step["answer"])
    order.setdefault(support, i)
  supporting = sorted(
      (p for p in paragraphs if p.get("is_supporting") is True), key=lambda p: order.get(p["idx"], len(order))
  )
  titles = unique(p["title"] for p in supporting)
  kind = qid.split("__")[0] if "__" in qid else ""
  hops = len(steps) or (int(kind[0]) if kind[:1].isdigit() else 0)  # test files: "3hop1__..." says 3
  return make_example(
      qid,
      question,
      golden,
      supporting_ids=titles,
      supporting_titles=titles,
      hops=hops,
      type=kind,
      decomposition=decomposition,
  )


def file_stem(path: str) -> str:
  """A file's name as an id prefix (for formats whose rows have no id): "Sheet 1.csv" → "sheet_1"."""
  return re.sub(r"\W+", "_", os.path.splitext(os.path.basename(path))[0]).strip("_").lower()


def _bamboogle(rec: Record, labelled: bool, index: int, path: str) -> dict:
  """Bamboogle's questions are all 2-hop compositional; rows have no id, so it is made from file and row."""
  return make_example(
      f"{file_stem(path)}_{index}",
      rec.text("Question"),
      _answers(rec, labelled, "Answer"),
      hops=2,
      type="compositional",
  )


def _nq_open(rec: Record, labelled: bool, index: int, path: str) -> dict:
  qid = rec.ident() if "id" in rec.row else f"{file_stem(path)}_{index}"
  answers = rec.strings("answer", REQUIRED if labelled else [])
  if labelled and not answers:
    rec.fail("field 'answer' is empty")
  return make_example(qid, rec.text("question"), answers, hops=1, type="single-hop")


def _flashrag(rec: Record, labelled: bool) -> dict:
  """FlashRAG's QA jsonl; `metadata.type` and `metadata.supporting_facts.title` are used when present."""
  qid, question = rec.ident(), rec.text("question")
  answers = rec.strings("golden_answers", REQUIRED if labelled else [])
  if labelled and not answers:
    rec.fail("field 'golden_answers' is empty")
  meta = rec.get("metadata", dict, {})
  kind = meta.get("type") if isinstance(meta.get("type"), str) else ""
  facts = meta.get("supporting_facts")
  titles = facts.get("title") if isinstance(facts, dict) else None
  titles = unique(titles) if isinstance(titles, list) and all(isinstance(t, str) for t in titles) else []
  return make_example(
      qid, question, answers, supporting_ids=titles, supporting_titles=titles, hops=len(titles), type=kind
  )


def _reader(records: Callable[[str], Iterator[Record]], parse, indexed: bool = False):
  """A public reader: records of the file → validated examples with unique ids."""

  def read(path: str, labelled: bool = True) -> Iterator[dict]:
    def pairs():
      for i, rec in enumerate(records(path)):
        example = parse(rec, labelled, i, path) if indexed else parse(rec, labelled)
        yield rec.where, example

    return check_unique_ids(pairs())

  read.__doc__ = f"Examples from {parse.__name__.strip('_')} file `path` (`labelled=False` for test files)."
  return read


read_hotpotqa = _reader(iter_json_list, _hotpotqa)
read_2wikimultihopqa = _reader(iter_json_list, _2wiki)
read_musique = _reader(iter_jsonl, _musique)
read_bamboogle = _reader(lambda path: iter_csv(path, ("Question", "Answer")), _bamboogle, indexed=True)
read_nq_open = _reader(iter_jsonl, _nq_open, indexed=True)
read_flashrag = _reader(iter_jsonl, _flashrag)

# by `config.data.format`
FORMATS = {
    "hotpotqa": read_hotpotqa,
    "2wiki": read_2wikimultihopqa,
    "musique": read_musique,
    "nq": read_nq_open,
    "bamboogle": read_bamboogle,
    "flashrag": read_flashrag,
}
READERS = {
    "hotpotqa": read_hotpotqa,
    "two_wiki_multihop_qa": read_2wikimultihopqa,
    "musique": read_musique,
    "bamboogle": read_bamboogle,
    "nq_open": read_nq_open,
    "flashrag_qa": read_flashrag,
}  # by builder name
