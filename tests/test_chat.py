"""Chat pieces: a conversation appended turn by turn tokenizes exactly like the tokenizer's template."""

import pytest

from exsearch_jax.assets import asset_path
from exsearch_jax.models.tokenizer import load_tokenizer
from exsearch_jax.models.word_tokenizer import build_word_tokenizer
from exsearch_jax.sampling.chat import ChatFormat

MESSAGES = [
    {"role": "user", "content": "Question: Who directed Kelvor Harbor?"},
    {"role": "assistant", "content": "<QUERY> Who directed Kelvor Harbor?"},
    {
        "role": "user",
        "content": "<SEARCH> [1] Title: Kelvor Harbor. Content: Kelvor Harbor is a film directed by Ana Vel.",
    },
    {"role": "assistant", "content": "<FACT> Kelvor Harbor was directed by Ana Vel.\n<FINAL>"},
    {"role": "user", "content": "please give the final answer to the input question: Who directed Kelvor Harbor?"},
    {"role": "assistant", "content": "Ana Vel"},
]


def _tokenizers():
  words = build_word_tokenizer(m["content"] for m in MESSAGES)
  return {"word": words, "smollm2": load_tokenizer(asset_path("smollm2-135m-instruct"))}


@pytest.fixture(scope="module", params=["word", "smollm2"])
def tokenizer(request):
  return _tokenizers()[request.param]


def test_turn_by_turn_equals_whole_template(tokenizer):
  chat = ChatFormat(tokenizer)
  ids, mask = chat.conversation(MESSAGES)
  text = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
  whole = tokenizer(text.rstrip("\n"), add_special_tokens=False)["input_ids"]
  assert ids == whole
  assert len(mask) == len(ids)
  written = [t for t, m in zip(ids, mask) if m]
  expected = sum((chat.assistant_turn(m["content"]) for m in MESSAGES if m["role"] == "assistant"), [])
  assert written == expected and written[-1] == chat.end_of_turn


def test_prompt_ends_with_the_assistant_header(tokenizer):
  chat = ChatFormat(tokenizer)
  text = tokenizer.apply_chat_template(MESSAGES[:1], tokenize=False, add_generation_prompt=True)
  assert chat.prompt(MESSAGES[0]["content"]) == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_word_tokenizer_keeps_names_whole_and_saves(tmp_path):
  from transformers import AutoTokenizer

  words = _tokenizers()["word"]
  assert words.tokenize("Kelvor Harbor was directed by Ana Vel.") == [
      "Kelvor",
      "Harbor",
      "was",
      "directed",
      "by",
      "Ana",
      "Vel",
      ".",
  ]
  words.save_pretrained(tmp_path)
  again = AutoTokenizer.from_pretrained(tmp_path)
  assert again("<QUERY> Ana Vel")["input_ids"] == words("<QUERY> Ana Vel")["input_ids"]
  assert ChatFormat(again).conversation(MESSAGES) == ChatFormat(words).conversation(MESSAGES)


def test_a_template_without_chat_support_is_refused():
  from exsearch_jax.errors import ConfigError

  words = _tokenizers()["word"]
  words.chat_template = None
  with pytest.raises(ConfigError, match="no chat template"):
    ChatFormat(words)


def test_a_system_turn_tokenizes_like_the_template_and_is_never_trained_on(tokenizer):
  from exsearch_jax import trajectory as tj

  chat = ChatFormat(tokenizer)
  messages = [{"role": "system", "content": tj.INSTRUCTIONS["exsearch"]}] + MESSAGES
  ids, mask = chat.conversation(messages)
  whole = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False).rstrip("\n"), add_special_tokens=False)[
      "input_ids"
  ]
  assert chat.has_system_role and ids == whole
  prompt = chat.prompt(MESSAGES[0]["content"], tj.INSTRUCTIONS["exsearch"])
  assert ids[: len(prompt)] == prompt and not any(mask[: len(prompt)])  # the instruction is masked from the loss
  assert [t for t, m in zip(ids, mask) if m] == [t for t, m in zip(*chat.conversation(MESSAGES)) if m]


def test_a_template_without_a_system_role_gets_the_instruction_in_the_first_user_turn():
  words = _tokenizers()["word"]
  words.chat_template = (
      "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}"
      "{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
  )
  chat = ChatFormat(words)
  assert not chat.has_system_role
  assert chat.prompt("Question: Who", "Ana Vel") == chat.prompt("Ana Vel\n\nQuestion: Who")
