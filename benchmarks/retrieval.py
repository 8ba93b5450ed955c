"""Retrieval throughput, one run: numpy exact vs JAX exact vs ScaNN (with recall@10), encoder vs PyTorch.

  python benchmarks/retrieval.py [--n 100000] [--queries 1000] [--passages 256]

Vectors: a 1,000-component Gaussian mixture in 384-d, L2-normalised (isotropic random vectors have no
neighbour structure and make every ANN index look bad). Queries are perturbed corpus vectors. The encoder
part embeds real Wikipedia passages from ../shared/data (or synthetic sentences if absent) with ours and
with sentence-transformers (PyTorch) on the same texts.
"""
import argparse
import os
import time

import numpy as np


def _best_of(fn, repeats=3):
  fn()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def _texts(n):
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                      "wiki_sample_1000.jsonl")
  if os.path.exists(path):
    from exsearch_jax.retrieval import read_corpus
    return [p.contents for p in read_corpus(path)][:n]
  return [f"Passage {i} about the history of the town number {i % 97} and its people." for i in range(n)]


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--n", type=int, default=100_000)
  parser.add_argument("--queries", type=int, default=1000)
  parser.add_argument("--passages", type=int, default=256)
  args = parser.parse_args()

  from exsearch_jax.retrieval.exact import ExactIndex
  from exsearch_jax.retrieval.scann_index import ScannIndex, default_options

  rng = np.random.default_rng(0)
  centers = rng.normal(size=(1000, 384)).astype(np.float32)
  corpus = centers[rng.integers(0, 1000, args.n)] + 0.3 * rng.normal(size=(args.n, 384)).astype(np.float32)
  corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
  queries = corpus[rng.integers(0, args.n, args.queries)] + 0.1 * rng.normal(size=(args.queries, 384)).astype(np.float32)

  def numpy_exact():
    scores = queries @ corpus.T
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)

  truth = numpy_exact()
  exact = ExactIndex(corpus)
  start = time.perf_counter()
  scann = ScannIndex.build(corpus)
  build_s = time.perf_counter() - start
  _, approx = scann.search(queries, 10)
  recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, approx)])
  t_np = _best_of(numpy_exact)
  t_jax = _best_of(lambda: exact.search(queries, 10))
  t_scann = _best_of(lambda: scann.search(queries, 10))
  opts = default_options(args.n)
  print(f"{args.n} x 384 clustered vectors, {args.queries} queries, k=10; ScaNN {opts['num_leaves']} leaves / "
        f"{opts['num_leaves_to_search']} searched, AH + reorder {opts['reorder']}, built in {build_s:.1f}s")
  print(f"{'method':>12} {'QPS':>10} {'vs numpy':>9} {'recall@10':>10}")
  for name, t, r in (("numpy exact", t_np, 1.0), ("jax exact", t_jax, 1.0), ("scann", t_scann, recall)):
    print(f"{name:>12} {args.queries / t:>10.0f} {t_np / t:>8.1f}x {r:>10.3f}")

  from sentence_transformers import SentenceTransformer

  from exsearch_jax.assets import asset_path
  from exsearch_jax.models.encoder import TextEncoder
  texts = _texts(args.passages)
  ours = TextEncoder.from_pretrained(asset_path("all-minilm-l6-v2"))
  theirs = SentenceTransformer(asset_path("all-minilm-l6-v2"), device="cpu")
  t_ours = _best_of(lambda: ours.encode(texts), repeats=2)
  t_torch = _best_of(lambda: theirs.encode(texts, batch_size=64), repeats=2)
  print(f"encoder on {len(texts)} passages: ours {len(texts) / t_ours:.0f} passages/s, "
        f"PyTorch sentence-transformers {len(texts) / t_torch:.0f} passages/s, ratio {t_torch / t_ours:.2f}x")


if __name__ == "__main__":
  main()
