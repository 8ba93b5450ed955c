"""QA data: readers for the benchmarks' official files, TFDS builders over them, a corpus exporter, and seed chats.

The readers and the exporter are plain Python; `load_split` and `exsearch_jax.data.builders` bring in
tensorflow_datasets (not TensorFlow).
"""

from exsearch_jax.data.chat_seeds import ChatSeed, read_chat_seeds
from exsearch_jax.data.context_corpus import CONTEXT_FORMATS, export_context_corpus, export_hotpotqa_corpus
from exsearch_jax.data.examples import FIELDS, DatasetError, make_example
from exsearch_jax.data.load import load_split
from exsearch_jax.data.qa_formats import (
    FORMATS,
    READERS,
    read_2wikimultihopqa,
    read_bamboogle,
    read_flashrag,
    read_hotpotqa,
    read_musique,
    read_nq_open,
)

__all__ = [
    "CONTEXT_FORMATS",
    "ChatSeed",
    "DatasetError",
    "FIELDS",
    "FORMATS",
    "READERS",
    "export_context_corpus",
    "export_hotpotqa_corpus",
    "load_split",
    "make_example",
    "read_2wikimultihopqa",
    "read_bamboogle",
    "read_chat_seeds",
    "read_flashrag",
    "read_hotpotqa",
    "read_musique",
    "read_nq_open",
]
