"""Retrieval: corpora, a dense encoder, ScaNN / exact / BM25 indexes behind one `search`, and a server."""
from exsearch_jax.retrieval.base import Hit, Retriever
from exsearch_jax.retrieval.corpus import CorpusError, Passage, read_corpus
from exsearch_jax.retrieval.index import KINDS, IndexedRetriever, build, load

__all__ = ["CorpusError", "Hit", "IndexedRetriever", "KINDS", "Passage", "Retriever", "build", "load",
           "read_corpus"]
