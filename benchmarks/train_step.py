"""Train-step tokens/s of our jitted M-step next to a PyTorch step of the same model and batch, same run.

  python benchmarks/train_step.py [--models smollm2,demo] [--shapes 4x256] [--repeats 7] [--single-thread]
                                  [--quick]

One step on both sides: weighted per-sequence-mean NLL over the loss-masked target tokens (divided by
the number of real rows), global-norm clipping at 1.0, AdamW (0.9, 0.999, eps 1e-8, no decay), same lr.
Ours is `Trainer.update` (one jit, donated state); PyTorch is a transformers `LlamaForCausalLM` with
`torch.optim.AdamW`. Both start from the same f32 weights: SmolLM2-135M from the dequantized GGUF asset,
the demo preset's tiny model from our random init copied over via `save_pretrained`.

Examples have random lengths (a few rows shorter than the width, so there is padding) and loss masks;
tokens/s counts real (non-pad) tokens. Steps are interleaved (ours, PyTorch, ours, ...) so a busy CPU
slows both alike; we report the median of `repeats` steps after two warm-up steps (ours: compilation)
and the range of the per-pair ratio. Threads: torch uses every core and XLA its default unless
`--single-thread`; on a machine where other processes hold cores, multi-threaded steps of both libraries
slow down a lot (PyTorch's most), so compare both settings.
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np

# model -> default (rows, length) shapes
SHAPES = {"smollm2": "4x256,8x128", "demo": "32x256"}
DEMO_VOCAB = 1300  # the demo world's word tokenizer (the preset's 2048 is replaced by len(tokenizer))
LR = 1e-5


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
      mask[start:start + int(rng.integers(8, 32))] = True
    out.append(Example(tuple(int(t) for t in rng.integers(0, vocab, n)), tuple(bool(m) for m in mask),
                       float(rng.uniform(0.1, 1.0))))
  return out


def torch_step(model, lr):
  """The PyTorch side: same loss, clipping and AdamW as `exsearch_jax.em.train_step`; returns step(batch)."""
  import torch
  import torch.nn.functional as F
  optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

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

  return step


def torch_batch(batch):
  """Our (1, rows, length) packed batch as PyTorch tensors."""
  import torch
  return (torch.tensor(batch.tokens[0], dtype=torch.long), torch.tensor(batch.loss_mask[0]),
          torch.tensor(batch.attention_mask[0]), torch.tensor(batch.weights[0]))


def load_models(name):
  """(a function making our model, the transformers model) with the same f32 weights."""
  import torch
  from transformers import AutoModelForCausalLM, LlamaForCausalLM

  from exsearch_jax.models import DecoderConfig, from_pretrained, init_model, save_pretrained
  if name == "smollm2":
    from exsearch_jax.assets import asset_path
    path = asset_path("smollm2-135m-instruct")
    reference = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                     dtype=torch.float32)
    return lambda: from_pretrained(path), reference
  if name == "demo":
    from exsearch_jax.config import get_config
    config = DecoderConfig(**{**get_config("demo").model.init.to_dict(), "vocab_size": DEMO_VOCAB})
    with tempfile.TemporaryDirectory() as directory:
      save_pretrained(init_model(config, seed=0), directory)
      reference = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32)
    return lambda: init_model(config, seed=0), reference
  raise ValueError(f"unknown model {name!r}; choose from {sorted(SHAPES)}")


def run(name, shapes, repeats, warmup=2, log=print):
  """Rows of (model, shape, real tokens, ours tok/s, torch tok/s, ratio, min and max ratio of a step pair,
  first-step losses ours and torch)."""
  import jax

  from exsearch_jax.em.sequences import pack
  from exsearch_jax.em.train_step import Trainer, make_optimizer
  make_ours, reference = load_models(name)
  initial = {k: v.clone() for k, v in reference.state_dict().items()}
  reference.train()
  rows_out = []
  for shape in shapes:  # each shape starts from the initial weights with fresh optimizer state
    rows, length = map(int, shape.split("x"))
    reference.load_state_dict(initial)
    trainer = Trainer(make_ours(), make_optimizer(grad_clip=1.0), None)
    step_t = torch_step(reference, LR)
    batch = pack(make_examples(rows, length, reference.config.vocab_size), 1, rows, length)
    batch_t = torch_batch(batch)
    tokens = batch.real_tokens

    def ours_step():
      metrics = trainer.update(batch, LR)
      jax.block_until_ready(trainer.state.params)
      return metrics

    first = (ours_step(), step_t(*batch_t))
    for _ in range(warmup - 1):
      ours_step(), step_t(*batch_t)
    times = ([], [])
    for _ in range(repeats):
      for fn, out in ((ours_step, times[0]), (lambda: step_t(*batch_t), times[1])):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    t_ours, t_torch = statistics.median(times[0]), statistics.median(times[1])
    pairs = [b / a for a, b in zip(*times)]
    row = (name, shape, tokens, tokens / t_ours, tokens / t_torch, t_torch / t_ours, min(pairs), max(pairs),
           first[0]["loss"], first[1]["loss"])
    log(f"{name:>8} {shape:>7} {tokens:>7} {row[3]:>10.1f} {row[4]:>11.1f} {row[5]:>5.2f}x "
        f"{row[6]:>5.2f}-{row[7]:<5.2f} {row[8]:>9.4f} {row[9]:>10.4f}")
    rows_out.append(row)
  return rows_out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--models", default="smollm2,demo", help="comma list of: " + ",".join(SHAPES))
  parser.add_argument("--shapes", default="", help="rows x length list for every model, e.g. 4x256,8x128")
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--single-thread", action="store_true",
                      help="torch 1 thread and XLA single-threaded: like for like when other work holds cores")
  parser.add_argument("--quick", action="store_true", help="demo model, 8x128, 3 timed steps")
  args = parser.parse_args()
  if args.quick:
    args.models, args.shapes, args.repeats = "demo", args.shapes or "8x128", 3

  os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF de-quantization progress bar
  if args.single_thread:  # before jax starts its CPU client
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
  import jax
  import torch
  import transformers
  transformers.logging.set_verbosity_error()
  transformers.utils.logging.disable_progress_bar()
  torch.set_num_threads(1 if args.single_thread else os.cpu_count() or 1)
  threads = "XLA single-threaded" if args.single_thread else "XLA default threads"
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, torch threads {torch.get_num_threads()}, "
        f"{threads}, jax {jax.__version__}, torch {torch.__version__}; "
        f"median of {args.repeats} interleaved steps, lr {LR}")
  print(f"{'model':>8} {'shape':>7} {'tokens':>7} {'ours tok/s':>10} {'torch tok/s':>11} {'ratio':>6} "
        f"{'pair range':>11} {'loss ours':>9} {'loss torch':>10}")
  for name in args.models.split(","):
    run(name, (args.shapes or SHAPES[name]).split(","), args.repeats)


if __name__ == "__main__":
  main()
