"""Evaluation: the benchmarks' answer metrics (EM, F1, Acc) and answer extraction from model output."""

from exsearch_jax.eval.metrics import (
    MetricError,
    accuracy,
    corpus_metrics,
    exact_match,
    extract_answer,
    f1,
    normalize_answer,
)

__all__ = ["MetricError", "accuracy", "corpus_metrics", "exact_match", "extract_answer", "f1", "normalize_answer"]
