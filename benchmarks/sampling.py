"""Sampling tokens/s for SmolLM2-135M-Instruct next to transformers PyTorch `generate`, same device, same run.

  python benchmarks/sampling.py [--batches 1,16,64] [--new-tokens 64] [--repeats 3] [--quick]
                                [--mixes short,chat60,search,mixed] [--random-init]
                                [--dtype float32|bfloat16] [--torch-device cuda]
                                [--side both|ours|torch] [--hbm-gbps 4800]

Prompt-length mixes (`--mixes`, one table row per mix and batch; prompts are cycled to fill a batch):
`short`, 8 one-line chat questions (37-45 tokens with SmolLM2's template); `chat60`, 16 distinct longer
questions (about 55-70 tokens); `search`, 16 questions each followed by a search turn of 3-10 passages of the
demo world (about 100-300 tokens, the shape of a rollout's later turns); `mixed`, all three interleaved in one
batch, so most rows are padded. Both sides continue the same chat prompts (PyTorch left-pads) with temperature 0.8,
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

CHAT60 = [
    "In which year did the first person walk on the surface of the Moon, and which space agency organised "
    "that mission?",
    "Which author wrote the novel about a white whale and the captain who hunts it across the oceans of the " "world?",
    "What is the name of the longest river in South America, and through which countries does it flow "
    "before reaching the sea?",
    "Who painted the ceiling of the Sistine Chapel in Rome, and how many years did the work on it take?",
    "Which chemical element has the atomic number six, and in which two common forms does it occur in " "nature?",
    "What was the name of the ship that sank in the North Atlantic in April 1912 after striking an iceberg "
    "on its first voyage?",
    "Which composer wrote nine symphonies and continued to compose music after he had lost nearly all of his "
    "hearing?",
    "What is the capital city of Australia, and why was it chosen instead of Sydney or Melbourne when the "
    "country was formed?",
    "Which mountain range separates the Iberian Peninsula from the rest of Europe, and what is its highest "
    "peak called?",
    "Who developed the theory of general relativity, and in which year was it first presented to the public "
    "in Berlin?",
    "Which organ of the human body produces insulin, and what happens to blood sugar when it stops doing so?",
    "What is the largest desert in the world by area, and on which continent is it located according to most "
    "geographers?",
    "Which scientist discovered penicillin in a London laboratory, and what did he notice on the dish that "
    "led to it?",
    "In which city were the first modern Olympic Games held, and how many countries sent athletes to those " "games?",
    "Which famous bridge in San Francisco opened in 1937, and what colour is it painted to be seen in the " "fog?",
    "What language has the largest number of native speakers in the world, and in which countries is it an "
    "official language?",
]
MIXES = ("short", "chat60", "search", "mixed")
RANDOM_LENGTHS = {"short": (30, 51), "chat60": (55, 71), "search": (100, 301)}  # --random-init: token counts

EMBED_SCALE = 10.0  # --random-init: embedding scale that makes the random model's next-token distribution peaked


def _search_turns() -> list:
  """16 chats of a question and a search turn of 3-10 passages from the demo world (a rollout's later turns)."""
  import random

  from exsearch_jax.data import world as W

  world = W.make_world(0, "demo")
  rng = random.Random(0)
  chats = []
  for i, question in enumerate(world.splits["dev"][:16]):
    passages = rng.sample(world.passages, 3 + i % 8)
    shown = "\n".join(f"[{j + 1}] Title: {p['title']}. Content: {p['text']}" for j, p in enumerate(passages))
    chats.append(
        [
            {"role": "user", "content": question["question"]},
            {"role": "assistant", "content": f"<QUERY> {question['question']}"},
            {"role": "user", "content": f"<SEARCH> {shown}"},
        ]
    )
  return chats


def _timed(fn):
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batches", default="1,16,64")
  parser.add_argument("--new-tokens", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--quick", action="store_true", help="batches 1,16, 16 new tokens, one timed call, short")
  parser.add_argument("--mixes", default=",".join(MIXES), help=f"prompt-length mixes, of {', '.join(MIXES)}")
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
    args.batches, args.new_tokens, args.repeats, args.mixes = "1,16", 16, 1, "short"
  mixes = args.mixes.split(",")
  if not mixes or any(m not in MIXES for m in mixes):
    parser.error(f"--mixes={args.mixes}: choose among {', '.join(MIXES)}")

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
    rng = np.random.default_rng(0)  # random ids with each mix's prompt lengths
    by_mix = {
        mix: [rng.integers(3, config.vocab_size, int(rng.integers(*span))).tolist() for _ in range(16)]
        for mix, span in RANDOM_LENGTHS.items()
    }
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

    def encode(messages):
      text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
      return tokenizer(text, add_special_tokens=False)["input_ids"]

    by_mix = {
        "short": [encode([{"role": "user", "content": q}]) for q in QUESTIONS],
        "chat60": [encode([{"role": "user", "content": q}]) for q in CHAT60],
        "search": [encode(m) for m in _search_turns()],
    }
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
  by_mix["mixed"] = [p for triple in zip(*(by_mix[m] for m in ("short", "chat60", "search"))) for p in triple]
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
      f"{'mix':>6} {'tokens':>7} {'batch':>5} {'ours tok/s':>11} {'torch tok/s':>12} {'ratio':>6} "
      f"{'ours warm-up s':>15} {'torch warm-up s':>16}",
      flush=True,
  )
  for mix, batch in ((m, int(b)) for m in mixes for b in args.batches.split(",")):
    prompts = [by_mix[mix][i % len(by_mix[mix])] for i in range(batch)]
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
        f"{mix:>6} {min(map(len, prompts)):>3}-{max(map(len, prompts)):<3} {batch:>5} "
        f"{f(rate.get('ours'), 11, '.0f')} {f(rate.get('torch'), 12, '.0f')} {f(ratio, 6, '.2f', 'x')} "
        f"{f(warm.get('ours'), 15, '.1f')} {f(warm.get('torch'), 16, '.1f')}",
        flush=True,
    )
  print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  main()
