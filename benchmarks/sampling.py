"""Sampling tokens/s for SmolLM2-135M-Instruct next to transformers PyTorch `generate`, same device, same run.

  python benchmarks/sampling.py [--batches 1,16,64] [--new-tokens 64] [--repeats 3] [--quick]
                                [--random-init] [--dtype float32|bfloat16] [--torch-device cuda]
                                [--side both|ours|torch] [--hbm-gbps 4800]

Both sides continue the same chat prompts (different lengths; PyTorch left-pads) with temperature 0.8,
top-p 0.95, no top-k, from the same dequantized GGUF weights in float32 (or see `--random-init`), and
write exactly `new-tokens` tokens per row (end-of-sequence disabled: PyTorch `min_new_tokens`, ours
`eos_token_ids=[]`), so both count the same tokens. A timed call is the whole `generate` (prefill
included); we report the best of `repeats` calls after one warm-up call, and the warm-up (JAX:
compilation) separately. Timed calls alternate between the two sides so both see the same machine load;
the load average is printed, because a busy machine hurts PyTorch's two OpenMP threads far more than
XLA's (pin both to one core with `taskset -c 0` for a fair comparison on a shared machine).

GPU: `--torch-device` (default cuda when torch sees one) runs PyTorch there; each timed call ends
synchronised (ours returns host lists; PyTorch: `torch.cuda.synchronize`). `--random-init` builds the
SmolLM2-135M architecture (`smollm2_135m_config.json`) with random weights on both sides
(`train_step.HostWeights`, copied to PyTorch via `save_pretrained`), no asset or tokenizer needed: the
prompts are then random token ids with the chat prompts' lengths (about 30-50 tokens), and the (tied)
embedding is scaled by 10 so the next-token distribution is peaked like a trained model's (0.95-nucleus
of ~1-120 tokens at temperature 0.8, instead of ~42,000 of 49,152 unscaled, which would time our rare
wide-nucleus path on every step). `--dtype bfloat16`: weights, activations and KV cache in bf16
on both sides. Roofline: at batch 1 a decode step reads every weight once, so tokens/s <= HBM bandwidth /
weight bytes (`--hbm-gbps`, printed when given). `--side ours|torch` times one side alone in its own
process (as in `train_step.py`).
"""

import argparse
import json
import os
import time

QUESTIONS = [
    "What is the capital of France?",
    "Who wrote the play Romeo and Juliet?",
    "Explain in detail how a search engine decides which web pages to show first.",
    "Which planet is known as the Red Planet?",
    "What gas do plants absorb from the air?",
    "Write a short story about a robot who learns to paint.",
    "How do vaccines train the immune system?",
    "Name three rivers in Africa and the countries they flow through.",
]

EMBED_SCALE = 10.0  # --random-init: embedding scale that makes the random model's next-token distribution peaked


def _timed(fn):
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batches", default="1,16,64")
  parser.add_argument("--new-tokens", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--quick", action="store_true", help="batches 1,16, 16 new tokens, one timed call")
  parser.add_argument(
      "--random-init",
      action="store_true",
      help="SmolLM2-135M architecture with random weights and random prompt ids (no asset)",
  )
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--torch-device", default="", help="default: cuda if torch sees a GPU, else cpu")
  parser.add_argument(
      "--side",
      default="both",
      choices=("both", "ours", "torch"),
      help="time one side alone, in its own process (`ours` never imports torch)",
  )
  parser.add_argument(
      "--hbm-gbps",
      type=float,
      default=0.0,
      help="memory bandwidth (GB/s) for the batch-1 roofline line (weight bytes / bandwidth)",
  )
  args = parser.parse_args()
  if args.quick:
    args.batches, args.new_tokens, args.repeats = "1,16", 16, 1

  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave GPU memory to PyTorch too
  clock = time.perf_counter()
  import jax
  import numpy as np

  from exsearch_jax.models import DecoderConfig, from_pretrained, load_config
  from exsearch_jax.models.weight_layout import weight_specs
  from exsearch_jax.sampling import generate

  sides = ("ours", "torch") if args.side == "both" else (args.side,)
  if "torch" in sides:  # `--side ours` never imports torch
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    device = args.torch_device or ("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
  reference = None
  if args.random_init:
    config_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smollm2_135m_config.json")
    with open(config_path) as f:
      config = DecoderConfig.from_hf_dict(json.load(f), source=config_path, dtype=args.dtype, param_dtype=args.dtype)
    from train_step import random_init_pair  # benchmarks/ is this script's sys.path[0]

    make, reference = random_init_pair(
        config, seed=0, device="cpu", torch_side="torch" in sides, embed_scale=EMBED_SCALE
    )  # peaked logits, as a trained model's
    ours = make()
    rng = np.random.default_rng(0)  # the chat prompts' lengths are 30-50 tokens
    all_prompts = [rng.integers(3, config.vocab_size, int(rng.integers(30, 51))).tolist() for _ in QUESTIONS]
    pad = config.pad_token_id
  else:
    from exsearch_jax.assets import asset_path
    from exsearch_jax.models import load_tokenizer

    path = asset_path("smollm2-135m-instruct")
    config = load_config(path, dtype=args.dtype, param_dtype=args.dtype)
    ours = from_pretrained(path, dtype=args.dtype) if "ours" in sides else None
    tokenizer = load_tokenizer(path)
    if "torch" in sides:
      reference = transformers.AutoModelForCausalLM.from_pretrained(
          os.path.dirname(path), gguf_file=os.path.basename(path), dtype=getattr(torch, args.dtype)
      )
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
        for q in QUESTIONS
    ]
    all_prompts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
  n = args.new_tokens
  sampling = dict(temperature=0.8, top_p=0.95, top_k=0)
  header = (
      f"device: {jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()}), "
      f"jax {jax.__version__}"
  )
  if reference is not None:
    reference = reference.to(device).eval()
    torch_kind = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    header += (
        f", torch on {device} ({torch_kind}), torch threads {torch.get_num_threads()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )
  print(
      f"{header}; sides {'+'.join(sides)}; dtype {args.dtype}, {'random' if args.random_init else 'GGUF'} "
      f"weights; {n} new tokens per row, best of {args.repeats}; load average {os.getloadavg()[0]:.1f}; "
      f"models ready in {time.perf_counter() - clock:.1f}s"
  )
  if args.hbm_gbps:
    weight_bytes = (
        sum(int(np.prod(spec.hf_shape)) for spec in weight_specs(config)) * np.dtype(config.jnp_param_dtype).itemsize
    )
    print(
        f"roofline at batch 1: {weight_bytes / 1e6:.0f} MB of weights / {args.hbm_gbps:g} GB/s = "
        f"{weight_bytes / (args.hbm_gbps * 1e9) * 1e3:.3f} ms per token, <= "
        f"{args.hbm_gbps * 1e9 / weight_bytes:.0f} tokens/s"
    )
  print(
      f"{'batch':>5} {'ours tok/s':>11} {'torch tok/s':>12} {'ratio':>6} {'ours warm-up s':>15} "
      f"{'torch warm-up s':>16}",
      flush=True,
  )
  for batch in map(int, args.batches.split(",")):
    prompts = [all_prompts[i % len(all_prompts)] for i in range(batch)]
    calls = {}
    if "ours" in sides:

      def run_ours():
        out = generate(ours, prompts, n, eos_token_ids=[], seed=0, **sampling)
        assert all(len(o) == n for o in out)

      calls["ours"] = run_ours
    if "torch" in sides:
      width = max(len(p) for p in prompts)  # left-padded, as transformers generates a batch
      encoded = {
          "input_ids": torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=device),
          "attention_mask": torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device),
      }

      def run_torch():
        torch.manual_seed(0)
        with torch.no_grad():
          out = reference.generate(
              **encoded, do_sample=True, max_new_tokens=n, min_new_tokens=n, pad_token_id=pad, **sampling
          )
        sync()
        assert out.shape == (batch, width + n)

      calls["torch"] = run_torch

    warm = {key: _timed(fn) for key, fn in calls.items()}
    times = {key: [] for key in calls}
    for _ in range(args.repeats):  # alternating, so both see the same machine load
      for key, fn in calls.items():
        times[key].append(_timed(fn))
    tokens = batch * n
    rate = {key: tokens / min(t) for key, t in times.items()}
    ratio = rate["ours"] / rate["torch"] if len(calls) == 2 else None

    def f(value, width, fmt, suffix=""):
      return f"{'-':>{width}}" if value is None else f"{format(value, fmt) + suffix:>{width}}"

    print(
        f"{batch:>5} {f(rate.get('ours'), 11, '.0f')} {f(rate.get('torch'), 12, '.0f')} {f(ratio, 6, '.2f', 'x')} "
        f"{f(warm.get('ours'), 15, '.1f')} {f(warm.get('torch'), 16, '.1f')}",
        flush=True,
    )
  print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  main()
