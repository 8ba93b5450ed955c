"""Sampling tokens/s for SmolLM2-135M-Instruct next to transformers PyTorch `generate`, same CPU, same run.

  python benchmarks/sampling.py [--batches 1,16,64] [--new-tokens 64] [--repeats 3] [--quick]

Both sides continue the same chat prompts (different lengths; PyTorch left-pads) with temperature 0.8,
top-p 0.95, no top-k, from the same dequantized GGUF weights in float32, and write exactly `new-tokens`
tokens per row (end-of-sequence disabled: PyTorch `min_new_tokens`, ours `eos_token_ids=[]`), so both
count the same tokens. A timed call is the whole `generate` (prefill included); we report the best of
`repeats` calls after one warm-up call, and the warm-up (JAX: compilation) separately. Timed calls
alternate between the two sides so both see the same machine load; the load average is printed,
because a busy machine hurts PyTorch's two OpenMP threads far more than XLA's (pin both to one core
with `taskset -c 0` for a fair comparison on a shared machine).
"""
import argparse
import os
import time

QUESTIONS = ["What is the capital of France?", "Who wrote the play Romeo and Juliet?",
             "Explain in detail how a search engine decides which web pages to show first.",
             "Which planet is known as the Red Planet?", "What gas do plants absorb from the air?",
             "Write a short story about a robot who learns to paint.", "How do vaccines train the immune system?",
             "Name three rivers in Africa and the countries they flow through."]


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
  args = parser.parse_args()
  if args.quick:
    args.batches, args.new_tokens, args.repeats = "1,16", 16, 1

  import jax
  import torch
  from transformers import AutoModelForCausalLM

  from exsearch_jax.assets import asset_path
  from exsearch_jax.models import from_pretrained, load_tokenizer
  from exsearch_jax.sampling import generate

  path = asset_path("smollm2-135m-instruct")
  ours = from_pretrained(path)
  tokenizer = load_tokenizer(path)
  reference = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                   dtype=torch.float32).eval()
  texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                         tokenize=False) for q in QUESTIONS]
  n = args.new_tokens
  sampling = dict(temperature=0.8, top_p=0.95, top_k=0)
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, torch threads {torch.get_num_threads()}, "
        f"jax {jax.__version__}, torch {torch.__version__}; {n} new tokens per row, best of {args.repeats}; "
        f"load average {os.getloadavg()[0]:.1f}")
  print(f"{'batch':>5} {'ours tok/s':>11} {'torch tok/s':>12} {'ratio':>6} {'ours warm-up s':>15} "
        f"{'torch warm-up s':>16}")
  for batch in map(int, args.batches.split(",")):
    rows = [texts[i % len(texts)] for i in range(batch)]
    prompts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in rows]

    def run_ours():
      out = generate(ours, prompts, n, eos_token_ids=[], seed=0, **sampling)
      assert all(len(o) == n for o in out)

    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = tokenizer(rows, add_special_tokens=False, padding=True, return_tensors="pt")

    def run_torch():
      torch.manual_seed(0)
      with torch.no_grad():
        out = reference.generate(**encoded, do_sample=True, max_new_tokens=n, min_new_tokens=n,
                                 pad_token_id=pad, **sampling)
      assert out.shape == (batch, encoded["input_ids"].shape[1] + n)

    warm_ours, warm_torch = _timed(run_ours), _timed(run_torch)
    times = [(_timed(run_ours), _timed(run_torch)) for _ in range(args.repeats)]
    t_ours, t_torch = min(t for t, _ in times), min(t for _, t in times)
    tokens = batch * n
    print(f"{batch:>5} {tokens / t_ours:>11.0f} {tokens / t_torch:>12.0f} {t_torch / t_ours:>5.2f}x "
          f"{warm_ours:>15.1f} {warm_torch:>16.1f}", flush=True)
  print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  main()
