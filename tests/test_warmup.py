"""Stage-0 warm-up data: tasks on made-up facts (what is trained, what is shown, the mix of tasks)."""

import random

import pytest

from exsearch_jax import trajectory as tj
from exsearch_jax.data.world import make_world
from exsearch_jax.data.world_schema import RELATIONS, chains
from exsearch_jax.em import warmup
from exsearch_jax.em.setup import word_tokenizer_texts
from exsearch_jax.models.word_tokenizer import build_word_tokenizer
from exsearch_jax.sampling.chat import ChatFormat


@pytest.fixture(scope="module")
def world_and_chat():
  world = make_world(0, "tiny")
  texts = word_tokenizer_texts(
      [f"{p['title']} {p['text']}" for p in world.passages], [q for split in world.splits.values() for q in split]
  )
  return world, ChatFormat(build_word_tokenizer(texts))


def _trained_text(chat, example) -> str:
  return chat.decode([t for t, m in zip(example.tokens, example.loss_mask) if m])


def _passages(chat, example) -> list[str]:
  text = chat.decode(example.tokens)
  return [p.split("Content :")[1].split("<|im_start|>")[0].strip() for p in text.split("Title :")[1:]]


def test_chain_task_trains_only_the_facts_and_each_hop_reads_the_last_object(world_and_chat):
  world, chat = world_and_chat
  by_kind = warmup._names_by_kind(world)
  paths = [p for p in chains(4) if len(p) > 1]
  for seed in range(20):
    example = warmup._chain_task(random.Random(seed), by_kind, chat, paths, shown=2, train_queries=False)
    trained = _trained_text(chat, example)
    facts = [f.strip() for f in trained.split(tj.FACT)[1:]]
    assert len(facts) >= 2 and tj.QUERY not in trained and tj.FINAL not in trained
    text = chat.decode(example.tokens)
    queries = [q.split("<|im_start|>")[0].strip() for q in text.split(tj.QUERY)[1:]]
    assert len(queries) == len(facts)
    for fact, next_query in zip(facts, queries[1:]):  # the next hop asks about the object just read
      obj = fact.rstrip(" .").split(" ")[-2:]
      assert " ".join(obj) in next_query or obj[-1] in next_query, (fact, next_query)
    assert all(_passages(chat, example)), "every shown passage has text"


def test_chain_task_with_queries_trains_the_whole_search(world_and_chat):
  world, chat = world_and_chat
  example = warmup._chain_task(
      random.Random(1), warmup._names_by_kind(world), chat, [("employer", "headquarters")], shown=2, train_queries=True
  )
  trained = _trained_text(chat, example)
  assert trained.count(tj.QUERY) == 2 and trained.count(tj.FACT) == 2 and tj.FINAL in trained
  assert trained.startswith(tj.QUERY + " Which company does")


def test_stage0_mix_follows_the_shares(world_and_chat):
  world, chat = world_and_chat
  only_chains = warmup.stage0_examples(world, chat, 30, shown=2, corpus_share=0.0, chain_share=1.0)
  assert all(_trained_text(chat, e).startswith(tj.FACT) for e in only_chains)
  default = warmup.stage0_examples(world, chat, 30, shown=2, corpus_share=0.0)
  assert not any(_trained_text(chat, e).startswith(tj.FACT) for e in default)  # no chains unless asked
  assert warmup.stage0_examples(world, chat, 30, 2, seed=3, chain_share=0.5) == warmup.stage0_examples(
      world, chat, 30, 2, seed=3, chain_share=0.5
  )


def test_city_reading_passages_are_never_empty(world_and_chat):
  world, chat = world_and_chat
  by_kind = warmup._names_by_kind(world)
  rng = random.Random(0)
  for _ in range(50):  # a city has one relation (its country): the other passage still gets a sentence
    hits = warmup._passages_about(rng, by_kind, RELATIONS["country"], by_kind["city"][0], "Nowhere", shown=3)
    assert all(h["text"].strip() for h in hits)


def test_seeds_with_rerank_put_the_facts_passage_first_and_train_the_order():
  from exsearch_jax import retrieval
  from exsearch_jax.data import world as W
  import tempfile

  world = make_world(0, "tiny")
  with tempfile.TemporaryDirectory() as tmp:
    paths = W.write_world(world, tmp)
    retriever = retrieval.build(paths["corpus"], tmp + "/bm25", kind="bm25", progress=False)
    texts = word_tokenizer_texts(
        [f"{p['title']} {p['text']}" for p in world.passages],
        [q for split in world.splits.values() for q in split],
        rerank=True,
    )
    chat = ChatFormat(build_word_tokenizer(texts, extra_specials=tj.RERANK_TAGS))
    questions = [q for q in world.splits["train"] if q["hops"] == 2][:4]
    examples = warmup.seed_examples(questions, retriever, chat, shown=2, retrieve_k=5, rerank=True)
    by_id = {p.id: p for p in retriever.passages}
  for q, example in zip(questions, examples):
    text, trained = chat.decode(example.tokens), _trained_text(chat, example)
    assert text.count(tj.CANDIDATES) == 2 and trained.count(tj.RERANK) == 2 and tj.CANDIDATES not in trained
    for step, shown in zip(q["decomposition"], text.split(tj.SEARCH)[1:]):
      first = shown.split("Title :")[1].split(". Content")[0].strip()  # the fact's passage is shown first
      assert first == by_id[step["passage_id"]].title
