"""Warm-up data: seed trajectories (oracle decompositions searched with the real retriever) and, for a
model trained from scratch, a stage-0 "pre-training" set.

The paper starts from a pretrained LLM that already reads and copies names. A tiny demo model does not,
so stage 0 gives it next-token training on the corpus plus reading/copying tasks on *made-up* facts
(random objects in the world's sentence templates): it learns to copy a name into a sub-query and a
name out of a passage, without memorising any true fact a dev question needs.
"""

from __future__ import annotations

import random
from typing import Optional, Sequence

from exsearch_jax import trajectory as tj
from exsearch_jax.data.world_schema import FILLERS, RELATIONS, chain_question, chains
from exsearch_jax.em.sequences import Example

RESTATING_PROMPT = "Which name does this question start from?"


def seed_examples(
    questions: Sequence[dict],
    retriever,
    chat,
    shown: int,
    retrieve_k: int,
    instruction: str = "none",
    chat_seeds: Sequence = (),
    rerank: bool = False,
) -> list[Example]:
  """Seed trajectories → SFT examples: questions with a `decomposition` ([{"query", "fact"}] with an optional
  "passage_id" or "title" of the passage that holds the fact), then `chat_seeds` (`ChatSeed`s, as given).

  Each sub-query is searched with the real retriever; when the fact's passage is not among the shown
  passages it replaces the last one, so a seed never teaches writing a fact that was not shown. With `rerank`
  the seed re-ranks the `retrieve_k` candidates: the fact's passage first, the others in the retriever's order.
  """
  by_id = {p.id: p for p in getattr(retriever, "passages", [])}
  by_title = {}
  for p in by_id.values():
    by_title.setdefault(p.title, p)
  queries = [s["query"] for q in questions for s in q["decomposition"]]
  found = iter(retriever.search(queries, retrieve_k) if queries else [])
  out = []
  for q in questions:
    steps = []
    for s in q["decomposition"]:
      hits = list(next(found))[: retrieve_k if rerank else shown]
      gold = by_id.get(s.get("passage_id")) or by_title.get(s.get("title"))
      if gold is not None and gold.id not in [h.id for h in hits]:
        hits = hits[: len(hits) - 1] + [gold] if len(hits) >= (retrieve_k if rerank else shown) else hits + [gold]
      step = {"query": s["query"], "hits": hits, "fact": s["fact"]}
      if rerank:
        first = [h.id for h in hits].index(gold.id) if gold is not None else 0
        step["rerank"] = ([first] + [i for i in range(len(hits)) if i != first])[:shown] if hits else []
      steps.append(step)
    messages = tj.chat_messages(q["question"], steps, q["golden_answers"][0], shown, instruction)
    tokens, mask = chat.conversation(messages)
    out.append(Example(tuple(tokens), tuple(mask), 1.0))
  for seed in chat_seeds:
    tokens, mask = chat.conversation(seed.messages(instruction))
    out.append(Example(tuple(tokens), tuple(mask), 1.0))
  return out


def _names_by_kind(world) -> dict:
  by_kind = {}
  for e in world.entities.values():
    by_kind.setdefault(e["kind"], []).append(e["name"])
  return by_kind


def _made_up_object(rng: random.Random, by_kind: dict, relation) -> str:
  return str(rng.randint(1850, 2020)) if relation.object == "year" else rng.choice(by_kind[relation.object])


def _passages_about(rng: random.Random, by_kind: dict, rel, subject: str, obj: str, shown: int) -> list[dict]:
  """`shown` passages about `subject`, one of them stating `rel`(subject) = obj.

  Like real search results, every passage is about the same entity and mixes facts of other relations
  with filler sentences, so reading means finding the sentence that answers, not the title.
  """
  others = [r for r in RELATIONS.values() if r.subject == rel.subject and r.name != rel.name]

  def sentences(first: Optional[str]) -> str:
    picked = [first] if first else []
    for r in rng.sample(others, min(len(others), rng.randint(1, 2))):
      picked.append(rng.choice(r.templates).format(s=subject, o=_made_up_object(rng, by_kind, r)))
    if rng.random() < 0.5 or not picked:  # a city has one relation: never an empty passage
      picked.append(rng.choice(FILLERS[rel.subject]).format(s=subject))
    rng.shuffle(picked)
    return " ".join(picked)

  answer = rng.choice(rel.templates).format(s=subject, o=obj)
  hits = [{"title": subject, "text": sentences(answer)}] + [
      {"title": subject, "text": sentences(None)} for _ in range(max(shown, 1) - 1)
  ]
  rng.shuffle(hits)
  return hits


def _reading_task(rng: random.Random, by_kind: dict, chat, shown: int) -> Example:
  """A one-hop search over made-up facts: copy the name into the query, read the fact off a passage."""
  rel = rng.choice(sorted(RELATIONS.values(), key=lambda r: r.name))
  subject = rng.choice(by_kind[rel.subject])
  obj = _made_up_object(rng, by_kind, rel)
  question = rel.question.format(s=subject)
  steps = [
      {
          "query": question,
          "hits": _passages_about(rng, by_kind, rel, subject, obj, shown),
          "fact": rel.fact.format(s=subject, o=obj),
      }
  ]
  tokens, mask = chat.conversation(tj.chat_messages(question, steps, obj, shown))
  return Example(tuple(tokens), tuple(mask), 1.0)


def _chain_task(rng: random.Random, by_kind: dict, chat, paths, shown: int, train_queries: bool) -> Example:
  """Reading at every depth of a search: a made-up multi-hop chain searched hop by hop.

  One-hop reading tasks only ever read right after the question; here the model reads after earlier
  searches and facts too. Only the recorded facts are trained unless `train_queries`, so the queries
  (the search strategy) are still left to the seed trajectories.
  """
  path = rng.choice(paths)
  start = rng.choice(by_kind[RELATIONS[path[0]].subject])
  steps, subject = [], start
  for name in path:
    rel = RELATIONS[name]
    obj = _made_up_object(rng, by_kind, rel)
    steps.append(
        {
            "query": rel.question.format(s=subject),
            "hits": _passages_about(rng, by_kind, rel, subject, obj, shown),
            "fact": rel.fact.format(s=subject, o=obj),
        }
    )
    subject = obj
  tokens, mask = chat.conversation(tj.chat_messages(chain_question(path, start), steps, subject, shown))
  return Example(tuple(tokens), tuple(mask if train_queries else _facts_only(tokens, mask, chat)), 1.0)


def _facts_only(tokens: Sequence[int], mask: Sequence[bool], chat) -> list[bool]:
  """The loss mask narrowed to the recorded facts: from each <FACT> marker up to the next <QUERY>/<FINAL>."""
  fact, stops = _marker(chat, tj.FACT), {_marker(chat, tj.QUERY), _marker(chat, tj.FINAL)}
  out, inside = [], False
  for token, trained in zip(tokens, mask):
    inside = trained and (token == fact or (inside and token not in stops))
    out.append(inside)
  return out


def _marker(chat, tag: str) -> int:
  ids = chat.encode(tag)
  if len(ids) != 1:
    raise ValueError(f"stage 0 needs {tag} to be one token (a word-level tokenizer); got {len(ids)}")
  return ids[0]


def _restating_task(rng: random.Random, by_kind: dict, chat, paths) -> Example:
  """Name the entity a (made-up) multi-hop question starts from."""
  path = rng.choice(paths)
  name = rng.choice(by_kind[RELATIONS[path[0]].subject])
  question = chain_question(path, name)
  tokens, mask = chat.conversation(
      [{"role": "user", "content": f"{RESTATING_PROMPT} {question}"}, {"role": "assistant", "content": name}]
  )
  return Example(tuple(tokens), tuple(mask), 1.0)


def stage0_examples(
    world,
    chat,
    count: int,
    shown: int,
    seed: int = 0,
    corpus_share: float = 0.3,
    chain_share: float = 0.0,
    chain_queries: bool = False,
) -> list[Example]:
  """`count` examples: corpus passages (plain next-token) and, of the rest, `chain_share` multi-hop reading
  chains, and one-hop reading tasks and restating tasks 7:3."""
  rng = random.Random(seed)
  paths = [p for p in chains(4) if len(p) > 1]
  by_kind = _names_by_kind(world)
  tasks, out = 1 - corpus_share, []
  for _ in range(count):
    u = rng.random()
    if u < corpus_share:
      p = rng.choice(world.passages)
      tokens = chat.encode(f"Title: {p['title']}. Content: {p['text']}")
      out.append(Example(tuple(tokens), (True,) * len(tokens), 1.0))
    elif u < corpus_share + tasks * chain_share:
      out.append(_chain_task(rng, by_kind, chat, paths, shown, chain_queries))
    elif u < corpus_share + tasks * (chain_share + (1 - chain_share) * 0.7):
      out.append(_reading_task(rng, by_kind, chat, shown))
    else:
      out.append(_restating_task(rng, by_kind, chat, paths))
  return out
