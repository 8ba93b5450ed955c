"""What XLA CPU makes of SmolLM2's matmul shapes: the dense layers in float32 and with bfloat16 inputs, and a
prefill's attention against the dense layers of the same tokens.

  python benchmarks/matmul_shapes.py [--rows 128,1024] [--prefill-rows 128] [--new 100] [--slots 256,512,1024]
                                     [--calls 10]

Part 1, dense: each matmul a SmolLM2 layer and its output head run (576x960 for q/k/v, 576x576, 576x1,536,
1,536x576, 576x49,152) at `--rows` rows, float32 against bfloat16 inputs accumulated in float32
(`preferred_element_type`): whether a bfloat16 matmul path would pay on this CPU.
Part 2, a prefill layer: `--prefill-rows` rows appending `--new` tokens each to a cache holding `--slots`
slots, the model's own `Attention._attend` (scores, mask, softmax, weighted values over the (B, KV, S, D)
cache) against the dense part of one layer for the same rows x new tokens (q/k/v/o projections and the MLP),
and a plain 2-D matmul with the attention's contraction (head_dim 64) for scale. Medians of `--calls` calls,
the two sides of each row interleaved so that a change of machine load falls on both.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smollm2_135m_config.json")


def _interleaved(functions, args, calls):
  """Median seconds of each function, called in turn so that load changes fall on all."""
  import jax
  import numpy as np

  for f, a in zip(functions, args):
    jax.block_until_ready(f(*a))
  times = [[] for _ in functions]
  for _ in range(calls):
    for i, (f, a) in enumerate(zip(functions, args)):
      begin = time.perf_counter()
      jax.block_until_ready(f(*a))
      times[i].append(time.perf_counter() - begin)
  return [float(np.median(t)) for t in times]


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--rows", default="128,1024", help="rows of the dense matmuls")
  parser.add_argument("--prefill-rows", type=int, default=128)
  parser.add_argument("--new", type=int, default=100, help="tokens each row appends")
  parser.add_argument("--slots", default="256,512,1024", help="cache slots the attention reads")
  parser.add_argument("--calls", type=int, default=10)
  args = parser.parse_args()

  import json

  import jax
  import jax.numpy as jnp
  import numpy as np
  from flax import nnx

  from exsearch_jax.models import DecoderConfig
  from exsearch_jax.models.decoder import Attention

  with open(CONFIG, encoding="utf-8") as f:
    cfg = DecoderConfig.from_hf_dict(json.load(f), source=CONFIG)
  e, f_, h, kv, d = cfg.hidden_size, cfg.intermediate_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
  rng = np.random.default_rng(0)
  rand = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)  # noqa: E731
  print(f"load average {os.getloadavg()[0]:.2f}; {jax.devices()[0].device_kind}; jax {jax.__version__}", flush=True)

  float32 = jax.jit(lambda x, w: x @ w)
  bfloat16 = jax.jit(lambda x, w: jnp.dot(x, w, preferred_element_type=jnp.float32))
  print("\n| rows | matmul | float32 ms | GFLOP/s | bfloat16 inputs ms | GFLOP/s | bfloat16 faster by |")
  print("|---|---|---|---|---|---|---|")
  shapes = [(e, (h + 2 * kv) * d), (h * d, e), (e, f_), (f_, e), (e, cfg.vocab_size)]
  for rows in map(int, args.rows.split(",")):
    for k, n in shapes:
      x, w = rand(rows, k), rand(k, n)
      calls = max(3, args.calls // 4) if n == cfg.vocab_size else args.calls
      t32, t16 = _interleaved([float32, bfloat16], [(x, w), (x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))], calls)
      flops = 2 * rows * k * n
      print(
          f"| {rows} | {k}x{n} | {1e3 * t32:.2f} | {flops / t32 / 1e9:.0f} | {1e3 * t16:.2f} | "
          f"{flops / t16 / 1e9:.0f} | {t32 / t16:.2f}x |",
          flush=True,
      )

  b, t = args.prefill_rows, args.new
  attention = Attention(cfg, nnx.Rngs(0))
  attend = jax.jit(lambda q, k, v, mask: attention._attend(q, k, v, mask, kv_layout="bksd"))
  weights = (rand(e, (h + 2 * kv) * d), rand(h * d, e), rand(e, f_), rand(e, f_), rand(f_, e))

  @jax.jit
  def dense_layer(x, qkv, o, gate, up, down):
    x = x + (x @ qkv)[:, : h * d] @ o
    return x + (jax.nn.silu(x @ gate) * (x @ up)) @ down

  tokens = rand(b * t, e)
  dense_flops = 2 * b * t * ((h + 2 * kv) * d * e + h * d * e + 3 * e * f_)
  print(f"\nA prefill layer: {b} rows x {t} new tokens, float32\n")
  print("| slots | attention ms | GFLOP/s | dense part ms | GFLOP/s | attention / dense | 2-D matmul, K=64: GFLOP/s |")
  print("|---|---|---|---|---|---|---|")
  for slots in map(int, args.slots.split(",")):
    q, k, v = rand(b, t, h, d), rand(b, kv, slots, d), rand(b, kv, slots, d)
    mask = jnp.asarray(rng.random((b, t, slots)) < 0.7)
    plain = (rand(b * t * h // kv, d), rand(d, slots))  # as many scores per kv head as the attention's
    t_attn, t_dense, t_plain = _interleaved(
        [attend, dense_layer, jax.jit(lambda a, w: a @ w)], [(q, k, v, mask), (tokens, *weights), plain], args.calls
    )
    attn_flops = 4 * b * t * h * slots * d  # scores and weighted values
    plain_rate = 2 * plain[0].size * slots / t_plain / 1e9
    print(
        f"| {slots} | {1e3 * t_attn:.0f} | {attn_flops / t_attn / 1e9:.0f} | {1e3 * t_dense:.0f} | "
        f"{dense_flops / t_dense / 1e9:.0f} | {t_attn / t_dense:.2f} | {plain_rate:.0f} |",
        flush=True,
    )


if __name__ == "__main__":
  main()
