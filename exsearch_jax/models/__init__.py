"""Decoder LMs: the Flax model, its config, and HF / GGUF checkpoints in and out."""

from exsearch_jax.models.decoder import Decoder, KVCache, init_cache
from exsearch_jax.models.decoder_config import DecoderConfig
from exsearch_jax.models.loading import (build_model, from_pretrained, init_model, load_config, save_pretrained)
from exsearch_jax.models.tokenizer import check_vocabulary, load_tokenizer

__all__ = [
    "Decoder",
    "DecoderConfig",
    "KVCache",
    "build_model",
    "check_vocabulary",
    "from_pretrained",
    "init_cache",
    "init_model",
    "load_config",
    "load_tokenizer",
    "save_pretrained",
]
