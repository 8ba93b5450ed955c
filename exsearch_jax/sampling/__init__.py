"""Sampling: batched jitted generation (and, later, the trajectory rollout)."""

from exsearch_jax.sampling.engine import generate

__all__ = ["generate"]
