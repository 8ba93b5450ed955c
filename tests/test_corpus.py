"""Corpus readers: both formats, FlashRAG `contents`, and one error naming file and line per bad case."""

import json

import pytest

from exsearch_jax.retrieval import CorpusError, read_corpus
from tests.shared_data import shared_file


def _write(tmp_path, name, lines):
  path = tmp_path / name
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return str(path)


def test_real_flashrag_corpus():
  passages = list(read_corpus(shared_file("wiki_sample_1000.jsonl")))
  assert len(passages) == 1000 and len({p.id for p in passages}) == 1000
  assert passages[0].title == "Evan Morris" and passages[0].text.startswith("Evan Morris Evan L. Morris")


def test_jsonl_and_tsv(tmp_path):
  jsonl = _write(
      tmp_path,
      "c.jsonl",
      [
          json.dumps({"id": 1, "title": "Tété", "text": "Un été."}),
          json.dumps({"id": "b", "contents": '"B"\nbody of b'}),
          json.dumps({"id": "c", "contents": "no title line"}),
      ],
  )
  got = [(p.id, p.title, p.text) for p in read_corpus(jsonl)]
  assert got == [("1", "Tété", "Un été."), ("b", "B", "body of b"), ("c", "", "no title line")]
  tsv = _write(tmp_path, "c.tsv", ["id\ttext\ttitle", "p1\tsome text\tTitle One", "p2\tmore\tT2"])
  assert [(p.id, p.title, p.text) for p in read_corpus(tsv)] == [("p1", "Title One", "some text"), ("p2", "T2", "more")]


@pytest.mark.parametrize(
    "name,lines,message",
    [
        ("bad.jsonl", ['{"id": 1, "text": "ok"}', '{"id": 2, "text": '], r"bad\.jsonl:2: invalid JSON"),
        ("bad.jsonl", ['{"id": 1, "text": "ok"}', '{"title": "x", "text": "y"}'], r"bad\.jsonl:2: missing field 'id'"),
        ("bad.jsonl", ['{"id": 1, "title": "no text"}'], r"bad\.jsonl:1: missing field 'text'"),
        (
            "bad.jsonl",
            ['{"id": 1, "text": "a"}', "", '{"id": 1, "text": "b"}'],
            r"bad\.jsonl:3: duplicate id '1' \(first on line 1\)",
        ),
        ("bad.jsonl", ['{"id": 1, "text": "  "}'], r"bad\.jsonl:1: field 'text' is empty"),
        ("bad.jsonl", ["[1, 2]"], r"bad\.jsonl:1: expected a JSON object"),
        ("bad.tsv", ["id\ttitle\ttext", "1\ta\tb"], r"bad\.tsv:1: expected the DPR header"),
        ("bad.tsv", ["id\ttext\ttitle", "1\tonly two"], r"bad\.tsv:2: expected 3 tab-separated fields"),
        ("bad.tsv", ["id\ttext\ttitle", "1\ttext\tt", "1\tagain\tt"], r"bad\.tsv:3: duplicate id '1'"),
    ],
)
def test_malformed_corpora(tmp_path, name, lines, message):
  path = _write(tmp_path, name, lines)
  with pytest.raises(CorpusError, match=message):
    list(read_corpus(path))


def test_missing_file(tmp_path):
  with pytest.raises(CorpusError, match="no such corpus file"):
    list(read_corpus(str(tmp_path / "absent.jsonl")))
