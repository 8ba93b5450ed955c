"""Train-step tokens/s of our jitted M-step next to a PyTorch step of the same model and batch, same run.

  python benchmarks/train_step.py [--models smollm2,demo] [--shapes 4x256] [--repeats 7] [--single-thread]
                                  [--quick] [--random-init] [--dtype float32|bfloat16] [--f32-matmul tf32]
                                  [--torch-device cuda] [--peak-tflops 989] [--side both|ours|torch]

One step on both sides: weighted per-sequence-mean NLL over the loss-masked target tokens (divided by
the number of real rows), global-norm clipping at 1.0, AdamW (0.9, 0.999, eps 1e-8, no decay), same lr.
Ours is `Trainer.update` (one jit, donated state); PyTorch is a transformers `LlamaForCausalLM` with
`torch.optim.AdamW`. Both start from the same f32 weights: SmolLM2-135M from the dequantized GGUF asset,
the demo preset's tiny model from our random init copied over via `save_pretrained`.

Examples have random lengths (a few rows shorter than the width, so there is padding) and loss masks;
tokens/s counts real (non-pad) tokens. Steps are interleaved (ours, PyTorch, ours, ...) so a busy CPU
slows both alike; we report the median of `repeats` steps after two warm-up steps (ours: compilation)
and the range of the per-pair ratio. Threads: torch uses every core and XLA its default unless
`--single-thread` (the process pinned to one core, torch 1 thread, XLA single-threaded); on a machine
where other processes hold cores, multi-threaded steps of both libraries slow down a lot (PyTorch's
most), so compare both settings.

GPU: `--torch-device` (default cuda when torch sees one) puts the PyTorch model and batch there; every
timed step ends synchronised (ours: `block_until_ready`, PyTorch: `torch.cuda.synchronize`).
`--random-init` builds SmolLM2-135M from `smollm2_135m_config.json` (its GGUF config) with random
weights drawn like our init (`HostWeights`), copied to PyTorch via `save_pretrained`, so no asset is
needed (speed does not depend on the weights; both sides must still print the same first-step loss).
`--dtype bfloat16` runs both sides in pure bf16 (parameters, activations and AdamW state in bf16, as our
large presets; losses in f32). `--f32-matmul`
sets the float32 matmul precision of both sides alike: `tf32` (JAX's default on recent GPUs, PyTorch
`set_float32_matmul_precision("high")`) or `highest`; left out, each library keeps its own default
(PyTorch: full f32). MFU = 6 · parameters · tokens/s (real tokens; attention FLOPs and padding not
counted) over `--peak-tflops` (default: the dense bf16 datasheet peak where the device is known).
`--side ours|torch` times one side alone in its own process (`ours` never imports torch; run `torch` with
JAX_PLATFORMS=cpu so JAX only builds the weights), so a stall or crash of one side leaves the other's
numbers.
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np

# model -> default (rows, length) shapes
SHAPES = {"smollm2": "4x256,8x128", "demo": "32x256"}
DEMO_VOCAB = 1300  # the demo world's word tokenizer (the preset's 2048 is replaced by len(tokenizer))
LR = 1e-5
SMOLLM2_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smollm2_135m_config.json")
# dense bf16 peak TFLOP/s (datasheet, SXM) by device-kind substring; MFU is against these
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}


def make_examples(rows, length, vocab, seed=0):
  """`rows` examples of 50-100% of `length` (the first is full, so the packed width is `length`),
  each with the loss on a few spans, as the model's own writing in a trajectory."""
  from exsearch_jax.em.sequences import Example

  rng = np.random.default_rng(seed)
  out = []
  for i in range(rows):
    n = length if i == 0 else int(rng.integers(length // 2, length + 1))
    mask = np.zeros(n, bool)
    for start in rng.integers(n // 4, n, size=3):
      mask[start : start + int(rng.integers(8, 32))] = True
    out.append(
        Example(
            tuple(int(t) for t in rng.integers(0, vocab, n)), tuple(bool(m) for m in mask), float(rng.uniform(0.1, 1.0))
        )
    )
  return out


def torch_step(model, lr, eps=1e-8):
  """The PyTorch side: same loss, clipping and AdamW as `exsearch_jax.em.train_step`; returns step(batch).
  `.item()` of the loss and norm waits for the device, so a step is over when it returns."""
  import torch
  import torch.nn.functional as F

  optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=eps, weight_decay=0.0)

  def step(tokens, loss_mask, attention, weights):
    logits = model(input_ids=tokens[:, :-1], attention_mask=attention[:, :-1]).logits.float()
    nll = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten(), reduction="none").view(tokens.shape[0], -1)
    target = (loss_mask[:, 1:] & attention[:, 1:]).float()
    per_row = (nll * target).sum(1) / target.sum(1).clamp(min=1.0)
    loss = (weights * per_row).sum() / attention[:, 0].sum().clamp(min=1).float()
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": loss.item(), "grad_norm": grad_norm.item()}

  step.optimizer = optimizer  # for a checkpoint of the whole training state
  return step


def torch_batch(batch, device="cpu"):
  """Our (1, rows, length) packed batch as PyTorch tensors on `device`."""
  import torch

  return (
      torch.tensor(batch.tokens[0], dtype=torch.long, device=device),
      torch.tensor(batch.loss_mask[0], device=device),
      torch.tensor(batch.attention_mask[0], device=device),
      torch.tensor(batch.weights[0], device=device),
  )


def smollm2_config(dtype="float32"):
  """SmolLM2-135M's architecture (its GGUF config, saved as json) as a DecoderConfig."""
  from exsearch_jax.models import DecoderConfig

  with open(SMOLLM2_CONFIG) as f:
    return DecoderConfig.from_hf_dict(json.load(f), source=SMOLLM2_CONFIG, dtype=dtype, param_dtype=dtype)


class HostWeights:
  """Random weights drawn on the host with numpy, in HF layout: a tensor source for `build_from_tensors`.

  Same distribution as our init (N(0, initializer_range^2) kernels, unit norm scales, zero biases), without
  JAX's random numbers: written when `init_model` compiled one random-number fusion per weight (more than
  80 s on an H200 for SmolLM2-135M; the first GPU runs never got past it). `init_model` now compiles once
  per distinct shape, but that path has not run on a GPU yet, so the GPU check keeps this one."""

  def __init__(self, config, seed=0, embed_scale=1.0):
    from exsearch_jax.models.weight_layout import weight_specs

    rng = np.random.default_rng(seed)
    self.tensors = {}
    for spec in weight_specs(config):
      leaf = spec.path[-1]
      if leaf == "scale":
        value = np.ones(spec.hf_shape, np.float32)
      elif leaf.endswith("_bias"):
        value = np.zeros(spec.hf_shape, np.float32)
      else:
        value = rng.standard_normal(spec.hf_shape, np.float32) * np.float32(config.initializer_range)
      self.tensors[spec.hf_name] = value * np.float32(embed_scale) if leaf == "embed" else value

  def __contains__(self, name):
    return name in self.tensors

  def shape(self, name):
    return self.tensors[name].shape

  def get(self, name):
    return self.tensors[name]

  def describe(self, name):
    return f"random host weights ({name})"


def random_init_pair(config, seed=0, device="cpu", torch_side=True, embed_scale=1.0, host=True):
  """(a function making our model with random host weights, or with `init_model` unless `host`, the
  transformers model with the same weights, or None without `torch_side`)."""
  from exsearch_jax.models import init_model, save_pretrained
  from exsearch_jax.models.loading import build_from_tensors

  if host:
    weights = HostWeights(config, seed, embed_scale)
    make = lambda: build_from_tensors(config, weights)  # noqa: E731
  else:
    make = lambda: init_model(config, seed=seed)  # noqa: E731
  if not torch_side:
    return make, None
  import torch
  from transformers import LlamaForCausalLM

  with tempfile.TemporaryDirectory() as directory:
    save_pretrained(make(), directory)
    reference = LlamaForCausalLM.from_pretrained(directory, dtype=getattr(torch, config.param_dtype))
  return make, reference.to(device)


def load_models(name, random_init=False, dtype="float32", device="cpu", torch_side=True):
  """(a function making our model, the transformers model on `device` or None without `torch_side`, the
  config) with the same weights in `dtype`."""
  from exsearch_jax.models import DecoderConfig, from_pretrained, load_config

  if name == "smollm2" and random_init:
    config = smollm2_config(dtype)
    return (*random_init_pair(config, device=device, torch_side=torch_side), config)
  if name == "smollm2":
    from exsearch_jax.assets import asset_path

    path = asset_path("smollm2-135m-instruct")
    reference = None
    if torch_side:
      import torch
      from transformers import AutoModelForCausalLM

      reference = AutoModelForCausalLM.from_pretrained(
          os.path.dirname(path), gguf_file=os.path.basename(path), dtype=getattr(torch, dtype)
      ).to(device)
    return lambda: from_pretrained(path, dtype=dtype), reference, load_config(path, dtype=dtype, param_dtype=dtype)
  if name == "demo":
    from exsearch_jax.config import get_config

    config = DecoderConfig(
        **{**get_config("demo").model.init.to_dict(), "vocab_size": DEMO_VOCAB, "dtype": dtype, "param_dtype": dtype}
    )
    return (*random_init_pair(config, device=device, torch_side=torch_side, host=False), config)
  raise ValueError(f"unknown model {name!r}; choose from {sorted(SHAPES)}")


def count_parameters(config):
  """Parameters of the model (tied embeddings once), from the weight table."""
  from exsearch_jax.models.weight_layout import weight_specs

  return sum(int(np.prod(spec.hf_shape)) for spec in weight_specs(config))


def peak_tflops(device_kind):
  """The dense bf16 datasheet peak of a known device kind, else None."""
  return next((v for k, v in PEAK_BF16_TFLOPS.items() if k.lower() in device_kind.lower()), None)


def run(
    name, shapes, repeats, warmup=2, log=print, random_init=False, dtype="float32", device="cpu", peak=None, side="both"
):
  """Rows of (model, shape, real tokens, ours tok/s, torch tok/s, ratio, min and max ratio of a step pair,
  first-step losses ours and torch, MFU ours and torch (None without a peak), first-step seconds ours (with
  compilation) and torch). `side` "ours" or "torch" times one side alone (the other's entries are None)."""
  from exsearch_jax.em.sequences import pack

  sides = ("ours", "torch") if side == "both" else (side,)
  clock = time.perf_counter()
  make_ours, reference, config = load_models(name, random_init, dtype, device, torch_side="torch" in sides)
  n_params = count_parameters(config)
  log(
      f"{name}: {n_params / 1e6:.2f}M parameters, {dtype}, sides {'+'.join(sides)}, torch on {device}; "
      f"models ready in {time.perf_counter() - clock:.1f}s"
  )
  if reference is not None:
    import torch

    initial = {k: v.clone() for k, v in reference.state_dict().items()}
    reference.train()
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
  rows_out = []
  for shape in shapes:  # each shape starts from the initial weights with fresh optimizer state
    rows, length = map(int, shape.split("x"))
    batch = pack(make_examples(rows, length, config.vocab_size), 1, rows, length)
    tokens = batch.real_tokens
    steps = {}
    if "ours" in sides:
      import jax

      from exsearch_jax.em.train_step import Trainer, make_optimizer

      trainer = Trainer(make_ours(), make_optimizer(grad_clip=1.0), None)

      def ours_step():
        metrics = trainer.update(batch, LR)
        jax.block_until_ready(trainer.state.params)
        return metrics

      steps["ours"] = ours_step
    if "torch" in sides:
      reference.load_state_dict(initial)
      step_t = torch_step(reference, LR)
      batch_t = torch_batch(batch, device)

      def torch_one():
        metrics = step_t(*batch_t)
        sync()
        return metrics

      steps["torch"] = torch_one

    first, warm = {}, {}
    for key, fn in steps.items():
      start = time.perf_counter()
      first[key] = fn()["loss"]
      warm[key] = time.perf_counter() - start
    for _ in range(warmup - 1):
      for fn in steps.values():
        fn()
    times = {key: [] for key in steps}
    for _ in range(repeats):  # interleaved, so a busy machine slows both alike
      for key, fn in steps.items():
        start = time.perf_counter()
        fn()
        times[key].append(time.perf_counter() - start)
    median = {key: statistics.median(t) for key, t in times.items()}
    rate = {key: tokens / t for key, t in median.items()}
    pairs = [b / a for a, b in zip(times["ours"], times["torch"])] if len(steps) == 2 else [None]
    mfu = {key: 6 * n_params * r / (peak * 1e12) if peak else None for key, r in rate.items()}
    ratio = median["torch"] / median["ours"] if len(steps) == 2 else None
    row = (
        name,
        shape,
        tokens,
        rate.get("ours"),
        rate.get("torch"),
        ratio,
        min(pairs),
        max(pairs),
        first.get("ours"),
        first.get("torch"),
        mfu.get("ours"),
        mfu.get("torch"),
        warm.get("ours"),
        warm.get("torch"),
    )

    def f(value, width, fmt, scale=1.0, suffix=""):
      return f"{'-':>{width}}" if value is None else f"{format(value * scale, fmt) + suffix:>{width}}"

    mfu_text = f" {f(row[10], 8, '.2f', 100, '%')} {f(row[11], 9, '.2f', 100, '%')}" if peak else ""
    pair_range = f"{row[6]:5.2f}-{row[7]:<5.2f}" if ratio else "-"
    log(
        f"{name:>8} {shape:>7} {tokens:>7} {f(row[3], 10, '.1f')} {f(row[4], 11, '.1f')} "
        f"{f(ratio, 6, '.2f', 1, 'x')} {pair_range:>11} {f(row[8], 9, '.4f')} {f(row[9], 10, '.4f')}{mfu_text} "
        f"{f(row[12], 7, '.1f')} {f(row[13], 7, '.1f')}"
    )
    rows_out.append(row)
    steps.clear()
    trainer = step_t = batch_t = None  # noqa: F841  (free this shape's state before the next)
  return rows_out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--models", default="smollm2,demo", help="comma list of: " + ",".join(SHAPES))
  parser.add_argument("--shapes", default="", help="rows x length list for every model, e.g. 4x256,8x128")
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument(
      "--single-thread",
      action="store_true",
      help="the process pinned to one core, torch 1 thread, XLA single-threaded: like for like",
  )
  parser.add_argument(
      "--quick", action="store_true", help="demo model (with --random-init: SmolLM2-135M), 8x128, 3 timed steps"
  )
  parser.add_argument(
      "--random-init", action="store_true", help="SmolLM2-135M architecture with random weights (no GGUF asset needed)"
  )
  parser.add_argument(
      "--dtype", default="float32", choices=("float32", "bfloat16"), help="parameters and compute of both sides"
  )
  parser.add_argument(
      "--f32-matmul",
      default="",
      choices=("", "tf32", "highest"),
      help="float32 matmul precision of both sides (default: each library's own)",
  )
  parser.add_argument("--torch-device", default="", help="default: cuda if torch sees a GPU, else cpu")
  parser.add_argument(
      "--side",
      default="both",
      choices=("both", "ours", "torch"),
      help="time one side alone, in its own process (`ours` never imports torch)",
  )
  parser.add_argument(
      "--peak-tflops",
      type=float,
      default=0.0,
      help="peak TFLOP/s for MFU (default: dense bf16 datasheet peak of a known GPU, else no MFU)",
  )
  args = parser.parse_args()
  if args.quick:
    args.models, args.shapes, args.repeats = "smollm2" if args.random_init else "demo", args.shapes or "8x128", 3

  os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF de-quantization progress bar
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave GPU memory to PyTorch too
  if args.single_thread:  # before jax starts its CPU client
    # XLA's flags alone no longer keep it on one core (its 2-D dots ran on both), so pin the whole process
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
  import jax

  if args.f32_matmul:
    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if args.f32_matmul == "tf32" else "highest")
  kind = jax.devices()[0].device_kind
  peak = args.peak_tflops or peak_tflops(kind)
  threads = "one core, XLA single-threaded" if args.single_thread else "XLA default threads"
  header = (
      f"device: {kind} x{jax.device_count()} ({jax.default_backend()}), {threads}, jax {jax.__version__}, "
      f"dtype {args.dtype}, f32 matmul {args.f32_matmul or 'library defaults'}"
  )
  device = "-"
  if args.side != "ours":  # `--side ours` never imports torch
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    device = args.torch_device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.f32_matmul:
      torch.set_float32_matmul_precision("high" if args.f32_matmul == "tf32" else "highest")
    torch.set_num_threads(1 if args.single_thread else os.cpu_count() or 1)
    torch_kind = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    header += (
        f", torch on {device} ({torch_kind}), torch threads {torch.get_num_threads()}, torch "
        f"{torch.__version__} (f32 matmul {torch.get_float32_matmul_precision()}), "
        f"transformers {transformers.__version__}"
    )
  print(
      f"{header}; median of {args.repeats} interleaved steps, lr {LR}" + (f"; MFU vs {peak:g} TFLOP/s" if peak else "")
  )
  mfu_head = f" {'MFU ours':>8} {'MFU torch':>9}" if peak else ""
  print(
      f"{'model':>8} {'shape':>7} {'tokens':>7} {'ours tok/s':>10} {'torch tok/s':>11} {'ratio':>6} "
      f"{'pair range':>11} {'loss ours':>9} {'loss torch':>10}{mfu_head} {'1st s':>7} {'1st s t':>7}",
      flush=True,
  )
  for name in args.models.split(","):
    run(
        name,
        (args.shapes or SHAPES[name]).split(","),
        args.repeats,
        random_init=args.random_init,
        dtype=args.dtype,
        device=device,
        peak=peak,
        side=args.side,
        log=lambda line: print(line, flush=True),
    )


if __name__ == "__main__":
  main()
