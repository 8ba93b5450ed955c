"""A corpus from benchmark contexts: one passage per lead paragraph (HotpotQA, 2Wiki) or per section
(MuSiQue), stable ids, gold passages found by title; seeds from each benchmark render and parse back."""

import json
import os

import pytest

from exsearch_jax import retrieval
from exsearch_jax import trajectory as tj
from exsearch_jax.data import FORMATS, DatasetError, export_context_corpus
from exsearch_jax.em import warmup
from exsearch_jax.eval.runner import retrieval_metrics
from exsearch_jax.models.tokenizer import load_tokenizer
from exsearch_jax.assets import asset_path
from exsearch_jax.sampling.chat import ChatFormat
from exsearch_jax.trajectory import SearchStep, Trajectory

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "qa")
FILES = {
    "hotpotqa": os.path.join(FIXTURES, "hotpotqa", "hotpot_dev_distractor_v1.json"),
    "2wiki": os.path.join(FIXTURES, "2wikimultihopqa", "dev.json"),
    "musique": os.path.join(FIXTURES, "musique", "musique_ans_v1.0_dev.jsonl"),
}


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_corpus_holds_every_supporting_title_once_with_stable_ids(fmt, tmp_path):
  out, again = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
  count = export_context_corpus([FILES[fmt]], str(out), fmt)
  assert export_context_corpus([FILES[fmt]], str(again), fmt) == count and out.read_bytes() == again.read_bytes()
  passages = list(retrieval.read_corpus(str(out)))
  assert len(passages) == count == len({p.id for p in passages})
  keys = [(p.title, p.text) for p in passages] if fmt == "musique" else [p.title for p in passages]
  assert len(keys) == len(set(keys))  # de-duplicated
  titles = {p.title for p in passages}
  for example in FORMATS[fmt](FILES[fmt]):
    assert set(example["supporting_titles"]) <= titles
  # the same files twice, or a second file repeating the first: nothing new
  assert export_context_corpus([FILES[fmt], FILES[fmt]], str(again), fmt) == count


def test_musique_sections_under_one_title_are_all_kept(tmp_path):
  rows = [
      {
          "id": "2hop__1",
          "question": "q",
          "answer": "a",
          "answer_aliases": [],
          "answerable": True,
          "question_decomposition": [],
          "paragraphs": [
              {"idx": 0, "title": "UK", "paragraph_text": "London is the capital.", "is_supporting": True},
              {"idx": 1, "title": "UK", "paragraph_text": "The pound is its currency.", "is_supporting": False},
              {"idx": 2, "title": "UK", "paragraph_text": "London is the capital.", "is_supporting": False},
              {"idx": 3, "title": "Empty", "paragraph_text": " ", "is_supporting": False},
          ],
      }
  ]
  path = tmp_path / "m.jsonl"
  path.write_text("\n".join(json.dumps(r) for r in rows))
  export_context_corpus([str(path)], str(tmp_path / "c.jsonl"), "musique")
  assert [(p.id, p.text) for p in retrieval.read_corpus(str(tmp_path / "c.jsonl"))] == [
      ("UK", "London is the capital."),
      ("UK [2]", "The pound is its currency."),
  ]


def test_a_format_without_contexts_and_a_bad_file_are_one_clear_error(tmp_path):
  with pytest.raises(DatasetError, match="'nq' files carry no context paragraphs"):
    export_context_corpus([FILES["hotpotqa"]], str(tmp_path / "c.jsonl"), "nq")
  bad = tmp_path / "bad.json"
  bad.write_text('[{"_id": "a", "context": [["T", "not a list"]]}]')
  with pytest.raises(DatasetError, match=r"bad\.json: record 0 \(id 'a'\): field 'context\[0\]'"):
    export_context_corpus([str(bad)], str(tmp_path / "c.jsonl"), "hotpotqa")
  assert not (tmp_path / "c.jsonl").exists()


def test_recall_and_precision_count_supporting_passages_by_title():
  question = {"supporting_titles": ["A", "B"], "supporting_ids": ["A", "B"]}

  def traj(*searches):
    return Trajectory(
        "q",
        0,
        "?",
        [],
        [],
        [],
        0,
        steps=[SearchStep("q", retrieved_ids=[f"id-{t}" for t in s], retrieved_titles=list(s)) for s in searches],
    )

  got = retrieval_metrics(
      [traj(["A", "x", "y", "B", "z"], ["A", "B"]), traj(["x", "y", "z", "A"]), traj()], [question] * 3
  )
  assert got["recall@3"] == pytest.approx((1.0 + 0.0 + 0.0) / 3)  # the second search's top 3 find B too
  assert got["recall@5"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
  assert got["precision@3"] == pytest.approx((2 / 4 + 0 + 0) / 3)  # {A, x, y, B}: distinct passages
  assert got["precision@5"] == pytest.approx((2 / 5 + 1 / 4 + 0) / 3)


@pytest.fixture(scope="module")
def smollm2_chat():
  return ChatFormat(load_tokenizer(asset_path("smollm2-135m-instruct")))


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_benchmark_seeds_render_and_parse_back_to_their_steps(fmt, tmp_path, smollm2_chat):
  chat = smollm2_chat
  export_context_corpus([FILES[fmt]], str(tmp_path / "c.jsonl"), fmt)
  retriever = retrieval.build(str(tmp_path / "c.jsonl"), str(tmp_path / "idx"), kind="bm25", progress=False)
  questions = [q for q in FORMATS[fmt](FILES[fmt]) if q["decomposition"]]
  assert questions
  examples = warmup.seed_examples(questions, retriever, chat, shown=2, retrieve_k=5, instruction="exsearch")
  for q, example in zip(questions, examples):
    runs, current = [], []  # the assistant turns: the runs of trained tokens
    for token, trained in zip(example.tokens, example.loss_mask):
      if trained:
        current.append(token)
      elif current:
        runs, current = runs + [current], []
    turns = [chat.decode(run) for run in runs + [current]]
    assert tj.INSTRUCTIONS["exsearch"] in chat.decode(example.tokens)
    assert all(tj.INSTRUCTIONS["exsearch"] not in t for t in turns)  # never trained on
    steps = [tj.parse_step(turn, first=i == 0) for i, turn in enumerate(turns[:-1])]
    assert [s.query for s in steps[:-1]] == [s["query"] for s in q["decomposition"]]
    assert [s.fact for s in steps[1:]] == [s["fact"] for s in q["decomposition"]]
    assert steps[-1].action == "final" and turns[-1] == q["golden_answers"][0]
    searches = chat.decode(example.tokens).split(f"{tj.SEARCH} [1]")[1:]  # the result turns
    for step, search in zip(q["decomposition"], searches):
      if step.get("title"):  # the passage holding the fact is among the shown results
        assert f"Title: {step['title']}." in search.split("<|im_end|>")[0]
