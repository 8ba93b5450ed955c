"""What a run is built from: benchmark files in each format, default seeds, a corpus from contexts, the
index kind, and one clear ConfigError for each impossible combination."""

import os

import pytest

from exsearch_jax.config import get_config
from exsearch_jax.config_check import typed
from exsearch_jax.em import setup
from exsearch_jax.errors import ConfigError
from exsearch_jax.retrieval import read_corpus

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
HOTPOT = os.path.join(FIXTURES, "qa", "hotpotqa", "hotpot_dev_distractor_v1.json")
NQ = os.path.join(FIXTURES, "qa", "nq_open", "NQ-open.dev.jsonl")


def _files(fmt="hotpotqa", retrieval=None, **data):
  """The run config (checked and typed, as every run sees it) for benchmark files."""
  cfg = get_config("smollm2_135m")
  cfg.data.update({**dict(source="files", format=fmt, train=HOTPOT, dev=HOTPOT), **data})
  cfg.retrieval.update(retrieval or {})
  cfg.em.seed_trajectories = 2
  return typed(cfg)


def test_seeds_default_to_the_first_train_questions_with_a_decomposition(tmp_path):
  data = setup.load_data(_files(dev_limit=1), str(tmp_path))
  assert [q["id"] for q in data.seeds] == ["5a8b57f25542995d1e6f1371", "5a8c7595554299585d9e36b6"]
  assert [q["id"] for q in data.train] == ["5a85ea095542994775f606a8"]  # EM samples the rest
  assert len(data.dev) == 1 and data.corpus_path == str(tmp_path / "corpus.jsonl")
  titles = {p.title for p in read_corpus(data.corpus_path)}
  assert "Shirley Temple" in titles  # every train context is in


def test_dev_limit_bounds_the_corpus_built_from_the_dev_file(tmp_path):
  cfg = _files(train="", dev_limit=1)
  data = setup.load_data(cfg, str(tmp_path), need_train=False)
  titles = {p.title for p in read_corpus(data.corpus_path)}
  assert "Scott Derrickson" in titles and "Shirley Temple" not in titles  # only the first question's contexts


def test_chat_seeds_and_impossible_data_configs(tmp_path):
  seeds = os.path.join(FIXTURES, "seeds", "seeds.jsonl")
  data = setup.load_data(_files(seeds=seeds, seeds_format="messages"), str(tmp_path))
  assert len(data.chat_seeds) == 2 and not data.seeds and len(data.train) == 3
  with pytest.raises(ConfigError, match="config.data.format='squad'"):
    setup.load_data(_files(fmt="squad"), str(tmp_path))
  with pytest.raises(ConfigError, match="config.data.train is empty"):
    setup.load_data(_files(train=""), str(tmp_path))
  with pytest.raises(ConfigError, match="nq files carry no context paragraphs.*set config.data.corpus"):
    setup.load_data(_files(fmt="nq", train=NQ, dev=NQ), str(tmp_path))


def test_index_kind_auto_is_bm25_on_the_world_and_dense_on_real_text():
  world = typed(get_config("smollm2_135m"))
  assert setup.index_kind(world) == "bm25" and setup.index_kind(_files()) == "scann"
  assert setup.index_kind(_files(retrieval=dict(kind="exact"))) == "exact"
  with pytest.raises(ConfigError, match="config.retrieval.kind='faiss'"):
    _files(retrieval=dict(kind="faiss"))
  with pytest.raises(ConfigError, match="config.retrieval.url: must be set"):
    _files(retrieval=dict(kind="remote"))


def test_balanced_seeds_take_each_question_kind_in_turn():
  questions = [{"id": f"b{i}", "type": "bridge"} for i in range(5)] + [
      {"id": "c0", "type": "compositional", "hops": 3},
      {"id": "s0", "type": "single"},
      {"id": "c1", "type": "compositional", "hops": 4},
  ]
  assert [q["id"] for q in setup.pick_seeds(questions, 3, balanced=False)] == ["b0", "b1", "b2"]
  assert [q["id"] for q in setup.pick_seeds(questions, 4, balanced=True)] == ["b0", "c0", "s0", "c1"]
  assert [q["id"] for q in setup.pick_seeds(questions, 6, balanced=True)] == ["b0", "b1", "b2", "c0", "s0", "c1"]
  assert len(setup.pick_seeds(questions, 20, balanced=True)) == len(questions)


def test_balanced_world_seeds_are_not_sampled_by_em(tmp_path):
  cfg = get_config("smollm2_135m")
  cfg.data.update(world_size="demo", dev_limit=10)
  cfg.em.update(seed_trajectories=40, seed_balance=True)
  data = setup.load_data(typed(cfg), str(tmp_path))
  kinds = {}
  for q in data.seeds:
    kinds[q["type"], q["hops"]] = kinds.get((q["type"], q["hops"]), 0) + 1
  assert len(data.seeds) == 40 and min(kinds.values()) >= 8 and len(kinds) == 5
  assert not {q["id"] for q in data.seeds} & {q["id"] for q in data.train}
  assert len(data.train) + 40 == 2400
