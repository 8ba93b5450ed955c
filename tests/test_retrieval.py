"""Indexes on real Wikipedia text, save/load, refusal on a changed corpus or encoder, ScaNN recall."""

import json
import shutil

import numpy as np
import pytest

from exsearch_jax import retrieval
from exsearch_jax.assets import asset_path
from exsearch_jax.retrieval.exact import ExactIndex
from exsearch_jax.retrieval.index import RetrievalIndexError
from exsearch_jax.retrieval.scann_index import ScannIndex
from tests.shared_data import shared_file


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  """A private copy of the 1,000 real passages (tests may edit it)."""
  path = tmp_path_factory.mktemp("corpus") / "wiki.jsonl"
  shutil.copy(shared_file("wiki_sample_1000.jsonl"), path)
  return str(path)


def _inner_sentence_queries(corpus_path, n=150, seed=0):
  """One sentence from inside a passage (not its first), with that passage's id."""
  passages = list(retrieval.read_corpus(corpus_path))
  rng = np.random.default_rng(seed)
  queries = []
  for i in rng.permutation(len(passages)):
    sentences = [s for s in passages[i].text.split(". ")[1:] if 8 <= len(s.split()) <= 40]
    if sentences:
      queries.append((sentences[len(sentences) // 2], passages[i].id))
    if len(queries) == n:
      break
  return queries


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
  exact = retrieval.build(corpus, str(tmp_path_factory.mktemp("exact")), kind="exact", progress=False)
  return {
      "exact": exact,
      "scann": retrieval.build(
          corpus, str(tmp_path_factory.mktemp("scann")), kind="scann", progress=False, embeddings_from=exact.out_dir
      ),
      "bm25": retrieval.build(corpus, str(tmp_path_factory.mktemp("bm25")), kind="bm25", progress=False),
  }


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
@pytest.mark.parametrize("kind,target", [("bm25", 0.95), ("exact", 0.90), ("scann", 0.90)])
def test_sentence_from_inside_a_passage_finds_it(corpus, built, kind, target):
  retriever = built[kind]
  queries = _inner_sentence_queries(corpus)
  results = retriever.search([q for q, _ in queries], k=10)
  found = np.mean([gold in [h.id for h in hits] for (_, gold), hits in zip(queries, results)])
  assert found >= target, f"{kind}: top-10 hit rate {found:.3f}"
  assert all(len(hits) == 10 for hits in results)
  hit = results[0][0]
  assert hit.title and hit.text and isinstance(hit.score, float)


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
@pytest.mark.parametrize("kind", retrieval.KINDS)
def test_save_then_load_gives_identical_results(corpus, built, kind):
  retriever = built[kind]
  queries = [q for q, _ in _inner_sentence_queries(corpus, n=20, seed=1)]
  reloaded = retrieval.load(retriever.out_dir)
  before, after = retriever.search(queries, 5), reloaded.search(queries, 5)
  assert [[h.id for h in r] for r in before] == [[h.id for h in r] for r in after]
  assert np.allclose([[h.score for h in r] for r in before], [[h.score for h in r] for r in after], atol=1e-5)


def test_changed_corpus_is_refused(corpus, tmp_path):
  out = str(tmp_path / "idx")
  retrieval.build(corpus, out, kind="bm25", progress=False)
  changed = tmp_path / "changed.jsonl"
  lines = open(corpus).read().splitlines()
  lines[3] = lines[3].replace("a", "o", 1)
  changed.write_text("\n".join(lines) + "\n")
  with pytest.raises(RetrievalIndexError, match="the corpus changed since the index"):
    retrieval.load(out, corpus_path=str(changed))


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_other_encoder_is_refused(built, tmp_path):
  fake = tmp_path / "other-encoder" / "model"
  shutil.copytree(asset_path("all-minilm-l6-v2"), fake)
  cfg = json.load(open(fake / "config.json"))
  cfg["layer_norm_eps"] = 1e-6
  json.dump(cfg, open(fake / "config.json", "w"))
  with pytest.raises(RetrievalIndexError, match="refusing"):
    retrieval.load(built["exact"].out_dir, encoder=str(fake))


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_scann_recall_at_10_against_exact_on_50k_clustered_vectors():
  rng = np.random.default_rng(0)
  centers = rng.normal(size=(1000, 384)).astype(np.float32)
  vectors = centers[rng.integers(0, 1000, 50_000)] + 0.3 * rng.normal(size=(50_000, 384)).astype(np.float32)
  vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
  queries = vectors[rng.integers(0, 50_000, 300)] + 0.1 * rng.normal(size=(300, 384)).astype(np.float32)
  _, exact = ExactIndex(vectors, chunk_size=8192).search(queries, 10)
  brute = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
  assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, brute)]) >= 0.999
  _, approx = ScannIndex.build(vectors).search(queries, 10)
  recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx)])
  assert recall >= 0.95, recall


def test_unknown_kind_and_missing_index(corpus, tmp_path):
  with pytest.raises(RetrievalIndexError, match="index kind 'faiss'"):
    retrieval.build(corpus, str(tmp_path / "x"), kind="faiss")
  with pytest.raises(RetrievalIndexError, match="meta.json: missing"):
    retrieval.load(str(tmp_path / "nowhere"))


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_scann_index_in_a_relative_folder_loads_back(corpus, built, tmp_path, monkeypatch):
  """ScaNN reads its asset paths back as written: a relative index folder must still load."""
  monkeypatch.chdir(tmp_path)
  retrieval.build(corpus, "relative/idx", kind="scann", progress=False, embeddings_from=built["exact"].out_dir)
  assert retrieval.load("relative/idx").search(["football club"], 3)[0]
