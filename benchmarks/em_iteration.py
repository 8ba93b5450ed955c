"""One EM iteration of SmolLM2-135M-Instruct on the demo world, phase by phase, next to two PyTorch loops in the
same run: what a user waits for, not a kernel.

  python benchmarks/em_iteration.py [--questions 32] [--samples 4] [--max-steps 4] [--reference-questions 4]
                                    [--mstep-steps 4] [--quick] [--random-init] [--torch-device cuda]

Every side runs our rollout host loop (`sampling.rollout`: the same prompts, turn grammar, parsing, budgets and
BM25 retriever over the world's corpus); only the decoder differs:
  ours        the JAX engine: all trajectories of the E-step decoded together, one KV cache kept across turns,
              a question's samples prefilled once (`DecodeSession.start`)
  batched     transformers `generate` once per turn over all live trajectories, left-padded (`torch_session.py`)
  reference   the reference implementation's shape: one trajectory at a time, `generate` per turn (on
              `--reference-questions` questions; its rate is per trajectory, so fewer questions suffice)
Then the E-step scoring of the trajectories with the gold answer (ours: the gold answer appended to each
trajectory's cache at the end of the rollout, `rollout(score_gold=True)` as the E-step runs it, timed apart from
the rollout, then `estep.score_trajectories` for any left; PyTorch: a forward pass per batch of 16), the
weighted M-step (`--mstep-steps` steps of batch 8 on the scored examples, the top `train.trainable_layers`
layers trained as in experiments/configs/smollm2_world.py; PyTorch: `train_step.torch_step`, same loss,
clipping and AdamW) and the checkpoint (orbax vs `torch.save`).
Sampling is seeded on both sides but the samplers differ, so the trajectories (and their lengths) differ:
trajectories/s and model-written tokens/s are both reported. JAX warm-up (compilation) is timed separately.
Pin to cores with `taskset` on a shared machine: the load average is printed.

`--random-init` needs no asset (the GPU check): SmolLM2-135M's architecture with random weights (the same on
both sides, embedding scaled as in `sampling.py` so turns are peaked), and the demo's word-level tokenizer
built from the world, so the vocabulary (and the logits) are the world's ~2,000 words instead of 49,152.
`--torch-device` puts the PyTorch side there (default: cuda when torch sees one).
"""

import argparse
import dataclasses
import functools
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TimedRetriever:
  """Counts the seconds spent in `search`, the host-side retrieval between turns."""

  def __init__(self, inner):
    self.inner, self.seconds, self.queries = inner, 0.0, 0

  def search(self, queries, k):
    start = time.perf_counter()
    try:
      return self.inner.search(queries, k)
    finally:
      self.seconds += time.perf_counter() - start
      self.queries += len(queries)


def timed_sessions():
  """A DecodeSession class that records each `start` (the prompts' prefill): its prompts, seconds, tokens."""
  import jax
  from exsearch_jax.sampling import engine

  class TimedSession(engine.DecodeSession):
    starts: list = []  # (rows, capacity, prompts, seconds) per session
    scoring: list = []  # seconds of each session's gold-answer scoring (`rollout(score_gold=True)`)

    def continuation_logprobs(self, *args):
      begin = time.perf_counter()
      scored = super().continuation_logprobs(*args)
      TimedSession.scoring.append(time.perf_counter() - begin)
      return scored

    def start(self, prompts):
      begin = time.perf_counter()
      super().start(prompts)
      jax.block_until_ready(self.last)
      # copies: the rollout appends each turn to the very lists it passed as prompts
      prompts = [list(p) for p in prompts]
      TimedSession.starts.append((self.rows, self.capacity, prompts, time.perf_counter() - begin))

  return TimedSession


def prefill_saved(model, starts, repeats=2):
  """The rollout's prefills again, shared (`start`: a question's prompt once) and unshared (`extend`: every
  sample's prompt), on fresh sessions after a compiling call of each: (shared s, unshared s, questions,
  prompt tokens computed shared, unshared). The sessions hold the prompts only (the rollout's capacity would
  allocate gigabytes of cache per call; attention reads the prompts' window either way)."""
  import jax
  from exsearch_jax.sampling import engine

  def timed(prompts, shared):
    capacity = engine.bucket(max(map(len, prompts)))
    session = engine.DecodeSession(model, len(prompts), capacity, seeds=list(range(len(prompts))))
    begin = time.perf_counter()
    (session.start if shared else session.extend)(prompts)
    jax.block_until_ready(session.last)
    return time.perf_counter() - begin

  best = {}
  for shared in (True, False):
    timed(starts[0][2], shared)  # compiles
    best[shared] = min(sum(timed(s[2], shared) for s in starts) for _ in range(repeats))
  prompts = [p for s in starts for p in s[2]]
  questions = len({tuple(p) for p in prompts})
  return best[True], best[False], questions, sum(len(p) for p in set(map(tuple, prompts))), sum(map(len, prompts))


@dataclasses.dataclass
class Phase:
  seconds: float
  trajectories: int = 0
  tokens: int = 0  # model-written tokens (rollout) or tokens processed (scoring, M-step)
  retrieval: float = 0.0
  searches: float = 0.0  # mean searches per trajectory


def _rollout(side, model, chat, retriever, questions, cfg, session_factory):
  """(trajectories, Phase); ours scores the gold answers on its cache as the E-step does, timed apart."""
  from exsearch_jax.sampling.rollout import rollout

  ours = side == "ours"
  if ours:
    session_factory.scoring.clear()

  timed = TimedRetriever(retriever)
  start = time.perf_counter()
  if side == "reference":
    trajectories = [
        t
        for q in questions
        for s in range(cfg.samples)
        for t in rollout(
            model,
            chat,
            timed,
            [q],
            dataclasses.replace(cfg, samples=1, seed=cfg.seed + s),
            session_factory=session_factory,
        )
    ]
  else:
    trajectories = rollout(model, chat, timed, questions, cfg, session_factory=session_factory, score_gold=ours)
  seconds = time.perf_counter() - start - (sum(session_factory.scoring) if ours else 0.0)  # scoring: its own phase
  written = sum(sum(t.loss_mask) for t in trajectories)
  phase = Phase(
      seconds,
      len(trajectories),
      written,
      timed.seconds,
      sum(len(t.steps) for t in trajectories) / max(len(trajectories), 1),
  )
  print(f"rollout {side}: {phase.trajectories} trajectories in {seconds:.1f}s", flush=True)
  return trajectories, phase


def _random_models(world):
  """(word tokenizer of the world, our SmolLM2-architecture model, the transformers twin), random weights."""
  import dataclasses as dc

  from exsearch_jax.em.setup import word_tokenizer_texts
  from exsearch_jax.models.word_tokenizer import build_word_tokenizer
  from sampling import EMBED_SCALE
  from train_step import random_init_pair, smollm2_config

  questions = world.splits["train"] + world.splits["dev"]
  tokenizer = build_word_tokenizer(
      word_tokenizer_texts([f"{p['title']} {p['text']}" for p in world.passages], questions)
  )
  config = dc.replace(
      smollm2_config(),
      vocab_size=-(-len(tokenizer) // 64) * 64,
      bos_token_id=tokenizer.bos_token_id,
      eos_token_id=tokenizer.eos_token_id,
      pad_token_id=tokenizer.pad_token_id,
  )
  make, reference = random_init_pair(config, seed=0, embed_scale=EMBED_SCALE)
  return tokenizer, make(), reference


def _torch_score(model, examples, rows=16):
  """The answer's log-probability under the model for each example (the E-step's score), 16 rows a batch."""
  import torch
  from exsearch_jax.em.estep import _answer_start  # pylint: disable=protected-access

  out, tokens = [], 0
  device = next(model.parameters()).device
  for i in range(0, len(examples), rows):
    chunk = examples[i : i + rows]
    width = max(len(e.tokens) for e in chunk)
    ids = torch.tensor([list(e.tokens) + [0] * (width - len(e.tokens)) for e in chunk], device=device)
    mask = torch.tensor([[1] * len(e.tokens) + [0] * (width - len(e.tokens)) for e in chunk], device=device)
    with torch.no_grad():
      logp = model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
    for r, e in enumerate(chunk):
      s = _answer_start(e)
      out.append(float(logp[r, s - 1 : len(e.tokens) - 1].gather(-1, ids[r, s : len(e.tokens), None]).sum()))
    tokens += int(mask.sum())
  return out, tokens


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--questions", type=int, default=32)
  parser.add_argument("--samples", type=int, default=4)
  parser.add_argument("--max-steps", type=int, default=4)
  parser.add_argument("--reference-questions", type=int, default=4)
  parser.add_argument("--mstep-steps", type=int, default=4)
  parser.add_argument(
      "--quick",
      action="store_true",
      help="a smoke run: 4 questions x 2 samples, <= 2 searches, 1 for the reference, 1 M-step step",
  )
  parser.add_argument("--random-init", action="store_true", help="SmolLM2 architecture, random weights, no asset")
  parser.add_argument("--torch-device", default="", help="default: cuda if torch sees a GPU, else cpu")
  args = parser.parse_args()
  if args.quick:
    args.questions, args.samples, args.max_steps, args.reference_questions, args.mstep_steps = 4, 2, 2, 1, 1

  clock = time.perf_counter()
  import jax
  import torch
  import transformers

  transformers.logging.set_verbosity_error()

  from exsearch_jax import retrieval
  from exsearch_jax.assets import asset_path
  from exsearch_jax.checkpoint import RunCheckpoints
  from exsearch_jax.config_check import typed
  from exsearch_jax.data import world as W
  from exsearch_jax.em import estep, sequences
  from exsearch_jax.em.train_step import Trainer, make_optimizer
  from exsearch_jax.models import from_pretrained, load_tokenizer
  from exsearch_jax.sampling.chat import ChatFormat
  from experiments.configs.smollm2_world import get_config
  from torch_session import TorchSession  # benchmarks/ is this script's sys.path[0]
  from train_step import torch_batch, torch_step

  device = args.torch_device or ("cuda" if torch.cuda.is_available() else "cpu")
  sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
  world = W.make_world(0, "demo")
  if args.random_init:
    tokenizer, ours, reference = _random_models(world)
  else:
    path = asset_path("smollm2-135m-instruct")
    tokenizer = load_tokenizer(path)
    ours = from_pretrained(path)
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32
    )
  reference = reference.to(device).eval()
  chat = ChatFormat(tokenizer)
  pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else chat.end_of_turn
  work = tempfile.mkdtemp(prefix="em_iteration_")
  corpus = W.write_world(world, os.path.join(work, "world"))["corpus"]
  retriever = retrieval.build(corpus, os.path.join(work, "bm25"), kind="bm25", progress=False)
  logging.getLogger("bm25s").setLevel(logging.WARNING)  # a stop-word-only sub-query is an empty BM25 query
  questions = world.splits["train"][: args.questions]
  run_config = typed(get_config())
  cfg = dataclasses.replace(
      run_config.rollout, samples=args.samples, max_steps=args.max_steps, batch_rows=args.questions * args.samples
  )
  torch_factory = functools.partial(TorchSession, pad_token_id=pad)
  print(
      f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}, torch "
      f"{torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}; "
      f"{args.questions} questions x {args.samples} samples, <= {args.max_steps} searches, step "
      f"{cfg.step_tokens} / answer {cfg.answer_tokens} tokens, grammar {cfg.constrained}; load average "
      f"{os.getloadavg()[0]:.1f}; ready in {time.perf_counter() - clock:.0f}s",
      flush=True,
  )

  phases = {}
  session = timed_sessions()
  start = time.perf_counter()
  _rollout("ours", ours, chat, retriever, questions, cfg, session)  # compiles
  warmup = time.perf_counter() - start
  session.starts.clear()
  trajectories, phases["rollout", "ours"] = _rollout("ours", ours, chat, retriever, questions, cfg, session)
  shared, unshared, distinct, computed, requested = prefill_saved(ours, session.starts)
  print(
      f"prefill of {distinct} questions x {args.samples} samples: {shared * 1e3 / distinct:.0f} ms per question "
      f"with a question's prompt prefilled once ({computed} of {requested} prompt tokens computed), "
      f"{unshared * 1e3 / distinct:.0f} ms per question prefilling every sample's prompt ({unshared / shared:.2f}x); "
      f"{sum(t for *_, t in session.starts) * 1e3 / distinct:.0f} ms per question in the rollout",
      flush=True,
  )
  _, phases["rollout", "batched"] = _rollout("batched", reference, chat, retriever, questions, cfg, torch_factory)
  _, phases["rollout", "reference"] = _rollout(
      "reference", reference, chat, retriever, questions[: args.reference_questions], cfg, torch_factory
  )
  print(f"ours: rollout warm-up (compilation) {warmup:.0f}s", flush=True)

  examples = estep.gold_examples(trajectories, chat)
  examples = [e for e in examples if e is not None]
  on_cache = sum(session.scoring)  # the timed rollout's: the gold answers appended to its cache
  estep.score_trajectories(ours, chat, trajectories, max_length=2048)  # compiles (any left to a full pass)
  start = time.perf_counter()
  estep.score_trajectories(ours, chat, trajectories, max_length=2048)
  tokens = sum(t.gold_tokens for t in trajectories)
  phases["scoring", "ours"] = Phase(time.perf_counter() - start + on_cache, len(examples), tokens)
  print(f"ours: scoring {on_cache:.1f}s on the rollout's cache ({tokens} answer tokens), then the rest", flush=True)
  start = time.perf_counter()
  _, torch_tokens = _torch_score(reference, examples)
  phases["scoring", "batched"] = phases["scoring", "reference"] = Phase(
      time.perf_counter() - start, len(examples), torch_tokens
  )

  layers = run_config.train.trainable_layers  # the run's: the top layers and the final norm
  trainer = Trainer(ours, make_optimizer(0.0, 1.0), None, trainable_layers=layers)
  frozen = [reference.model.embed_tokens, *reference.model.layers[: len(reference.model.layers) - layers]]
  for module in frozen:
    module.requires_grad_(False)
  step = torch_step(reference.train(), 1e-5)
  epochs = args.mstep_steps + 1  # enough batches for the compile step and the timed ones, however few examples
  batches = list(sequences.batches(examples, 8, 1, 2048, 0, 0, epochs, 0))[: args.mstep_steps + 1]
  start = time.perf_counter()
  for width in sorted({b.tokens.shape[-1] for _, b in batches[1:]}):  # compiles each width the run would meet
    trainer.update(next(b for _, b in batches[1:] if b.tokens.shape[-1] == width), 1e-5)
  jax.block_until_ready(trainer.state.params)
  print(f"ours: m-step warm-up (compilation) {time.perf_counter() - start:.0f}s", flush=True)
  start = time.perf_counter()
  for _, batch in batches[1:]:
    trainer.update(batch, 1e-5)
  jax.block_until_ready(trainer.state.params)
  tokens = sum(int(b.attention_mask.sum()) for _, b in batches[1:])
  phases["m-step", "ours"] = Phase(time.perf_counter() - start, tokens=tokens)
  start = time.perf_counter()
  for _, batch in batches[1:]:
    step(*torch_batch(batch, device))
  sync()
  phases["m-step", "batched"] = phases["m-step", "reference"] = Phase(time.perf_counter() - start, tokens=tokens)

  checkpoints = RunCheckpoints(os.path.join(work, "checkpoints"))
  for step_number in (1, 2):  # a run saves after every phase: the second save is the one a run repeats
    start = time.perf_counter()
    checkpoints.save(step_number, trainer, {"done": [], "phase": None, "step": 0})
    phases["checkpoint", "ours"] = Phase(time.perf_counter() - start)
    print(f"ours: checkpoint {step_number} in {phases['checkpoint', 'ours'].seconds:.1f}s", flush=True)
  start = time.perf_counter()
  torch.save(
      {"model": reference.state_dict(), "optimizer": step.optimizer.state_dict()}, os.path.join(work, "torch.pt")
  )
  phases["checkpoint", "batched"] = phases["checkpoint", "reference"] = Phase(time.perf_counter() - start)

  _report(phases, args)
  print(f"load average {os.getloadavg()[0]:.1f}; total {time.perf_counter() - clock:.0f}s")


def _report(phases, args):
  """Per phase: each side's rate and ours over it; the whole iteration at the E-step's size."""
  sides = ("ours", "batched", "reference")
  print(
      f"\n{'phase':<11}"
      + "".join(f"{s + ' s':>14}{s + ' rate':>16}" for s in sides)
      + f"{'vs batched':>11}{'vs reference':>13}"
  )
  whole = dict.fromkeys(sides, 0.0)
  for name in ("rollout", "scoring", "m-step", "checkpoint"):
    cells, rates = "", {}
    for side in sides:
      p = phases[name, side]
      unit, count = ("traj/s", p.trajectories) if name in ("rollout", "scoring") else ("tok/s", p.tokens)
      rates[side] = count / p.seconds if count else 1.0 / p.seconds
      # the iteration at the E-step's size: the reference's rollout rate applied to every trajectory
      scale = args.questions / args.reference_questions if (name, side) == ("rollout", "reference") else 1.0
      whole[side] += p.seconds * scale
      cells += f"{p.seconds * scale:>14.1f}{f'{rates[side]:.2f} {unit}' if count else '':>16}"
    print(f"{name:<11}{cells}{rates['ours'] / rates['batched']:>10.2f}x{rates['ours'] / rates['reference']:>12.2f}x")
  print(
      f"{'iteration':<11}"
      + "".join(f"{whole[s]:>14.1f}{'':>16}" for s in sides)
      + f"{whole['batched'] / whole['ours']:>10.2f}x{whole['reference'] / whole['ours']:>12.2f}x"
  )
  for side in sides:
    p = phases["rollout", side]
    print(
        f"rollout {side}: {p.trajectories} trajectories, {p.searches:.2f} searches each, "
        f"{p.tokens / p.seconds:.1f} model-written tok/s, retrieval {p.retrieval:.2f}s"
    )


if __name__ == "__main__":
  main()
