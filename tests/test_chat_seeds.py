"""Seed trajectories as chat messages: our form and the reference's (SearchLM) both read, every malformed line named."""

import json
import os

import pytest

from exsearch_jax import trajectory as tj
from exsearch_jax.data import ChatSeed, DatasetError, read_chat_seeds
from exsearch_jax.data.chat_seeds import question_of

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "seeds")
KISS = "What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?"
HURRICANE = "What Category 5 hurricane cause the Sqannanoa River to flood?"


def _lines(path):
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def test_our_form():
  path = os.path.join(SEEDS, "seeds.jsonl")
  kiss, nationality, bare = read_chat_seeds(path)
  given = _lines(path)
  assert kiss == ChatSeed("kiss_and_tell", KISS, ["Chief of Protocol"], tuple(given[0]["messages"][1:]), f"{path}:1")
  assert kiss.messages() == given[0]["messages"]  # our own chats come back exactly
  assert kiss.turns[0] == {"role": "assistant", "content": "<QUERY> Kiss and Tell"}
  # no id: "<stem>_<line>" (line 2 is blank); no golden answers: the final answer; the system turn is dropped
  assert (nationality.id, nationality.where, nationality.golden_answers) == ("seeds_3", f"{path}:3", ["yes"])
  assert nationality.question == "Were Scott Derrickson and Ed Wood of the same nationality?"
  assert nationality.turns == tuple(given[1]["messages"][2:])
  assert (bare.id, bare.question) == ("7", "Which series is The Hork-Bajir Chronicles a companion book to?")
  assert bare.messages()[0]["content"] == tj.question_turn(bare.question)


def test_reference_form():
  path = os.path.join(SEEDS, "searchlm_warmup.jsonl")
  hurricane, wallace = read_chat_seeds(path)
  given = _lines(path)[0]["messages"]
  assert given[0]["content"].startswith("You are an intelligent search agent")  # the full instruction
  assert (hurricane.id, hurricane.question, hurricane.golden_answers) == (
      "searchlm_warmup_1",
      HURRICANE,
      ["Hurricane Ivan"],
  )
  assert hurricane.turns[:5] == tuple(given[1:6])
  assert given[6]["content"].endswith("input question: {question}")  # the README's, unfilled
  assert hurricane.turns[5:] == (
      {"role": "user", "content": tj.answer_request(HURRICANE)},
      {"role": "assistant", "content": "Hurricane Ivan"},
  )
  assert [tj.parse_step(t["content"], first=i == 0).action for i, t in enumerate(hurricane.turns[0:5:2])] == [
      "query",
      "query",
      "final",
  ]
  assert wallace.question == "Who directed the film Kiss and Tell (1945)?"
  assert wallace.golden_answers == ["Richard Wallace"]
  assert wallace.turns[-2]["content"] == tj.answer_request(wallace.question)


@pytest.mark.parametrize(
    "text,question",
    [
        ("Who wrote Dune?", "Who wrote Dune?"),
        ("Question: Who wrote Dune?", "Who wrote Dune?"),
        ("Solve this.\n\n<USER QUERY> Who wrote Dune?\nYour Output:", "Who wrote Dune?"),
        ("  <USER QUERY>  Who wrote Dune?  ", "Who wrote Dune?"),
    ],
)
def test_question_of(text, question):
  assert question_of(text) == question


def _chat(question="Who wrote Dune?"):
  return tj.chat_messages(
      question,
      [
          {
              "query": "Dune",
              "hits": [{"title": "Dune", "text": "By Frank Herbert."}],
              "fact": "Frank Herbert wrote Dune.",
          }
      ],
      "Frank Herbert",
      shown=3,
  )


def _edit(index, content=None, role=None, drop=False):
  messages = _chat()
  if drop:
    del messages[index]
  else:
    messages[index] = {
        "role": role or messages[index]["role"],
        "content": messages[index]["content"] if content is None else content,
    }
  return {"messages": messages}


GOOD = {"messages": _chat()}


@pytest.mark.parametrize(
    "lines,message",
    [
        (
            [GOOD, _edit(1, "<FACT> Dune")],
            r"seeds\.jsonl:2: messages\[1\] \(assistant\): not a first step: '<FACT> Dune'",
        ),
        (
            [_edit(3, "<FACT> Frank Herbert <QUERY>")],
            r"seeds\.jsonl:1: messages\[3\] \(assistant\): empty query or text after <SEARCH>",
        ),
        (
            [_edit(3, "<FACT> He wrote it. The answer is Frank Herbert.")],
            r"seeds\.jsonl:1: messages\[3\] \(assistant\): not a step: "
            r"'<FACT> He wrote it\. The answer is Frank Herbert\.'",
        ),
        (
            [_edit(2, "[1] Title: Dune. Content: By Frank Herbert.")],
            r"seeds\.jsonl:1: messages\[2\] \(user\): a search turn must start with <SEARCH>",
        ),
        (
            [_edit(2, role="assistant")],
            r"seeds\.jsonl:1: messages\[2\] \(assistant\): expected the search results \(a <SEARCH> user turn\)",
        ),
        (
            [{"messages": _chat()[:4]}],
            r"seeds\.jsonl:1: messages end at messages\[3\]; expected the request for the final answer "
            r"\(a user turn\) at messages\[4\]",
        ),
        (
            [{"messages": _chat()[:5]}],
            r"seeds\.jsonl:1: messages end at messages\[4\]; expected the final answer \(an assistant turn\) at "
            r"messages\[5\]",
        ),
        (
            [{"messages": _chat() + [{"role": "user", "content": "thanks"}]}],
            r"seeds\.jsonl:1: messages\[6\] \(user\): unexpected turn after the final answer",
        ),
        ([_edit(5, "  ")], r"seeds\.jsonl:1: messages\[5\] \(assistant\): empty final answer"),
        ([_edit(0, "Question:  ")], r"seeds\.jsonl:1: messages\[0\] \(user\): no question"),
        ([_edit(0, role="assistant")], r"seeds\.jsonl:1: messages\[0\] \(assistant\): expected the question"),
        (
            [_edit(1, role="tool")],
            r"seeds\.jsonl:1: messages\[1\]: unknown role 'tool' \(roles: system, user, assistant\)",
        ),
        (
            [{"messages": [{"role": "user"}]}],
            r"seeds\.jsonl:1: messages\[0\]: must be an object with 'role' and 'content'",
        ),
        ([{"messages": ["Who wrote Dune?"]}], r"seeds\.jsonl:1: field 'messages\[0\]' must be an object, got str"),
        ([{"messages": "Who wrote Dune?"}], r"seeds\.jsonl:1: field 'messages' must be a list, got str"),
        ([{"messages": []}], r"seeds\.jsonl:1: field 'messages' is empty"),
        ([{"chat": _chat()}], r"seeds\.jsonl:1: missing field 'messages'"),
        ([GOOD, "[1, 2]"], r"seeds\.jsonl:2: expected a JSON object, got list"),
        ([GOOD, '{"messages": ['], r"seeds\.jsonl:2: invalid JSON"),
        ([{**GOOD, "golden_answers": []}], r"seeds\.jsonl:1: field 'golden_answers' is empty"),
        (
            [{**GOOD, "golden_answers": "Frank Herbert"}],
            r"seeds\.jsonl:1: field 'golden_answers' must be a list, got str",
        ),
        (
            [{**GOOD, "id": "a"}, GOOD, {**GOOD, "id": "a"}],
            r"seeds\.jsonl:3: duplicate id 'a' \(first at .*seeds\.jsonl:1\)",
        ),
        ([{**GOOD, "id": "seeds_2"}, GOOD], r"seeds\.jsonl:2: duplicate id 'seeds_2' \(first at .*seeds\.jsonl:1\)"),
        (["", "  "], r"seeds\.jsonl: no seed trajectories"),
    ],
)
def test_malformed_seeds(tmp_path, lines, message):
  path = tmp_path / "seeds.jsonl"
  path.write_text(
      "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), encoding="utf-8"
  )
  with pytest.raises(DatasetError, match=message):
    read_chat_seeds(str(path))


def test_unreadable_seed_files(tmp_path):
  with pytest.raises(DatasetError, match=r"absent\.jsonl: no such file"):
    read_chat_seeds(str(tmp_path / "absent.jsonl"))
  empty = tmp_path / "empty.jsonl"
  empty.write_bytes(b"")
  with pytest.raises(DatasetError, match=r"empty\.jsonl: no seed trajectories"):
    read_chat_seeds(str(empty))
  latin = tmp_path / "latin.jsonl"
  latin.write_bytes(json.dumps(GOOD).encode() + b"\n" + json.dumps(GOOD).encode().replace(b"Dune", b"D\xfcne") + b"\n")
  with pytest.raises(DatasetError, match=r"latin\.jsonl:2: not UTF-8 text"):
    read_chat_seeds(str(latin))


def test_chat_seeds_train_their_assistant_turns_under_the_run_instruction():
  from exsearch_jax.em.warmup import seed_examples
  from exsearch_jax.models.word_tokenizer import build_word_tokenizer
  from exsearch_jax.sampling.chat import ChatFormat

  seeds = read_chat_seeds(os.path.join(SEEDS, "seeds.jsonl"))
  texts = [m["content"] for s in seeds for m in s.messages("exsearch")]
  chat = ChatFormat(build_word_tokenizer(texts))
  examples = seed_examples([], None, chat, shown=3, retrieve_k=5, instruction="exsearch", chat_seeds=seeds)
  assert len(examples) == len(seeds)
  for seed, example in zip(seeds, examples):
    assert list(example.tokens) == chat.conversation(seed.messages("exsearch"))[0]
    trained = chat.decode([t for t, m in zip(example.tokens, example.loss_mask) if m])
    assert trained.split()[:1] == [tj.QUERY] and seed.turns[-1]["content"].split()[-1] in trained
    assert "Title" not in trained and "Step 1" not in trained  # search results and the instruction are not
