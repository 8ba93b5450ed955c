"""Everything an EM run needs before its first step, built from the config: data, retriever, tokenizer,
chat format, model. Each piece is written into the workdir once and reused when a run resumes."""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

from exsearch_jax import retrieval
from exsearch_jax.errors import ConfigError


@dataclasses.dataclass
class RunData:
  corpus_path: str
  train: list
  dev: list
  seeds: list           # questions with a decomposition, for warm-up SFT
  world: Optional[object] = None


def _read_questions(path: str) -> list:
  from exsearch_jax.data import read_flashrag
  return list(read_flashrag(path))


def load_data(cfg, workdir: str) -> RunData:
  """The synthetic world (written to <workdir>/world) or the user's FlashRAG-format files."""
  d = cfg.data
  if d.world_size:
    from exsearch_jax.data import world as W
    world = W.make_world(d.world_seed, d.world_size)
    corpus = _world_corpus(W, world, os.path.join(workdir, "world"))
    train, dev = world.splits["train"], world.splits[cfg.eval.split][:d.dev_limit or None]
    seeds = train[:cfg.em.seed_trajectories]
    # seed questions are for warm-up only; EM samples the rest, so seeds are not counted twice
    return RunData(corpus, train[cfg.em.seed_trajectories:], dev, seeds, world)
  for field in ("corpus", "train", "dev"):
    if not d[field]:
      raise ConfigError(f"config.data.{field} is empty: set it (a FlashRAG jsonl) or set config.data.world_size")
  train, dev = _read_questions(d.train), _read_questions(d.dev)
  seeds = []
  if d.seeds:
    seeds = [q for q in _read_questions(d.seeds) if q.get("decomposition")]
    if not seeds:
      raise ConfigError(f"{d.seeds}: no question has a non-empty 'decomposition' to use as a seed trajectory")
  return RunData(d.corpus, train, dev[:d.dev_limit] if d.dev_limit else dev, seeds[:cfg.em.seed_trajectories])


def _world_corpus(W, world, out: str) -> str:
  """Process 0 writes the world; another process only when it does not see it (a disk of its own)."""
  from exsearch_jax import distributed
  corpus = os.path.join(out, "corpus.jsonl")
  if distributed.is_primary() or not os.path.exists(corpus):
    corpus = W.write_world(world, out)["corpus"]
  return corpus


def load_retriever(cfg, corpus_path: str, workdir: str, mesh=None):
  """A prebuilt index (config.retrieval.index_dir), or one built once into <workdir>/index."""
  r = cfg.retrieval
  if r.index_dir:
    return retrieval.load(r.index_dir, corpus_path=corpus_path)
  out = os.path.join(workdir, f"index_{r.kind}")
  if os.path.exists(os.path.join(out, "meta.json")):
    return retrieval.load(out, corpus_path=corpus_path)
  return retrieval.build(corpus_path, out, kind=r.kind, encoder=r.encoder, progress=True, mesh=mesh)


def load_tokenizer_for(cfg, data: RunData, workdir: str):
  """`model.tokenizer == "word"`: a word-level tokenizer built from the world (saved in the workdir)."""
  from exsearch_jax.assets import resolve_checkpoint
  from exsearch_jax.models import load_tokenizer
  if cfg.model.tokenizer != "word":
    return load_tokenizer(resolve_checkpoint(cfg.model.tokenizer or cfg.model.checkpoint))
  path = os.path.join(workdir, "tokenizer")
  if os.path.exists(os.path.join(path, "tokenizer.json")):
    return load_tokenizer(path)
  from exsearch_jax.models.word_tokenizer import build_word_tokenizer
  passages = [f"{p.title} {p.text}" for p in retrieval.read_corpus(data.corpus_path)]
  tokenizer = build_word_tokenizer(word_tokenizer_texts(passages, data.train + data.dev + data.seeds))
  tokenizer.save_pretrained(path)
  return tokenizer


def word_tokenizer_texts(passages: list, questions: list) -> list:
  """Every text a word-level tokenizer must cover: passages, questions with their answers and facts, and
  the fixed words of the trajectory format and of the stage-0 prompts."""
  from exsearch_jax import trajectory as tj
  from exsearch_jax.em.warmup import RESTATING_PROMPT
  texts = list(passages)
  for q in questions:
    texts += [q["question"]] + list(q["golden_answers"]) + [s["fact"] for s in q.get("decomposition", [])]
  texts.append(f"{tj.answer_request('')} Question: Title: Content: [1] [2] [3] (no results) yes no {RESTATING_PROMPT}")
  return texts


def build_run_model(cfg, tokenizer, chat, mesh):
  """The configured checkpoint, or (demo) a fresh model sized to the tokenizer that ends turns on <|im_end|>."""
  from exsearch_jax.models import build_model
  model_cfg = cfg.model
  if not model_cfg.checkpoint:
    model_cfg = model_cfg.copy_and_resolve_references()
    with model_cfg.unlocked():
      model_cfg.init.vocab_size = len(tokenizer)
      model_cfg.init.eos_token_id = chat.end_of_turn
  return build_model(model_cfg, mesh=mesh, seed=cfg.seed)
