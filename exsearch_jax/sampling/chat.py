"""Token pieces of a chat, so a rollout can append one turn at a time to a KV cache.

The tokenizer's own chat template is the single source of truth: the separators between turns are read
off a probe conversation once. A conversation built turn by turn then tokenizes exactly like the whole
template would (checked in the tests), the model's own tokens are never re-tokenized, and a template
that is not prefix-stable is refused up front.
"""

from __future__ import annotations

from typing import Optional, Sequence

from exsearch_jax.errors import ConfigError

_Q, _A, _U, _S = "\u2460QUESTION\u2460", "\u2461ANSWER\u2461", "\u2462USER\u2462", "\u2463SYSTEM\u2463"


class ChatFormat:
  """`prompt(text, system)` starts a chat; `user_turn(text)` follows an assistant turn the model ended itself.

  A system text (the run's instruction) goes in the template's system turn; a template without a system
  role gets it at the head of the first user turn instead.
  """

  def __init__(self, tokenizer):
    self.tokenizer = tokenizer
    if not getattr(tokenizer, "chat_template", None):
      raise ConfigError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template")
    probe = self._template([("user", _Q), ("assistant", _A), ("user", _U)], generation_prompt=True)
    head = self._template([("user", _Q)], generation_prompt=True)
    if not probe.startswith(head) or _A not in probe:
      raise ConfigError("the tokenizer's chat template is not prefix-stable; cannot append turns")
    self._prompt_parts = head.split(_Q)
    between = probe[len(head) :].split(_A)[1]  # end of assistant turn .. start of next assistant turn
    self._user_parts = between.split(_U)
    eos = tokenizer.eos_token or ""
    if not self._user_parts[0].startswith(eos):
      raise ConfigError(f"the chat template does not end assistant turns with the eos token {eos!r}")
    self.end_of_turn_text = eos
    self._user_parts[0] = self._user_parts[0][len(eos) :]
    self.end_of_turn = tokenizer.convert_tokens_to_ids(eos)
    self._system_parts = self._probe_system()

  def _probe_system(self):
    """(before system, between system and question, after question) or None without a system role."""
    try:
      text = self._template([("system", _S), ("user", _Q)], generation_prompt=True)
    except Exception:  # noqa: BLE001  (jinja templates raise their own errors for a refused role)
      return None
    if text.count(_S) != 1 or text.count(_Q) != 1 or text.index(_S) > text.index(_Q):
      return None
    before, rest = text.split(_S)
    between, after = rest.split(_Q)
    if after != self._prompt_parts[1]:
      return None
    return before, between, after

  def _template(self, turns, generation_prompt: bool) -> str:
    return self.tokenizer.apply_chat_template(
        [{"role": r, "content": c} for r, c in turns], tokenize=False, add_generation_prompt=generation_prompt
    )

  def encode(self, text: str) -> list[int]:
    return self.tokenizer(text, add_special_tokens=False)["input_ids"]

  def decode(self, ids: Sequence[int]) -> str:
    return self.tokenizer.decode([i for i in ids if i != self.end_of_turn], skip_special_tokens=False)

  @property
  def has_system_role(self) -> bool:
    return self._system_parts is not None

  def prompt(self, text: str, system: Optional[str] = None) -> list[int]:
    """Everything up to the model's first assistant token: the system turn (the template's default one
    when `system` is None) and the first user turn."""
    if system is None:
      return self.encode(self._prompt_parts[0] + text + self._prompt_parts[1])
    if self._system_parts is None:
      return self.prompt(f"{system}\n\n{text}")
    before, between, after = self._system_parts
    return self.encode(before + system + between + text + after)

  def user_turn(self, text: str) -> list[int]:
    """Tokens after the model's end-of-turn token: the rest of the separator, the user turn, and the
    header of the next assistant turn."""
    return self.encode(self._user_parts[0] + text + self._user_parts[1])

  def assistant_turn(self, text: str) -> list[int]:
    """How a written (seed) assistant turn is tokenized, ending with the end-of-turn token."""
    return self.encode(text) + [self.end_of_turn]

  def conversation(self, messages: Sequence[dict]) -> tuple[list[int], list[bool]]:
    """Tokens of a whole chat (an optional system turn, then user first) and the mask of assistant-written
    tokens (the loss mask: the system and user turns are never trained on)."""
    system = None
    if messages and messages[0]["role"] == "system":
      system, messages = messages[0]["content"], messages[1:]
    if not messages or messages[0]["role"] != "user":
      raise ValueError("a conversation starts with a user turn (after an optional system turn)")
    ids = self.prompt(messages[0]["content"], system)
    mask = [False] * len(ids)
    for i, message in enumerate(messages[1:], 1):
      if message["role"] == "assistant":
        piece = self.assistant_turn(message["content"])
      elif messages[i - 1]["role"] == "assistant":
        piece = self.user_turn(message["content"])
      else:
        raise ValueError(f"message {i}: two user turns in a row")
      ids += piece
      mask += [message["role"] == "assistant"] * len(piece)
    return ids, mask
