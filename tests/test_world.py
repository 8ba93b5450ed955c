"""The synthetic world: determinism, walkable chains, distractors, unique names, disjoint dev facts."""

import filecmp
import json

import pytest

from exsearch_jax.data import world as W
from exsearch_jax.data.world_schema import RELATIONS


@pytest.fixture(scope="module")
def demo():
  return W.make_world(0, "demo")


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
  a, b, c = (
      W.write_world(W.make_world(seed, "tiny"), str(tmp_path / name)) for seed, name in ((3, "a"), (3, "b"), (4, "c"))
  )
  for key in a:
    assert filecmp.cmp(a[key], b[key], shallow=False)
  assert not filecmp.cmp(a["corpus"], c["corpus"], shallow=False)
  first = json.loads(open(a["train"]).readline())
  assert set(first) == set(W.QA_FIELDS) and first["golden_answers"]


def test_sizes_and_mix(demo):
  stats = W.statistics(demo)
  assert 2000 <= stats["passages"] <= 6000
  assert (stats["train"]["questions"], stats["dev"]["questions"], stats["test"]["questions"]) == (2400, 300, 300)
  for split in ("train", "dev"):
    assert set(stats[split]["by_hops"]) == {1, 2, 3, 4}
    assert set(stats[split]["by_type"]) == {"single", "bridge", "compositional", "comparison"}


def test_every_chain_walks_over_its_gold_passages(demo):
  passages = {p["id"]: p for p in demo.passages}
  for split, questions in demo.splits.items():
    for q in questions:
      steps = q["decomposition"]
      assert q["supporting_ids"] == [s["passage_id"] for s in steps] and len(steps) == q["hops"]
      for step in steps:
        assert step["answer"] in passages[step["passage_id"]]["text"], (q["id"], step)
        assert step["answer"] in step["fact"]
      if q["type"] == "comparison":
        a, b = steps
        if q["golden_answers"][0] in ("yes", "no"):
          assert (a["answer"] == b["answer"]) == (q["golden_answers"] == ["yes"])
        else:
          earlier = a if int(a["answer"]) < int(b["answer"]) else b
          assert earlier["query"].split(" ", 2)[2].startswith(q["golden_answers"][0])
      else:
        for prev, nxt in zip(steps, steps[1:]):
          assert prev["answer"] in nxt["query"]  # each hop searches for what the last one found
        assert steps[-1]["answer"] == q["golden_answers"][0]


def test_every_hop_has_a_distractor_passage_about_the_same_entity(demo):
  by_title = {}
  for p in demo.passages:
    by_title.setdefault(p["title"], []).append(p)
  for q in demo.splits["dev"]:
    for step in q["decomposition"]:
      gold = next(p for p in demo.passages if p["id"] == step["passage_id"])
      others = [p for p in by_title[gold["title"]] if p["id"] != gold["id"]]
      assert any(step["answer"] not in p["text"] for p in others), step


def test_names_are_unique_and_near_duplicates_are_declared(demo):
  names = [e["name"] for e in demo.entities.values()]
  assert len(names) == len(set(names))
  assert len(demo.twins) > 50
  for a, b in demo.twins:
    na, nb = demo.entities[a]["name"], demo.entities[b]["name"]
    assert len(na) == len(nb) and sum(x != y for x, y in zip(na, nb)) == 1


def test_dev_and_test_facts_never_appear_in_train_questions(demo):
  def facts(q):
    return {
        s["passage_id"] + "|" + s["fact"] for s in q["decomposition"] if not s["query"].startswith("In which country")
    }

  train = set().union(*(facts(q) for q in demo.splits["train"]))
  for split in ("dev", "test"):
    for q in demo.splits[split]:
      assert not facts(q) & train, q["id"]


def test_one_hop_questions_use_each_relation(demo):
  questions = [q for q in demo.splits["train"] if q["hops"] == 1]
  used = {r for r in RELATIONS if any(q["question"].startswith(RELATIONS[r].question.split("{")[0]) for q in questions)}
  assert len(used) >= 8


def test_tfds_builder_serves_the_same_questions(tmp_path):
  from exsearch_jax.data import load_split
  from exsearch_jax.data.synthetic_world import world_config

  dev = load_split("synthetic_world", "dev", data_dir=str(tmp_path), config=world_config("tiny", 3))
  expected = W.make_world(3, "tiny").splits["dev"]
  assert [q["question"] for q in dev] == [q["question"] for q in expected]
  assert dev[0]["decomposition"] == [{k: s[k] for k in s} for s in expected[0]["decomposition"]]
  assert dev[0]["supporting_ids"] == expected[0]["supporting_ids"] and dev[0]["hops"] == expected[0]["hops"]
