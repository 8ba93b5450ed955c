"""Where a SmolLM2 rollout's time goes, and what each decode-session optimisation buys, in one process.

  python benchmarks/rollout_breakdown.py [--questions 32] [--samples 4] [--max-steps 4] [--repeats 1]
                                         [--variants default,no_compaction,one_group,no_packing,no_shrink,
                                                     shrink_quarter]

The E-step rollout of `benchmarks/em_iteration.py` (SmolLM2-135M-Instruct, the demo world, BM25; ours only),
with every `DecodeSession` call timed by kind: `start` (the prompts' prefill), `extend` (the turns appended
after a search or an answer request: passages, user turns) and `decode` (sampling rounds), plus the prefill's
real tokens against the padded slots computed. Variants switch one optimisation off:
  default         the engine as it is
  no_compaction   every call computes all rows, also when most have no work (`DecodeSession._compacted`)
  one_group       a turn's appends are prefilled in one call at the longest one's width (`length_groups`)
  no_packing      a prefill's dense layers compute every padded slot, not only the real tokens (`packing_index`)
  no_shrink       a decode round runs all its rows until the last ends, not its few long rows alone (`SHRINK_ROWS`)
  shrink_quarter  a decode round goes on with its running rows alone once three quarters ended, not half
                  (`SHRINK_SHARE`)
Each variant runs once to compile, then `--repeats` timed passes, the variants interleaved so that a change of
machine load falls on all of them; the table gives the fastest pass, and whether each variant's trajectories
equal the default's (padding and batch move the logits by float rounding only, so they normally do).
"""

import argparse
import collections
import contextlib
import dataclasses
import logging
import os
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = ("default", "no_compaction", "one_group", "no_packing", "no_shrink", "shrink_quarter")


@contextlib.contextmanager
def variant(name: str):
  """The engine with the optimisation `name` switched off, for the duration of the block."""
  from exsearch_jax.sampling import engine

  if name not in VARIANTS:
    raise SystemExit(f"--variants: unknown variant {name!r}; known: {', '.join(VARIANTS)}")
  saved = (
      engine.DecodeSession._compacted,
      engine.length_groups,
      engine.packing_index,
      engine.SHRINK_ROWS,
      engine.SHRINK_SHARE,
  )
  if name == "no_compaction":
    engine.DecodeSession._compacted = lambda self, live: None
  if name == "one_group":
    engine.length_groups = lambda lengths, *args, **kwargs: [list(range(len(lengths)))]
  if name == "no_packing":
    engine.packing_index = lambda mask: None
  if name == "no_shrink":
    engine.SHRINK_ROWS = 1 << 30
  if name == "shrink_quarter":
    engine.SHRINK_SHARE = 4
  try:
    yield
  finally:
    (
        engine.DecodeSession._compacted,
        engine.length_groups,
        engine.packing_index,
        engine.SHRINK_ROWS,
        engine.SHRINK_SHARE,
    ) = saved


def timed_session_class(stats: collections.Counter):
  """A DecodeSession that adds each call's seconds to stats[kind], and the prefill's real tokens, padded slots
  (attention's layout) and the entries its dense layers computed (fewer when packed)."""
  import jax
  from exsearch_jax.sampling import decode_programs, engine

  def counted(program):
    def run(*args, **kwargs):
      ids, mask = args[-2:]  # (rows, width) token ids and real-token mask of the rows computed
      stats["prefill real tokens"] += int(mask.sum())
      stats["prefill padded slots"] += ids.shape[0] * ids.shape[1]
      packing = kwargs.get("packing")
      stats["prefill dense entries"] += ids.shape[0] * ids.shape[1] if packing is None else len(packing)
      stats["prefill calls"] += 1
      return program(*args, **kwargs)

    return run

  def rounds(program):
    def run(*args, **kwargs):
      stats["decode calls"] += 1
      stats["decode calls going on (fewer rows)"] += args[-1] is not None  # the carried state of a round
      return program(*args, **kwargs)

    return run

  engine.programs = types.SimpleNamespace(  # the session's programs, its prefills and decode calls counted
      **{name: getattr(decode_programs, name) for name in ("new_cache", "gather_rows", "continuation_logprobs")},
      extend=counted(decode_programs.extend),
      extend_rows=counted(decode_programs.extend_rows),
      decode=rounds(decode_programs.decode),
      decode_rows=rounds(decode_programs.decode_rows),
  )

  def timed(kind, method):
    def call(self, *args, **kwargs):
      begin = time.perf_counter()
      result = method(self, *args, **kwargs)
      jax.block_until_ready(self.last)
      stats[f"{kind} s"] += time.perf_counter() - begin
      return result

    return call

  return type(
      "TimedSession",
      (engine.DecodeSession,),
      {kind: timed(kind, getattr(engine.DecodeSession, kind)) for kind in ("start", "extend", "decode")},
  )


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--questions", type=int, default=32)
  parser.add_argument("--samples", type=int, default=4)
  parser.add_argument("--max-steps", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=1)
  parser.add_argument("--variants", default=",".join(VARIANTS))
  args = parser.parse_args()
  names = args.variants.split(",")

  from exsearch_jax import retrieval
  from exsearch_jax.assets import asset_path
  from exsearch_jax.config_check import typed
  from exsearch_jax.data import world as W
  from exsearch_jax.models import from_pretrained, load_tokenizer
  from exsearch_jax.sampling.chat import ChatFormat
  from exsearch_jax.sampling import engine
  from exsearch_jax.sampling.rollout import rollout
  from experiments.configs.smollm2_world import get_config

  path = asset_path("smollm2-135m-instruct")
  model, chat = from_pretrained(path), ChatFormat(load_tokenizer(path))
  world = W.make_world(0, "demo")
  work = tempfile.mkdtemp(prefix="rollout_breakdown_")
  corpus = W.write_world(world, os.path.join(work, "world"))["corpus"]
  retriever = retrieval.build(corpus, os.path.join(work, "bm25"), kind="bm25", progress=False)
  logging.getLogger("bm25s").setLevel(logging.WARNING)  # a stop-word-only sub-query is an empty BM25 query
  rows = args.questions * args.samples
  cfg = dataclasses.replace(
      typed(get_config()).rollout, samples=args.samples, max_steps=args.max_steps, batch_rows=rows
  )
  questions = world.splits["train"][: args.questions]
  print(f"load average {os.getloadavg()[0]:.2f}; {args.questions} questions x {args.samples} samples", flush=True)

  best: dict = {}
  tokens: dict = {}
  for attempt in range(1 + args.repeats):
    for name in names:
      stats: collections.Counter = collections.Counter()
      with variant(name):
        compiled, begin = engine.compiles["count"], time.perf_counter()
        trajectories = rollout(model, chat, retriever, questions, cfg, session_factory=timed_session_class(stats))
        stats["rollout s"] = time.perf_counter() - begin
      stats["programs compiled"] = engine.compiles["count"] - compiled
      stats["model-written tokens"] = sum(sum(t.loss_mask) for t in trajectories)
      label = "compile" if attempt == 0 else f"pass {attempt}"
      print(f"{name} ({label}): {stats['rollout s']:.1f}s, {stats['programs compiled']} programs compiled", flush=True)
      tokens[name] = [t.tokens for t in trajectories]
      if attempt and (name not in best or stats["rollout s"] < best[name]["rollout s"]):
        best[name] = stats
  _report(best, tokens, names)


def _report(best, tokens, names):
  rows = [
      "rollout s",
      "start s",
      "extend s",
      "decode s",
      "prefill calls",
      "prefill real tokens",
      "prefill padded slots",
      "prefill dense entries",
      "decode calls",
      "decode calls going on (fewer rows)",
      "model-written tokens",
      "programs compiled",
  ]
  print("\n| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
  for row in rows:
    cells = [f"{best[n][row]:,.1f}" if row.endswith(" s") else f"{best[n][row]:,}" for n in names]
    print(f"| {row} | " + " | ".join(cells) + " |")
  same = [sum(a == b for a, b in zip(tokens[n], tokens[names[0]])) for n in names]
  total = len(tokens[names[0]])
  print(f"| trajectories equal to {names[0]}'s | " + " | ".join(f"{s} of {total}" for s in same) + " |")
  for n in names[1:]:
    print(f"{names[0]} vs {n}: {best[n]['rollout s'] / best[names[0]]['rollout s']:.2f}x")


if __name__ == "__main__":
  main()
