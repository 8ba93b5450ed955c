"""QA readers on fixtures in each official format, one clear error per malformed file, and the corpus export."""

import json
import os

import pytest

from exsearch_jax.data import (
    DatasetError,
    export_hotpotqa_corpus,
    read_2wikimultihopqa,
    read_bamboogle,
    read_flashrag,
    read_hotpotqa,
    read_musique,
    read_nq_open,
)
from exsearch_jax.data.oracle_seeds import subject_name, subject_title
from exsearch_jax.retrieval import read_corpus

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "qa")
HOTPOT_DEV = os.path.join(FIXTURES, "hotpotqa", "hotpot_dev_distractor_v1.json")
TWOWIKI_DEV = os.path.join(FIXTURES, "2wikimultihopqa", "dev.json")


def _fixture(*parts):
  return os.path.join(FIXTURES, *parts)


def test_hotpotqa():
  got = list(read_hotpotqa(HOTPOT_DEV))
  assert [e["id"] for e in got] == ["5a8b57f25542995d1e6f1371", "5a8c7595554299585d9e36b6", "5a85ea095542994775f606a8"]
  assert got[0]["golden_answers"] == ["yes"] and got[0]["type"] == "comparison"
  assert got[0]["decomposition"] == [  # a comparison: both named by the question, supporting_facts order kept
      {
          "query": "Scott Derrickson",
          "title": "Scott Derrickson",
          "fact": "Scott Derrickson (born July 16, 1966) is an American director, screenwriter and producer.",
      },
      {
          "query": "Ed Wood",
          "title": "Ed Wood",  # the first paragraph under a title, not "Ed Wood (film)"
          "fact": "Edward Davis Wood Jr. (October 10, 1924 – December 10, 1978) was an American filmmaker, actor, "
          "writer, producer, and director.",
      },
  ]
  assert got[1] == {
      "id": "5a8c7595554299585d9e36b6",
      "question": "What government position was held by the woman who portrayed Corliss Archer in the film Kiss "
      "and Tell?",
      "golden_answers": ["Chief of Protocol"],
      "supporting_ids": ["Kiss and Tell (1945 film)", "Shirley Temple"],
      "supporting_titles": ["Kiss and Tell (1945 film)", "Shirley Temple"],
      "hops": 2,
      "type": "bridge",
      "decomposition": [  # the film the question names, then the actress its sentence names
          {
              "query": "Kiss and Tell",
              "title": "Kiss and Tell (1945 film)",
              "fact": (
                  "Kiss and Tell is a 1945 American comedy film starring then 17-year-old Shirley Temple as "
                  "Corliss Archer."
              ),
          },
          {
              "query": "Shirley Temple",
              "title": "Shirley Temple",  # two sentences, one space between
              "fact": "Shirley Temple Black (April 23, 1928 – February 10, 2014) was an American actress, singer, "
              "dancer, businesswoman, and diplomat who was Hollywood's number one box-office draw as a child "
              "actress from 1935 to 1938. As an adult, she was named United States ambassador to Ghana and to "
              "Czechoslovakia and also served as Chief of Protocol of the United States.",
          },
      ],
  }
  assert got[2]["decomposition"] == [  # neither named by the question: supporting_facts order
      {
          "query": "The Hork-Bajir Chronicles",
          "title": "The Hork-Bajir Chronicles",
          "fact": "The story is narrated by enslaved worlds and alien species.",
      },
      {
          "query": "Animorphs",
          "title": "Animorphs",
          "fact": "Animorphs is a science fantasy series of youth books written by Katherine Applegate and her husband "
          "Michael Grant, writing together under the name K. A. Applegate. It is told in first person, with all "
          "six main characters taking turns narrating the books.",
      },
  ]


def _hotpot_record(question, facts, context):
  return {
      "_id": "x",
      "question": question,
      "answer": "a",
      "type": "bridge",
      "supporting_facts": facts,
      "context": context,
  }


@pytest.mark.parametrize(
    "question,facts,context,queries",
    [
        # the bridge entity listed first: the named paragraph still comes first, the one its fact names second
        (
            "Which city was the director of Foo (2001 film) born in?",
            [["Jane Roe", 0], ["Foo (2001 film)", 0]],
            [
                ["Jane Roe", ["Jane Roe was born in Oslo."]],
                ["Foo (2001 film)", ["Foo is a film directed by Jane Roe."]],
            ],
            ["Foo", "Jane Roe"],
        ),
        # nothing named: the most words shared with the question; then the one the chosen fact names
        (
            "Who sang on the 1999 tour of the rising stars?",
            [["Ann Lee", 0], ["Rising Stars Tour (1999)", 0]],
            [["Rising Stars Tour (1999)", ["The tour starred Ann Lee."]], ["Ann Lee", ["Ann Lee sings."]]],
            ["Rising Stars Tour", "Ann Lee"],
        ),
        # whole words only: "Ed" is not named by "Edward"; a title that is all parenthesis stays as it is
        (
            "Was Edward older than (Untitled)?",
            [["Ed", 0], ["(Untitled)", 0]],
            [["Ed", ["Ed is a name."]], ["(Untitled)", ["A painting."]]],
            ["(Untitled)", "Ed"],
        ),
    ],
)
def test_hotpotqa_reasoning_order(tmp_path, question, facts, context, queries):
  path = tmp_path / "hotpot.json"
  path.write_text(json.dumps([_hotpot_record(question, facts, context)]), encoding="utf-8")
  assert [s["query"] for s in next(read_hotpotqa(str(path)))["decomposition"]] == queries


def test_hotpotqa_seed_facts(tmp_path):
  path = tmp_path / "hotpot.json"
  record = _hotpot_record("Who is T?", [["T", 2], ["T", 0], ["T", 2]], [["T", ["One.", " Two.", " Three. "]]])
  path.write_text(json.dumps([record, {**_hotpot_record("q?", [], []), "_id": "y", "context": None}]), encoding="utf-8")
  seeded, no_facts = read_hotpotqa(str(path))
  assert seeded["decomposition"] == [{"query": "T", "fact": "One. Three.", "title": "T"}]  # sentence order, once
  assert no_facts["decomposition"] == [] and no_facts["hops"] == 0  # no supporting facts: no context needed


def test_subject_names_and_titles():
  assert subject_name("Kiss and Tell (1945 film)") == "Kiss and Tell" and subject_name("(Untitled)") == "(Untitled)"
  assert subject_name("Coldplay (band) (disambiguation)") == "Coldplay (band)"  # the trailing one only
  titles = ["Life Hits", "It's in the Air", "Polish-Russian War (film)", "Charles Reisner (director)"]
  assert subject_title("it's in the air", titles) == "It's in the Air"
  assert subject_title("Polish-Russian War", titles) == "Polish-Russian War (film)"
  assert subject_title("Reisner", titles) == "Charles Reisner (director)"  # else a title containing it
  assert subject_title("Alejandro Gil", titles) == "" and subject_title(" ", titles) == ""


def test_hotpotqa_fullwiki_test_has_no_answers():
  got = list(read_hotpotqa(_fixture("hotpotqa", "hotpot_test_fullwiki_v1.json"), labelled=False))
  assert len(got) == 2 and all(e["golden_answers"] == [] and e["supporting_ids"] == [] for e in got)
  with pytest.raises(DatasetError, match=r"record 0 \(id '5a8c9a16554299653c1aa031'\): missing field 'answer'"):
    list(read_hotpotqa(_fixture("hotpotqa", "hotpot_test_fullwiki_v1.json")))


def test_2wikimultihopqa():
  got = {e["type"]: e for e in read_2wikimultihopqa(TWOWIKI_DEV)}
  comp = got["compositional"]
  assert comp["golden_answers"] == ["Małgorzata Braunek"] and comp["hops"] == 2
  assert comp["supporting_titles"] == ["Polish-Russian War (film)", "Xawery Żuławski"]
  assert comp["decomposition"] == [
      {
          "query": "director of Polish-Russian War",
          "fact": "director of Polish-Russian War: Xawery Żuławski",
          "title": "Polish-Russian War (film)",
      },
      {
          "query": "mother of Xawery Żuławski",
          "fact": "mother of Xawery Żuławski: Małgorzata Braunek",
          "title": "Xawery Żuławski",
      },
  ]
  bridge = got["bridge_comparison"]
  assert bridge["hops"] == 4 and [s["title"] for s in bridge["decomposition"]] == [
      "Life Hits",
      "It's in the Air",
      "Alejandro Gil",
      "Charles Reisner",
  ]


def test_musique():
  got = list(read_musique(_fixture("musique", "musique_ans_v1.0_dev.jsonl")))
  two, three, nestle = got
  assert two["golden_answers"] == ["Miquette Giraudy"] and two["type"] == "2hop" and two["hops"] == 2
  assert two["decomposition"] == [
      {"query": "performer of Green", "fact": "Steve Hillage", "title": "Green (Steve Hillage album)"},
      {"query": "Who is the spouse of Steve Hillage?", "fact": "Miquette Giraudy", "title": "Miquette Giraudy"},
  ]
  assert two["supporting_titles"] == ["Green (Steve Hillage album)", "Miquette Giraudy"]
  assert three["golden_answers"] == ["United Kingdom", "UK", "U.K."]  # aliases, de-duplicated
  assert three["hops"] == 3 and three["type"] == "3hop1"
  assert [s["query"] for s in three["decomposition"]] == [
      "performer of Green",
      "place of birth of Steve Hillage",
      "country of Chingford",
  ]
  assert three["supporting_titles"] == ["Green (Steve Hillage album)", "Steve Hillage", "United Kingdom"]  # hop order
  assert [s["title"] for s in three["decomposition"]] == three["supporting_titles"]  # by paragraph_support_idx
  assert nestle["decomposition"][0]["query"] == "Nestlé founded by"  # a relation ending in a preposition
  test = list(read_musique(_fixture("musique", "musique_ans_v1.0_test.jsonl"), labelled=False))
  assert test[0]["golden_answers"] == [] and test[0]["hops"] == 3 and test[0]["type"] == "3hop2"


def test_bamboogle():
  got = list(read_bamboogle(_fixture("bamboogle", "Bamboogle Prerelease - Sheet1.csv")))
  assert len(got) == 4 and got[0]["id"] == "bamboogle_prerelease_sheet1_0"
  assert got[0]["golden_answers"] == ["james madison"] and got[0]["hops"] == 2
  assert got[2]["question"] == "When was the longest bridge in the world opened, and in which year?"  # quoted comma


def test_nq_open_and_flashrag():
  nq = list(read_nq_open(_fixture("nq_open", "NQ-open.dev.jsonl")))
  assert [e["id"] for e in nq] == [f"nq_open_dev_{i}" for i in range(4)]
  assert nq[1]["golden_answers"] == ["14 December 1972 UTC", "December 1972"]
  assert nq[2]["golden_answers"] == ["São Paulo"]
  flash = list(read_flashrag(_fixture("flashrag", "hotpotqa", "dev.jsonl")))
  assert flash[1]["type"] == "bridge"
  assert flash[1]["supporting_titles"] == ["Kiss and Tell (1945 film)", "Shirley Temple"]
  assert flash[2]["type"] == "" and flash[2]["hops"] == 0


HOTPOT_OK = {
    "_id": "a",
    "question": "q?",
    "answer": "x",
    "type": "bridge",
    "supporting_facts": [["T", 0]],
    "context": [["T", ["Some text."]]],
}
MUSIQUE_OK = {
    "id": "2hop__1_2",
    "question": "q?",
    "answer": "x",
    "answer_aliases": [],
    "answerable": True,
    "paragraphs": [{"idx": 0, "title": "T", "paragraph_text": "p", "is_supporting": True}],
    "question_decomposition": [
        {"id": 1, "question": "T >> r", "answer": "y", "paragraph_support_idx": 0},
        {"id": 2, "question": "who #1?", "answer": "x", "paragraph_support_idx": 0},
    ],
}


def _json(rows):
  return json.dumps(rows, indent=1)


def _jsonl(rows):
  return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"


def _with(base, **changes):
  row = {k: v for k, v in base.items() if k not in changes or changes[k] is not None}
  row.update({k: v for k, v in changes.items() if v is not None})
  return row


@pytest.mark.parametrize(
    "reader,name,text,message",
    [
        (read_hotpotqa, "bad.json", '[\n {"_id": "a",\n  "question" "q"}\n]', r"bad\.json:3: invalid JSON"),
        (read_hotpotqa, "bad.json", '{"data": []}', r"bad\.json: expected a JSON list of records, got dict"),
        (
            read_hotpotqa,
            "bad.json",
            _json([["not", "a", "dict"]]),
            r"bad\.json: record 0: expected a JSON object, got list",
        ),
        (
            read_hotpotqa,
            "bad.json",
            _json([HOTPOT_OK, _with(HOTPOT_OK, _id="b", answer=None)]),
            r"bad\.json: record 1 \(id 'b'\): missing field 'answer'",
        ),
        (
            read_hotpotqa,
            "bad.json",
            _json([_with(HOTPOT_OK, question=7)]),
            r"record 0 \(id 'a'\): field 'question' must be a string, got int",
        ),
        (
            read_hotpotqa,
            "bad.json",
            _json([_with(HOTPOT_OK, question="  ")]),
            r"record 0 \(id 'a'\): field 'question' is empty",
        ),
        (read_hotpotqa, "bad.json", _json([_with(HOTPOT_OK, _id=True)]), r"field '_id' must be a string or an integer"),
        (
            read_hotpotqa,
            "bad.json",
            _json([_with(HOTPOT_OK, supporting_facts=[["T", "0"]])]),
            r"field 'supporting_facts\[0\]' must be a \[title, sentence index\] pair",
        ),
        (
            read_hotpotqa,
            "bad.json",
            _json([_with(HOTPOT_OK, context=None)]),
            r"record 0 \(id 'a'\): missing field 'context'",
        ),
        (
            read_hotpotqa,
            "bad.json",
            _json([HOTPOT_OK, HOTPOT_OK]),
            r"bad\.json: record 1 \(id 'a'\): duplicate id 'a' \(first at .*bad\.json: record 0",
        ),
        (
            read_2wikimultihopqa,
            "bad.json",
            _json([_with(HOTPOT_OK, evidences=[["s", "r"]])]),
            r"record 0 \(id 'a'\): field 'evidences\[0\]' must be a \[subject, relation, object\] triple",
        ),
        (read_2wikimultihopqa, "bad.json", _json([HOTPOT_OK]), r"record 0 \(id 'a'\): missing field 'evidences'"),
        (read_musique, "bad.jsonl", _jsonl([MUSIQUE_OK, '{"id": "x", ']), r"bad\.jsonl:2: invalid JSON"),
        (
            read_musique,
            "bad.jsonl",
            _jsonl([_with(MUSIQUE_OK, question_decomposition=None)]),
            r"bad\.jsonl:1 \(id '2hop__1_2'\): missing field 'question_decomposition'",
        ),
        (
            read_musique,
            "bad.jsonl",
            _jsonl([MUSIQUE_OK, "", _with(MUSIQUE_OK, id="2hop__3", answerable="yes")]),
            r"bad\.jsonl:3 \(id '2hop__3'\): field 'answerable' must be a boolean, got str",
        ),
        (
            read_musique,
            "bad.jsonl",
            _jsonl([_with(MUSIQUE_OK, paragraphs=[{"idx": "0", "title": "T"}])]),
            r"field 'paragraphs\[0\]' must be an object with 'idx'",
        ),
        (
            read_musique,
            "bad.jsonl",
            _jsonl(
                [
                    _with(
                        MUSIQUE_OK,
                        question_decomposition=[{"question": "T >> r", "answer": "y", "paragraph_support_idx": 5}],
                    )
                ]
            ),
            r"field 'question_decomposition\[0\]\.paragraph_support_idx' must be null or the 'idx' of one of the "
            r"'paragraphs'",
        ),
        (
            read_musique,
            "bad.jsonl",
            _jsonl([_with(MUSIQUE_OK, answer_aliases=["ok", 3])]),
            r"field 'answer_aliases\[1\]' must be a string, got int",
        ),
        (read_bamboogle, "bad.csv", "Question,Answers\nq?,a\n", r"bad\.csv:1: missing column 'Answer'"),
        (read_bamboogle, "bad.csv", "Question,Answer\nq?,a\n,b\n", r"bad\.csv:3: field 'Question' is empty"),
        (read_bamboogle, "bad.csv", "Question,Answer\nq?,a\nonly a question\n", r"bad\.csv:3: missing field 'Answer'"),
        (
            read_nq_open,
            "bad.jsonl",
            _jsonl([{"question": "q", "answer": "x"}]),
            r"bad\.jsonl:1: field 'answer' must be a list, got str",
        ),
        (
            read_nq_open,
            "bad.jsonl",
            _jsonl([{"question": "q", "answer": ["x", 1]}]),
            r"bad\.jsonl:1: field 'answer\[1\]' must be a string, got int",
        ),
        (
            read_nq_open,
            "bad.jsonl",
            _jsonl([{"question": "q", "answer": []}]),
            r"bad\.jsonl:1: field 'answer' is empty",
        ),
        (
            read_flashrag,
            "bad.jsonl",
            _jsonl([{"id": "a", "question": "q", "golden_answers": ["x"]}, {"question": "q"}]),
            r"bad\.jsonl:2: missing field 'id'",
        ),
        (
            read_flashrag,
            "bad.jsonl",
            _jsonl([{"id": "a", "question": "q", "golden_answers": []}]),
            r"bad\.jsonl:1 \(id 'a'\): field 'golden_answers' is empty",
        ),
        (read_flashrag, "bad.jsonl", _jsonl(["[1, 2]"]), r"bad\.jsonl:1: expected a JSON object, got list"),
    ],
)
def test_malformed_files(tmp_path, reader, name, text, message):
  path = tmp_path / name
  path.write_text(text, encoding="utf-8")
  with pytest.raises(DatasetError, match=message):
    list(reader(str(path)))


def test_unreadable_files(tmp_path):
  with pytest.raises(DatasetError, match=r"absent\.json: no such file"):
    list(read_hotpotqa(str(tmp_path / "absent.json")))
  latin = tmp_path / "latin.jsonl"
  latin.write_bytes(b'{"id": "a", "question": "q", "golden_answers": ["x"]}\n{"id": "b", "question": "Z\xfcrich"}\n')
  with pytest.raises(DatasetError, match=r"latin\.jsonl:2: not UTF-8 text"):
    list(read_flashrag(str(latin)))


def test_export_hotpotqa_corpus(tmp_path):
  out = tmp_path / "corpus" / "hotpot.jsonl"
  assert export_hotpotqa_corpus(HOTPOT_DEV, str(out)) == 8  # 10 paragraphs: one repeated title, one empty
  passages = {p.id: p for p in read_corpus(str(out))}
  assert list(passages)[:3] == ["Ed Wood (film)", "Scott Derrickson", "Ed Wood"]
  assert passages["Ed Wood"].text.startswith("Edward Davis Wood Jr.")  # the first paragraph under a title wins
  assert passages["Shirley Temple"].text.endswith("also served as Chief of Protocol of the United States.")
  assert "1938. As an adult" in passages["Shirley Temple"].text  # sentences joined as HotpotQA spaces them
  assert "Empty Paragraph" not in passages
  for example in read_hotpotqa(HOTPOT_DEV):
    assert set(example["supporting_ids"]) <= set(passages)  # supporting ids are corpus ids
  assert export_hotpotqa_corpus(TWOWIKI_DEV, str(tmp_path / "2wiki.jsonl")) == 8  # same context form


def test_export_rejects_bad_context(tmp_path):
  bad = tmp_path / "bad.json"
  bad.write_text(_json([HOTPOT_OK, _with(HOTPOT_OK, _id="b", context=[["T", "not a list"]])]), encoding="utf-8")
  out = tmp_path / "out.jsonl"
  with pytest.raises(DatasetError, match=r"bad\.json: record 1 \(id 'b'\): field 'context\[0\]' must be a \[title"):
    export_hotpotqa_corpus(str(bad), str(out))
  assert not out.exists()


def test_hotpotqa_fact_outside_context_gives_no_sentence(tmp_path):
  """A few official training records point a supporting fact past their paragraph: it adds no sentence."""
  path = tmp_path / "train.json"
  path.write_text(json.dumps([_with(HOTPOT_OK, supporting_facts=[["T", 0], ["T", 3], ["U", 0]])]))
  (example,) = read_hotpotqa(str(path))
  assert example["decomposition"] == [{"query": "T", "fact": "Some text.", "title": "T"}]
  assert example["supporting_titles"] == ["T", "U"]
