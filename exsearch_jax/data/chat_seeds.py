"""Seed trajectories users bring as chat messages: the reference implementation's warm-up format, checked line by line.

A JSONL file, one `{"messages": [...], "golden_answers": [...]?, "id": ...?}` per line (mangopy/SearchLM,
data/README.md): an optional system turn; the question, bare, as "Question: q" or inside SearchLM's
instruction ("... <USER QUERY> q\\nYour Output:"); then assistant steps in the trajectory grammar
(`trajectory.py`) alternating with `<SEARCH>` result turns, up to a `<FINAL>` step; the request for the
final answer; the answer. Every line is validated on reading, so a broken seed stops the run with file,
line and message index instead of silently teaching the model a malformed trajectory.
"""

from __future__ import annotations

import dataclasses

from exsearch_jax import trajectory as tj
from exsearch_jax.data.examples import DatasetError, Record, check_unique_ids
from exsearch_jax.data.qa_formats import file_stem, iter_jsonl

ROLES = ("system", "user", "assistant")
_USER_QUERY, _YOUR_OUTPUT = "<USER QUERY>", "Your Output:"
_QUESTION = tj.question_turn("").strip()  # "Question:"


@dataclasses.dataclass(frozen=True)
class ChatSeed:
  """One seed trajectory. `turns` follow the question turn; the answer request is ours (`tj.answer_request`)."""

  id: str
  question: str
  golden_answers: list[str]
  turns: tuple[dict, ...]
  where: str  # "file:line"

  def messages(self, instruction: str = "none") -> list[dict]:
    """The whole chat as our rollouts write it: the run's instruction and our question turn, then `turns`."""
    return [*tj.opening_messages(self.question, instruction), *self.turns]


def question_of(text: str) -> str:
  """The question in a question turn: bare, "Question: q", or SearchLM's instruction ending in "<USER QUERY> q"."""
  text = text.strip()
  if _USER_QUERY in text:
    text = text.rsplit(_USER_QUERY, 1)[1].strip()
    text = text[: -len(_YOUR_OUTPUT)] if text.endswith(_YOUR_OUTPUT) else text
  elif text.startswith(_QUESTION):
    text = text[len(_QUESTION) :]
  return text.strip()


class _Chat:
  """The messages of one record, read in order; every complaint names the message index and role."""

  def __init__(self, rec: Record):
    self.rec = rec
    self.messages = rec.items("messages", dict)
    if not self.messages:
      rec.fail("field 'messages' is empty")
    for i, m in enumerate(self.messages):
      if not (isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
        rec.fail(f"messages[{i}]: must be an object with 'role' and 'content' strings")
      if m["role"] not in ROLES:
        rec.fail(f"messages[{i}]: unknown role {m['role']!r} (roles: {', '.join(ROLES)})")

  def fail(self, i: int, problem: str):
    self.rec.fail(f"messages[{i}] ({self.messages[i]['role']}): {problem}")

  def take(self, i: int, role: str, what: str) -> str:
    """The content of messages[i], which must exist and be a `role` turn (`what` names it for the error)."""
    if i >= len(self.messages):
      self.rec.fail(f"messages end at messages[{len(self.messages) - 1}]; expected {what} at messages[{i}]")
    if self.messages[i]["role"] != role:
      self.fail(i, f"expected {what}")
    return self.messages[i]["content"]


def _seed(rec: Record, stem: str) -> ChatSeed:
  where = rec.where  # "file:line", before `ident` adds the id
  chat = _Chat(rec)
  start = 1 if chat.messages[0]["role"] == "system" else 0
  question = question_of(chat.take(start, "user", "the question (a user turn)"))
  if not question:
    chat.fail(start, "no question")
  i = start + 1
  while True:
    text = chat.take(i, "assistant", f"an assistant step ({tj.QUERY} or {tj.FINAL})")
    try:
      step = tj.parse_step(text, first=i == start + 1)
    except tj.ParseError as e:
      chat.fail(i, str(e))
    if step.action == "final":
      break
    if not chat.take(i + 1, "user", f"the search results (a {tj.SEARCH} user turn)").lstrip().startswith(tj.SEARCH):
      chat.fail(i + 1, f"a search turn must start with {tj.SEARCH}")
    i += 2
  chat.take(i + 1, "user", "the request for the final answer (a user turn)")
  answer = chat.take(i + 2, "assistant", "the final answer (an assistant turn)")
  if not answer.strip():
    chat.fail(i + 2, "empty final answer")
  if len(chat.messages) > i + 3:
    chat.fail(i + 3, "unexpected turn after the final answer")
  steps = [{"role": m["role"], "content": m["content"]} for m in chat.messages[start + 1 : i + 1]]
  turns = (*steps, {"role": "user", "content": tj.answer_request(question)}, {"role": "assistant", "content": answer})
  qid = rec.ident() if "id" in rec.row else f"{stem}_{where.rsplit(':', 1)[1]}"  # iter_jsonl's where: "path:line"
  golden = rec.strings("golden_answers", None)
  if golden is not None and not any(a.strip() for a in golden):
    rec.fail("field 'golden_answers' is empty")
  return ChatSeed(qid, question, list(golden) if golden is not None else [answer.strip()], turns, where)


def read_chat_seeds(path: str) -> list[ChatSeed]:
  """Every seed trajectory of the JSONL file `path`, validated; ids must be unique (default: "<stem>_<line>")."""
  stem = file_stem(path)
  seeds = [_seed(rec, stem) for rec in iter_jsonl(path)]
  if not seeds:
    raise DatasetError(f"{path}: no seed trajectories")
  list(check_unique_ids((s.where, {"id": s.id}) for s in seeds))  # fails on a repeated id, naming both lines
  return seeds
