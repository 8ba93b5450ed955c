"""Build a retrieval index once: `python launch/build_index.py --corpus C.jsonl --out DIR --index scann`."""

import time

from absl import flags

from exsearch_jax import cli

_CORPUS = flags.DEFINE_string("corpus", None, "Corpus .jsonl (id/title/text or FlashRAG contents) or DPR .tsv.")
_OUT = flags.DEFINE_string("out", None, "Output index directory.")
_INDEX = flags.DEFINE_enum("index", "scann", ["scann", "exact", "bm25"], "Index kind.")
_ENCODER = flags.DEFINE_string("encoder", "asset:all-minilm-l6-v2", "Dense encoder (path or asset:NAME).")
flags.mark_flags_as_required(["corpus", "out"])


def main(argv):
  del argv
  from exsearch_jax import retrieval

  start = time.time()
  retriever = retrieval.build(_CORPUS.value, _OUT.value, kind=_INDEX.value, encoder=_ENCODER.value)
  print(
      f"{retriever.kind} index of {len(retriever.passages)} passages written to {_OUT.value} "
      f"in {time.time() - start:.1f}s"
  )


if __name__ == "__main__":
  cli.run(main)
