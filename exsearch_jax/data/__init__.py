"""QA data: readers for the benchmarks' official files, TFDS builders over them, and a corpus exporter.

The readers and the exporter are plain Python; `load_split` and `exsearch_jax.data.builders` bring in
tensorflow_datasets (not TensorFlow).
"""
from exsearch_jax.data.corpus_export import export_hotpotqa_corpus
from exsearch_jax.data.examples import FIELDS, DatasetError, make_example
from exsearch_jax.data.load import load_split
from exsearch_jax.data.qa_formats import (READERS, read_2wikimultihopqa, read_bamboogle, read_flashrag, read_hotpotqa,
                                          read_musique, read_nq_open)

__all__ = ["DatasetError", "FIELDS", "READERS", "export_hotpotqa_corpus", "load_split", "make_example",
           "read_2wikimultihopqa", "read_bamboogle", "read_flashrag", "read_hotpotqa", "read_musique", "read_nq_open"]
