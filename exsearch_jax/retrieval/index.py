"""Build an index once, save it, load it later: `build(corpus, out_dir, kind)` and `load(out_dir)`.

The saved directory holds `meta.json` (kind, corpus path + sha256 fingerprint, encoder identity,
options), `embeddings.npy` for dense kinds, and the index's own files. Loading refuses a corpus whose
bytes changed or an encoder other than the one that built the embeddings.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Optional, Sequence

import numpy as np

from exsearch_jax.errors import ExsearchError
from exsearch_jax.retrieval.base import Hit
from exsearch_jax.retrieval.corpus import Passage, fingerprint, read_corpus

KINDS = ("scann", "exact", "bm25")
DEFAULT_ENCODER = "asset:all-minilm-l6-v2"


class RetrievalIndexError(ExsearchError):
  """A saved index cannot serve this corpus or encoder."""


def encoder_identity(path: str) -> dict:
  """Name plus a hash of the encoder's config and weights header: what the embeddings depend on."""
  digest = hashlib.sha256()
  for name in ("config.json", "model.safetensors"):
    with open(os.path.join(path, name), "rb") as f:
      digest.update(f.read(1 << 16))
  with open(os.path.join(path, "config.json")) as f:
    config = json.load(f)
  return {
      "name": os.path.basename(os.path.dirname(path.rstrip("/"))) or path,
      "sha256": digest.hexdigest(),
      "hidden_size": config.get("hidden_size"),
  }


def _text_encoder(encoder_path: str, mesh=None):
  from exsearch_jax.models.encoder import TextEncoder, load_encoder

  model, tokenizer = load_encoder(encoder_path, mesh=mesh)
  return TextEncoder(model, tokenizer, mesh=mesh)


def _encode_with_progress(encoder, texts: Sequence[str], chunk: int = 2048, progress: bool = True) -> np.ndarray:
  from tqdm import tqdm

  out = []
  with tqdm(total=len(texts), unit="passage", desc="encoding", disable=not progress) as bar:
    for start in range(0, len(texts), chunk):
      out.append(encoder.encode(list(texts[start : start + chunk])))
      bar.update(min(chunk, len(texts) - start))
  return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def build(
    corpus_path: str,
    out_dir: str,
    kind: str = "scann",
    encoder: str = DEFAULT_ENCODER,
    progress: bool = True,
    mesh=None,
    embeddings_from: Optional[str] = None,
    **options,
) -> "IndexedRetriever":
  """Reads and validates the corpus, encodes it (dense kinds), builds and saves the index.

  embeddings_from: a dense index directory built from the same corpus and encoder; its embeddings are
  reused instead of encoding again (e.g. a ScaNN index beside an exact one).
  """
  from exsearch_jax.assets import resolve_checkpoint

  if kind not in KINDS:
    raise RetrievalIndexError(f"index kind {kind!r}; choose one of {KINDS}")
  passages = list(read_corpus(corpus_path))
  if not passages:
    raise RetrievalIndexError(f"{corpus_path}: the corpus is empty")
  meta = {
      "kind": kind,
      "corpus": os.path.abspath(corpus_path),
      "fingerprint": fingerprint(corpus_path),
      "num_passages": len(passages),
      "options": options,
      "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
  }
  texts = [p.contents for p in passages]
  text_encoder = None
  from exsearch_jax import atomic

  with atomic.replaced_directory(out_dir) as tmp:  # a kill leaves the old index or the new one, never a mix
    if kind == "bm25":
      from exsearch_jax.retrieval.bm25 import BM25Index

      impl = BM25Index.build(texts, **options)
      impl.save(os.path.join(tmp, "bm25"))
    else:
      encoder_path = resolve_checkpoint(encoder)
      meta["encoder"] = {"path": encoder, **encoder_identity(encoder_path)}
      text_encoder = _text_encoder(encoder_path, mesh)
      if embeddings_from:
        embeddings = _reusable_embeddings(embeddings_from, meta)
      else:
        embeddings = _encode_with_progress(text_encoder, texts, progress=progress)
      np.save(os.path.join(tmp, "embeddings.npy"), embeddings)
      impl = _dense_index(kind, embeddings, tmp, options, build_new=True)
    with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
      json.dump(meta, f, indent=2)
  if kind == "scann":  # from its final place: ScaNN reads its artifacts lazily from the paths it was given
    impl = _dense_index(kind, None, out_dir, options, build_new=False)
  return IndexedRetriever(impl, passages, text_encoder, meta, out_dir)


def _reusable_embeddings(index_dir: str, meta: dict) -> np.ndarray:
  with open(os.path.join(index_dir, "meta.json")) as f:
    other = json.load(f)
  if other["fingerprint"] != meta["fingerprint"] or other.get("encoder", {}).get("sha256") != meta["encoder"]["sha256"]:
    raise RetrievalIndexError(f"{index_dir}: its embeddings come from another corpus or encoder; cannot reuse them")
  return np.load(os.path.join(index_dir, "embeddings.npy"), allow_pickle=False)


def _dense_index(kind, embeddings, out_dir, options, build_new):
  if kind == "exact":
    from exsearch_jax.retrieval.exact import ExactIndex

    return ExactIndex(embeddings, **options)
  from exsearch_jax.retrieval.scann_index import ScannIndex

  if build_new:
    impl = ScannIndex.build(embeddings, **options)
    impl.save(os.path.join(out_dir, "scann"))
    return impl
  return ScannIndex.load(os.path.join(out_dir, "scann"))


def load(
    out_dir: str, corpus_path: Optional[str] = None, encoder: Optional[str] = None, mesh=None
) -> "IndexedRetriever":
  """Loads a saved index; `corpus_path`/`encoder` default to those recorded at build time."""
  from exsearch_jax.assets import resolve_checkpoint

  meta_path = os.path.join(out_dir, "meta.json")
  if not os.path.exists(meta_path):
    raise RetrievalIndexError(f"{meta_path}: missing; {out_dir} is not an index built by exsearch_jax.retrieval.build")
  with open(meta_path) as f:
    meta = json.load(f)
  corpus_path = corpus_path or meta["corpus"]
  if not os.path.exists(corpus_path):
    raise RetrievalIndexError(f"{meta_path}: the corpus {corpus_path} it was built from is gone")
  if fingerprint(corpus_path) != meta["fingerprint"]:
    raise RetrievalIndexError(
        f"{corpus_path}: the corpus changed since the index in {out_dir} was built "
        "(sha256 differs); rebuild the index"
    )
  passages = list(read_corpus(corpus_path))
  text_encoder = None
  if meta["kind"] == "bm25":
    from exsearch_jax.retrieval.bm25 import BM25Index

    impl = BM25Index.load(os.path.join(out_dir, "bm25"))
  else:
    encoder = encoder or meta["encoder"]["path"]
    encoder_path = resolve_checkpoint(encoder)
    identity = encoder_identity(encoder_path)
    if identity["sha256"] != meta["encoder"]["sha256"]:
      raise RetrievalIndexError(
          f"{meta_path}: built with encoder {meta['encoder']['name']} "
          f"({meta['encoder']['sha256'][:12]}), refusing {encoder} ({identity['sha256'][:12]})"
      )
    text_encoder = _text_encoder(encoder_path, mesh)
    embeddings = np.load(os.path.join(out_dir, "embeddings.npy"), allow_pickle=False)
    impl = _dense_index(meta["kind"], embeddings, out_dir, meta["options"], build_new=False)
  return IndexedRetriever(impl, passages, text_encoder, meta, out_dir)


class IndexedRetriever:
  """`search(queries, k) -> list[list[Hit]]` over a built index; one batched call for all queries."""

  def __init__(self, impl, passages: list[Passage], text_encoder, meta: dict, out_dir: str):
    self._impl = impl
    self.out_dir = out_dir
    self.passages = passages
    self._encoder = text_encoder
    self.meta = meta

  @property
  def kind(self) -> str:
    return self.meta["kind"]

  def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
    if not queries:
      return []
    if self._encoder is None:
      scores, ids = self._impl.search(list(queries), k)
    else:
      scores, ids = self._impl.search(self._encoder.encode(list(queries)), k)
    results = []
    for row_scores, row_ids in zip(scores, ids):
      hits = []
      for score, i in zip(row_scores, row_ids):
        if 0 <= i < len(self.passages) and np.isfinite(score):
          p = self.passages[int(i)]
          hits.append(Hit(p.id, float(score), p.title, p.text))
      results.append(hits)
    return results
