"""Retrieval: corpora, a dense encoder, ScaNN / exact / BM25 indexes behind one `search`, a server, and
a client for remote retrieval servers (ours, Search-R1's, ColBERT's)."""

from exsearch_jax.retrieval.base import Hit, Retriever
from exsearch_jax.retrieval.corpus import CorpusError, Passage, read_corpus
from exsearch_jax.retrieval.index import KINDS, IndexedRetriever, build, load
from exsearch_jax.retrieval.remote import PROTOCOLS, RemoteRetriever, RemoteRetrieverError, connect

__all__ = [
    "CorpusError",
    "Hit",
    "IndexedRetriever",
    "KINDS",
    "PROTOCOLS",
    "Passage",
    "RemoteRetriever",
    "RemoteRetrieverError",
    "Retriever",
    "build",
    "connect",
    "load",
    "read_corpus",
]
