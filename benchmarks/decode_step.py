"""What one SmolLM2 decode step costs, by batch, by the cache slots its attention reads, and by cache dtype.

  python benchmarks/decode_step.py [--batches 16,64,128] [--held 200,800] [--steps 8] [--repeats 2]
                                   [--cache-dtypes float32,bfloat16] [--capacity SLOTS]

A `DecodeSession` per (cache dtype, batch, held tokens): random prompts of `held` tokens (prefilled 200 at a
time: one 128 x 600 prefill needs more than 20 GiB), one decode round to compile, then `--repeats` rounds of
`--steps` greedy tokens, all sessions interleaved so that a change of machine load falls on all of them. The
attention window is the power of two above the tokens a row holds after the round. Reported per step:
milliseconds, the dense layers' rate (2 x the non-embedding parameters and the output projection, per row) and
the cache bytes the attention reads. Whether a step is bound by the dense layers or by the cache is what
decides if a cheaper cache (bfloat16, or attention over each row's own length) pays. The cache holds just what
a session needs (its window) unless `--capacity` gives more slots, as the rollout's sessions have (1,024 for
SmolLM2 on the world): a window read out of a larger cache is what `decode_programs` must not copy every step.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHUNK = 200  # prompt tokens prefilled per call


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batches", default="16,64,128")
  parser.add_argument("--held", default="200,800")
  parser.add_argument("--steps", type=int, default=8)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--cache-dtypes", default="float32,bfloat16")
  parser.add_argument("--capacity", type=int, default=0, help="cache slots per row (default: what a session needs)")
  args = parser.parse_args()

  import jax
  import numpy as np

  from exsearch_jax.assets import asset_path
  from exsearch_jax.models import from_pretrained
  from exsearch_jax.models.decoder_config import DTYPES
  from exsearch_jax.sampling import engine

  dtypes = args.cache_dtypes.split(",")
  for name in dtypes:
    if name not in DTYPES:
      raise SystemExit(f"--cache-dtypes: unknown dtype {name!r}; known: {', '.join(sorted(DTYPES))}")
  model = from_pretrained(asset_path("smollm2-135m-instruct"))
  cfg = model.config
  dense_flops = 2 * (cfg.num_params() - cfg.vocab_size * cfg.hidden_size * (0 if cfg.tie_word_embeddings else 1))
  rng = np.random.default_rng(0)
  print(f"load average {os.getloadavg()[0]:.2f}; compute dtype {cfg.dtype}; {jax.devices()[0].platform}", flush=True)

  sessions = {}
  for dtype in dtypes:
    for batch in map(int, args.batches.split(",")):
      for held in map(int, args.held.split(",")):
        need = engine.bucket(held + (2 + args.repeats) * args.steps, minimum=128)
        if args.capacity and args.capacity < need:
          raise SystemExit(f"--capacity {args.capacity}: {held} held tokens and the rounds need {need} slots")
        session = engine.DecodeSession(
            model, batch, args.capacity or need, seeds=list(range(batch)), cache_dtype=DTYPES[dtype]
        )
        session.start(rng.integers(100, cfg.vocab_size, (batch, min(held, CHUNK))).tolist())
        for start in range(CHUNK, held, CHUNK):
          session.extend(rng.integers(100, cfg.vocab_size, (batch, min(CHUNK, held - start))).tolist())
        session.decode([args.steps] * batch)  # compiles
        sessions[dtype, batch, held] = session
        print(f"ready: {dtype} cache, batch {batch}, {held} held", flush=True)
  best: dict = {}
  windows = {}  # the attention window of the last timed round, as the engine picks it
  for _ in range(args.repeats):
    for key, session in sessions.items():
      windows[key] = engine.attention_window(int(session.lengths.max()) + args.steps, session.capacity)
      begin = time.perf_counter()
      session.decode([args.steps] * key[1])
      best[key] = min(best.get(key, float("inf")), (time.perf_counter() - begin) / args.steps)

  print("\n| cache | batch | held | window | ms/step | dense GFLOP/s | cache GB read/step | vs float32 |")
  print("|---|---|---|---|---|---|---|---|")
  for (dtype, batch, held), seconds in best.items():
    session = sessions[dtype, batch, held]
    window = windows[dtype, batch, held]
    item = np.dtype(DTYPES[dtype]).itemsize
    cache_bytes = 2 * cfg.num_layers * session.rows * cfg.num_kv_heads * window * cfg.head_dim * item
    base = best.get((dtypes[0], batch, held), seconds)
    print(
        f"| {dtype} | {batch} | {held} | {window} | {1000 * seconds:.0f} | "
        f"{dense_flops * session.rows / seconds / 1e9:.0f} | {cache_bytes / 1e9:.2f} | {seconds / base:.2f}x |"
    )


if __name__ == "__main__":
  main()
