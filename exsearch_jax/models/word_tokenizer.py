"""A word-level tokenizer for the demo model, built from the synthetic world's text.

A tiny model trained from scratch learns to copy an entity far more easily when a name is one or two
tokens than when it is six BPE pieces. The result is an ordinary `PreTrainedTokenizerFast` with a ChatML
template, so every other part of the system (chat pieces, save/load, the trainer) treats it like an HF
tokenizer and `save_pretrained` writes it beside the model.
"""

from __future__ import annotations

import collections
from typing import Iterable

from exsearch_jax import trajectory

SPECIALS = ("<pad>", "<unk>", "<|im_start|>", "<|im_end|>") + trajectory.TAGS
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_word_tokenizer(texts: Iterable[str], max_vocab: int = 8192, extra_specials: tuple = ()):
  """Vocabulary = special tokens (+ `extra_specials`, e.g. the re-rank tags) + every word and punctuation run in
  `texts`, most frequent first."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers
  from transformers import PreTrainedTokenizerFast

  pre = pre_tokenizers.Whitespace()
  counts = collections.Counter()
  for text in texts:
    counts.update(w for w, _ in pre.pre_tokenize_str(text))
  words = ["user", "assistant"] + [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
  specials = SPECIALS + tuple(extra_specials)
  vocab = {tok: i for i, tok in enumerate(specials)}
  for w in words:
    if len(vocab) >= max_vocab:
      break
    vocab.setdefault(w, len(vocab))
  core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
  core.pre_tokenizer = pre
  core.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces, tidies punctuation
  tokenizer = PreTrainedTokenizerFast(
      tokenizer_object=core,
      pad_token="<pad>",
      unk_token="<unk>",
      eos_token="<|im_end|>",
      bos_token="<|im_start|>",
      additional_special_tokens=list(specials[4:]),
  )
  tokenizer.chat_template = CHATML
  return tokenizer
