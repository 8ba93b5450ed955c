"""Where one SmolLM2 prefill or decode round spends its time, by XLA CPU kernel, grouped by what the kernel does.

  python benchmarks/profile_session.py [--call extend|decode] [--rows 128] [--held 150] [--new 100] [--steps 8]
                                       [--capacity 1024]

A `DecodeSession` of `--rows` rows and `--capacity` slots holds random prompts of `--held` tokens; the call
profiled is compiled first (an identical call before it), then traced once: `--call extend` appends `--new`
random tokens to every row, `--call decode` runs a round of `--steps` greedy tokens. The trace comes from
`jax.profiler` with XLA's per-kernel trace events on (`--xla_cpu_enable_xprof_traceme`), and every kernel is
named by the optimised HLO of the call (dumped to a temporary directory): dense matmuls (against the model's
weights), other dots (attention), and every other kernel by its kind (slices, copies, scatters, ...). Kernel
times are summed over the threads that ran them, so the total exceeds the call's wall time where independent
kernels overlapped: read the shares, not the sums.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# trace events that are not XLA kernels (the executor, thread pools, dispatch, Python)
SKIPPED = ("$", "end:", "Thunk", "Slinky", "Pjit", "Common", "Handle", "Parse", "Device", "Wait", "Threadpool", "Py")


def _optimised_hlo(dump_dir: str, program: str) -> set:
  return set(glob.glob(os.path.join(dump_dir, f"*jit_{program}.cpu_after_optimizations.txt")))


def _hlo_lines(files: set) -> dict:
  """Instruction name -> its line in the optimised HLO of the one module in `files` (the program traced)."""
  if len(files) != 1:
    raise SystemExit(f"expected one newly compiled program before the traced call, got {sorted(files)}")
  lines = {}
  with open(files.pop(), encoding="utf-8") as f:
    for line in f:
      match = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = ", line)
      if match:
        lines[match.group(1)] = line
  return lines


def _kind(name: str, hlo_line: str) -> str:
  if name.startswith(("ynn_fusion", "dot")):
    # weights are parameters named after their path (or loop-carried in a decode round's while loop)
    return "dense matmul" if "state__" in hlo_line else "other dot (attention; in a loop: all dots)"
  return re.sub(r"[.\d]+$", "", name)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--call", choices=("extend", "decode"), default="extend")
  parser.add_argument("--rows", type=int, default=128)
  parser.add_argument("--held", type=int, default=150)
  parser.add_argument("--new", type=int, default=100)
  parser.add_argument("--steps", type=int, default=8)
  parser.add_argument("--capacity", type=int, default=1024)
  args = parser.parse_args()
  dump_dir, trace_dir = tempfile.mkdtemp(prefix="profile_session_hlo_"), tempfile.mkdtemp(prefix="profile_session_")
  try:
    _profile(args, dump_dir, trace_dir)
  finally:  # the HLO dumps and the trace run to ~100 MB
    shutil.rmtree(dump_dir, ignore_errors=True)
    shutil.rmtree(trace_dir, ignore_errors=True)


def _profile(args, dump_dir: str, trace_dir: str):
  os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_enable_xprof_traceme=true --xla_dump_to={dump_dir}"
      " --xla_dump_hlo_as_text --xla_dump_hlo_pass_re=^$"
  )
  import jax
  import numpy as np

  from exsearch_jax.assets import asset_path
  from exsearch_jax.models import from_pretrained
  from exsearch_jax.sampling import engine, shapes

  model = from_pretrained(asset_path("smollm2-135m-instruct"))
  vocab = model.config.vocab_size
  rng = np.random.default_rng(0)
  tokens = lambda width: rng.integers(100, vocab, (args.rows, width)).tolist()  # noqa: E731
  session = engine.DecodeSession(model, args.rows, args.capacity, seeds=list(range(args.rows)))
  session.start(tokens(args.held))

  def call():
    if args.call == "extend":
      session.extend(tokens(args.new))
    else:
      session.decode([args.steps] * args.rows)
    jax.block_until_ready(session.cache)

  if args.call == "decode":
    session.extend(tokens(args.new))
  before = _optimised_hlo(dump_dir, args.call)
  call()  # compiles the call traced below (the same window and width)
  compiled = _optimised_hlo(dump_dir, args.call) - before
  held = int(session.lengths.max())
  if args.call == "extend":  # the window the engine picks for the call, as `DecodeSession` computes it
    width = shapes.prefill_width(args.new)
    window = shapes.prefill_kwargs(held, width, held + args.new, session.capacity)["window"]
  else:
    window = shapes.attention_window(held + args.steps, session.capacity)
  options = jax.profiler.ProfileOptions()
  options.python_tracer_level = 0
  begin = time.perf_counter()
  with jax.profiler.trace(trace_dir, profiler_options=options):
    call()
  wall = time.perf_counter() - begin
  print(f"{args.call}: {args.rows} rows holding {held} tokens, attention window {window}: {wall:.2f} s")

  with gzip.open(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)[0]) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  hlo = _hlo_lines(compiled)
  seconds: collections.Counter = collections.Counter()
  counts: collections.Counter = collections.Counter()
  for event in events:
    if event.get("ph") != "X" or event["name"].startswith(SKIPPED) or event["name"] == "while":
      continue
    kind = _kind(event["name"], hlo.get(event["name"], ""))
    seconds[kind] += event["dur"] / 1e6
    counts[kind] += 1
  total = sum(seconds.values())
  print("\n| kernels | seconds | share | count |\n|---|---|---|---|")
  for kind, value in seconds.most_common(12):
    print(f"| {kind} | {value:.2f} | {100 * value / total:.1f}% | {counts[kind]} |")
  print(f"| all kernels (summed over threads) | {total:.2f} | 100% | {sum(counts.values())} |")


if __name__ == "__main__":
  main()
