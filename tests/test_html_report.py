"""Rollout inspection: JSONL round trips, and the HTML page shows every part of a search, escaped."""

import html
import json

import pytest

from exsearch_jax.eval import html_report as ins
from exsearch_jax.sampling.rollout import RolloutConfig, rollout
from exsearch_jax.trajectory import SearchStep, Trajectory
from tests import test_rollout
from tests.test_rollout import ScriptedSession, _oracle_policy

world = test_rollout.world  # the tiny world, BM25 retriever and word-level chat, as a fixture


@pytest.fixture(scope="module")
def scripted(world):
  w, retriever, chat = world
  questions = w.splits["dev"][:3]
  trajs = rollout(
      _oracle_policy(chat, {q["question"]: q for q in questions}),
      chat,
      retriever,
      questions,
      RolloutConfig(
          samples=2, max_steps=6, shown=2, capacity=1024, instruction="none", constrained=False, answer_at_budget=False
      ),
      session_factory=ScriptedSession,
  )
  for i, t in enumerate(trajs):
    t.weight = None if i == 0 else 0.25 * i
  return trajs


def test_jsonl_round_trips(world, scripted, tmp_path):
  _, _, chat = world
  path = str(tmp_path / "t.jsonl")
  ins.write_jsonl(scripted, path, chat=chat)
  lines = open(path).read().splitlines()
  assert len(lines) == len(scripted)
  assert "Question" in json.loads(lines[0])["text"]
  back = ins.read_jsonl(path)
  assert [t.to_json() for t in back] == [t.to_json() for t in scripted]
  ins.write_jsonl(scripted, path)
  assert "text" not in json.loads(open(path).readline())
  ins.write_jsonl(scripted, path, drop=("tokens", "logprobs"))
  record = json.loads(open(path).readline())
  assert "tokens" not in record and "logprobs" not in record and record["steps"] == scripted[0].to_json()["steps"]


def test_html_shows_questions_queries_facts_passages_and_weights(world, scripted, tmp_path):
  w, _, chat = world
  path = str(tmp_path / "t.html")
  ins.write_html(scripted, path, chat, title="dev <3>")
  page = open(path).read()
  assert "dev &lt;3&gt;" in page and "<script" not in page and "http" not in page  # self-contained
  assert "3 questions" in page and "6 trajectories" in page and "answered: 6" in page
  for t in scripted:
    assert html.escape(t.question) in page
    for step in t.steps:
      assert html.escape(step.query) in page and html.escape(step.fact) in page
    assert html.escape(t.answer) in page
  assert "\u2014" in page and "0.25" in page and "1.25" in page  # unknown weight, known weights
  assert page.count("\u2713 correct") == 6  # the oracle answers with the gold answer
  assert "Title" in page  # passages decoded from the user turns
  by_id = {p["id"]: p for p in w.passages}
  with_corpus = ins.render_html(scripted, chat, passages=by_id)
  shown = scripted[0].steps[0].shown_ids[0]
  assert html.escape(by_id[shown]["text"]) in with_corpus


def test_model_text_is_escaped(world):
  _, _, chat = world
  evil = "<script>alert(1)</script> <QUERY> x"
  traj = Trajectory(
      question_id="q<1>",
      sample=0,
      question="Is <b>this</b> bold?",
      tokens=chat.encode("a b"),
      loss_mask=[True, True],
      logprobs=[0.0, 0.0],
      prompt_length=0,
      steps=[SearchStep(evil, retrieved_ids=["p1"], shown_ids=["p1"], fact=evil)],
      answer=evil,
      stop_reason="answered",
      golden_answers=["x"],
      weight=1.0,
  )
  page = ins.render_html([traj], chat, passages={"p1": {"title": "<i>T</i>", "text": "<QUERY> c"}})
  assert "<script>" not in page and "<QUERY>" not in page and "<b>this" not in page and "<i>T" not in page
  assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;QUERY&gt;" in page
  assert "\u2717 wrong" in page


def test_correctness_uses_normalised_exact_match():
  assert ins.is_correct("The Paris.", ["paris"]) is True
  assert ins.is_correct("Lyon", ["paris"]) is False
  assert ins.is_correct(None, ["paris"]) is False
  assert ins.is_correct("Paris", None) is None


def test_rerank_order_is_shown_with_the_candidate_titles(world):
  _, _, chat = world
  traj = Trajectory(
      question_id="q",
      sample=0,
      question="Who?",
      tokens=chat.encode("a b"),
      loss_mask=[True, True],
      logprobs=[0.0, 0.0],
      prompt_length=0,
      steps=[
          SearchStep(
              "who",
              retrieved_ids=["p1", "p2", "p3"],
              retrieved_titles=["A", "B", "C"],
              rerank=[2, 0],
              shown_ids=["p3", "p1"],
              fact="f",
          )
      ],
      answer="x",
      stop_reason="answered",
      golden_answers=["x"],
  )
  page = ins.render_html([traj], chat, passages={"p1": {"title": "A", "text": "a"}, "p3": {"title": "C", "text": "c"}})
  assert "re-rank 1" in page and "[3] C &gt; [1] A" in page
  assert page.index("passage p3") < page.index("passage p1")
