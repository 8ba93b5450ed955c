"""Jitted forward tokens/s for SmolLM2-135M next to transformers PyTorch, same CPU, same run.

  python benchmarks/forward.py [--shapes 1x128,8x128,4x512] [--repeats 5]

Both sides compute full logits (batch, length, 49152) in float32 from the same dequantized GGUF
weights; we report the median of `repeats` timed calls after one warm-up (JAX: after compilation).
"""

import argparse
import os
import statistics
import time

import numpy as np


def _time(fn, repeats):
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--shapes", default="1x128,8x128,4x512")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  import jax
  import torch
  from flax import nnx
  from transformers import AutoModelForCausalLM

  from exsearch_jax.assets import asset_path
  from exsearch_jax.models import from_pretrained

  path = asset_path("smollm2-135m-instruct")
  ours = from_pretrained(path)
  graphdef, state = nnx.split(ours)
  forward = jax.jit(lambda s, ids: nnx.merge(graphdef, s)(ids))
  reference = AutoModelForCausalLM.from_pretrained(
      os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32
  ).eval()
  print(
      f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, torch threads {torch.get_num_threads()}, "
      f"jax {jax.__version__}, torch {torch.__version__}"
  )
  print(f"{'batch x length':>15} {'jax tok/s':>10} {'torch tok/s':>12} {'ratio':>6}")
  for shape in args.shapes.split(","):
    batch, length = map(int, shape.split("x"))
    ids = np.random.default_rng(0).integers(0, ours.config.vocab_size, (batch, length)).astype(np.int32)
    t_jax = _time(lambda: forward(state, ids).block_until_ready(), args.repeats)
    ids_t = torch.tensor(ids, dtype=torch.long)

    def torch_forward():
      with torch.no_grad():
        reference(ids_t)

    t_torch = _time(torch_forward, args.repeats)
    tokens = batch * length
    print(f"{shape:>15} {tokens / t_jax:>10.0f} {tokens / t_torch:>12.0f} {t_torch / t_jax:>5.2f}x")


if __name__ == "__main__":
  main()
