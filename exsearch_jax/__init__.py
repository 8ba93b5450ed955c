"""exsearch-jax: EXSEARCH (arXiv 2505.20128), an LLM that learns to search, trained by Generalized EM."""

__version__ = "0.1.0"
