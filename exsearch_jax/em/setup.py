"""Everything an EM run needs before its first step, built from the config: data, retriever, tokenizer,
chat format, model. Each piece is written into the workdir once and reused when a run resumes."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from absl import logging

from exsearch_jax import retrieval
from exsearch_jax.errors import ConfigError


@dataclasses.dataclass
class RunData:
  corpus_path: str
  train: list
  dev: list
  seeds: list  # questions with a decomposition, for warm-up SFT
  world: Optional[object] = None
  chat_seeds: list = dataclasses.field(default_factory=list)  # seed trajectories given as chats (`ChatSeed`)


def load_data(cfg, workdir: str, need_train: bool = True) -> RunData:
  """The synthetic world (written to <workdir>/world) or the user's benchmark files (`data.format`).

  Seeds come from `data.seeds` (a file in `data.seeds_format`), else from the first train questions that
  have a decomposition, which EM then does not sample. Without `data.corpus`, the corpus is built from the
  files' context paragraphs (HotpotQA, 2Wiki, MuSiQue) into <workdir>/corpus.jsonl.
  """
  d = cfg.data
  if d.source == "world":
    from exsearch_jax.data import world as W

    world = W.make_world(d.world_seed, d.world_size)
    corpus = _world_corpus(W, world, os.path.join(workdir, "world"))
    train, dev = world.splits["train"], world.splits[cfg.eval.split][: d.dev_limit or None]
    seeds = pick_seeds(train, cfg.em.seed_trajectories, cfg.em.seed_balance)
    taken = {q["id"] for q in seeds}
    # seed questions are for warm-up only; EM samples the rest, so seeds are not counted twice
    return RunData(corpus, [q for q in train if q["id"] not in taken], dev, seeds, world)
  from exsearch_jax.data import FORMATS, read_chat_seeds

  for field in ("train", "dev") if need_train else ("dev",):
    if not getattr(d, field):
      raise ConfigError(
          f"config.data.{field} is empty: set it (a {d.format} file), or use the synthetic world "
          "(config.data.source=world)"
      )
  read = FORMATS[d.format]
  train, dev = (list(read(d.train)) if d.train else []), list(read(d.dev))[: d.dev_limit or None]
  seeds, chat_seeds, count = [], [], cfg.em.seed_trajectories
  seeds_format = d.seeds_format or d.format
  if d.seeds and seeds_format == "messages":
    chat_seeds = read_chat_seeds(d.seeds)[:count]
  elif d.seeds:
    seeds = pick_seeds(
        [q for q in FORMATS[seeds_format](d.seeds) if q.get("decomposition")], count, cfg.em.seed_balance
    )
    if not seeds:
      raise ConfigError(f"{d.seeds}: no question has a decomposition to use as a seed trajectory")
  elif train:
    seeds = pick_seeds([q for q in train if q.get("decomposition")], count, cfg.em.seed_balance)
    taken = {q["id"] for q in seeds}
    train = [q for q in train if q["id"] not in taken]
  corpus = d.corpus or _context_corpus(cfg, workdir, dev_count=len(dev))
  return RunData(corpus, train, dev, seeds, chat_seeds=chat_seeds)


def pick_seeds(questions: list, count: int, balanced: bool) -> list:
  """The first `count` questions, or with `balanced` the first of each question kind in turn (round robin,
  in file order), so that rare kinds (3-4-hop chains) are seeded as often as common ones."""
  if not balanced:
    return questions[:count]
  from exsearch_jax.eval.runner import question_kind

  by_kind = {}
  for q in questions:
    by_kind.setdefault(question_kind(q), []).append(q)
  queues, picked = [list(reversed(v)) for _, v in sorted(by_kind.items())], []
  while len(picked) < count and any(queues):
    for queue in queues:
      if queue and len(picked) < count:
        picked.append(queue.pop())
  order = {id(q): i for i, q in enumerate(questions)}
  return sorted(picked, key=lambda q: order[id(q)])


def _context_corpus(cfg, workdir: str, dev_count: int) -> str:
  """<workdir>/corpus.jsonl from the context paragraphs of the questions in use (the dev file up to
  `data.dev_limit`), written by process 0 (another process only when it does not see it)."""
  from exsearch_jax import distributed
  from exsearch_jax.data import CONTEXT_FORMATS, export_context_corpus

  d = cfg.data
  if d.format not in CONTEXT_FORMATS:
    raise ConfigError(
        f"config.data.corpus is empty and {d.format} files carry no context paragraphs to build one "
        f"from (those that do: {', '.join(CONTEXT_FORMATS)}); set config.data.corpus"
    )
  files = [(d.train, None), (d.dev, dev_count)]
  if d.seeds and (d.seeds_format or d.format) == d.format:
    files.append((d.seeds, None))
  files = [(path, limit) for path, limit in files if path]
  out = os.path.join(workdir, "corpus.jsonl")
  if distributed.is_primary() or not os.path.exists(out):
    count = export_context_corpus([p for p, _ in files], out, d.format, limits=[n for _, n in files])
    logging.info("corpus: %d passages from the context paragraphs of %s", count, ", ".join(p for p, _ in files))
  return out


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
  if r.kind == "remote":  # a running server (ours, Search-R1's or ColBERT's); the corpus is the server's business
    return retrieval.connect(r.url, r.protocol, timeout=r.timeout, retries=r.retries)
  if r.index_dir:
    return retrieval.load(r.index_dir, corpus_path=corpus_path, encoder=r.encoder)  # refuses another encoder's
  kind = index_kind(cfg)
  out = os.path.join(workdir, f"index_{kind}")
  if os.path.exists(os.path.join(out, "meta.json")):
    return retrieval.load(out, corpus_path=corpus_path, encoder=r.encoder)
  return retrieval.build(corpus_path, out, kind=kind, encoder=r.encoder, progress=True, mesh=mesh)


def index_kind(cfg) -> str:
  """`retrieval.kind`, with "auto" read as BM25 on the synthetic world (made-up names, which a dense encoder
  never saw) and dense MiniLM + ScaNN on real text."""
  kind = cfg.retrieval.kind
  if kind == "auto":
    return "bm25" if cfg.data.source == "world" else "scann"
  return kind


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
  from exsearch_jax import trajectory as tj

  tokenizer = build_word_tokenizer(
      word_tokenizer_texts(passages, data.train + data.dev + data.seeds, cfg.rollout.rerank),
      extra_specials=tj.RERANK_TAGS if cfg.rollout.rerank else (),
  )
  from exsearch_jax import atomic

  with atomic.replaced_directory(path) as tmp:
    tokenizer.save_pretrained(tmp)
  return tokenizer


def word_tokenizer_texts(passages: list, questions: list, rerank: bool = False) -> list:
  """Every text a word-level tokenizer must cover: passages, questions with their answers and facts, and
  the fixed words of the trajectory format and of the stage-0 prompts."""
  from exsearch_jax import trajectory as tj
  from exsearch_jax.em.warmup import RESTATING_PROMPT

  texts = list(passages)
  for q in questions:
    texts += [q["question"]] + list(q["golden_answers"]) + [s["fact"] for s in q.get("decomposition", [])]
  texts.append(f"{tj.answer_request('')} Question: Title: Content: [1] [2] [3] (no results) yes no {RESTATING_PROMPT}")
  if rerank:  # the candidate numbers of the re-rank turns
    texts.append(" ".join(f"[{i}] {i}" for i in range(1, 51)))
  return texts


def build_run_model(cfg, tokenizer, chat, mesh):
  """The configured checkpoint, or (demo) a fresh model sized to the tokenizer that ends turns on <|im_end|>."""
  from exsearch_jax.models import build_model

  model_cfg = cfg.model
  if not model_cfg.checkpoint:
    model_cfg = dataclasses.replace(
        model_cfg, init={**model_cfg.init, "vocab_size": len(tokenizer), "eos_token_id": chat.end_of_turn}
    )
  from exsearch_jax.models import check_vocabulary

  model = build_model(model_cfg, mesh=mesh, seed=cfg.seed)
  check_vocabulary(tokenizer, model.config.vocab_size, cfg.model.checkpoint or "model.init")
  return model
