#!/usr/bin/env bash
# One GPU check in one call: versions, the matmul / copy ceilings, the train-step benchmark (f32 with TF32
# matmuls, then bf16), the sampling benchmark (f32), the train-step equality test with JAX on the GPU, and
# both benchmark sides in one process.
#
#   bash benchmarks/gpu_check.sh          # from the repository root; logs to $OUT/log when OUT is set
#
# Runs on the bare device image (python3 with jax[cuda], flax, optax, torch, transformers): no assets
# (`--random-init`, SmolLM2-135M architecture), no packages beyond the image's, except the EM-iteration stage,
# which needs ml-collections and bm25s: wheels in .whl/ (carried; `pip download --no-deps -d .whl
# ml-collections bm25s`) are installed into /tmp/site first, and without them that stage fails alone. Stages run in order of
# priority, each under `timeout`, and all of them within GPU_CHECK_SECONDS (default 330): a stage that
# would start with less than 20 s left is skipped, so one hung stage never eats the whole call; a stage
# stopped at its limit gets SIGABRT, so Python's faulthandler prints where every thread was.
# GPU_CHECK_QUICK=1 shrinks every stage (a dry run of the script itself, e.g. on a CPU),
# GPU_CHECK_LIMIT_SCALE multiplies every stage's limit (a slow CPU needs minutes to compile SmolLM2), and
# GPU_CHECK_CEILINGS=0 skips the ceilings.
set -o pipefail
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1 TQDM_DISABLE=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # where JAX and PyTorch share the GPU in one process
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
LOGDIR=${OUT:-/tmp/gpu_check}
mkdir -p "$LOGDIR"
LOG="$LOGDIR/log"
: >"$LOG"
START=$(date +%s)
DEADLINE=$((START + ${GPU_CHECK_SECONDS:-330}))
QUICK=${GPU_CHECK_QUICK:-0}

# stage NAME LIMIT_S CMD...: runs CMD under timeout (limit or what is left), logs rc and wall time.
stage() {
  local name=$1 limit=$(($2 * ${GPU_CHECK_LIMIT_SCALE:-1}))
  shift 2
  local left=$((DEADLINE - $(date +%s)))
  if [ "$left" -lt 20 ]; then
    echo "=== [$name] SKIPPED: ${left}s left" | tee -a "$LOG"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== [$name] start (limit ${limit}s, t=$(($(date +%s) - START))s): $*" | tee -a "$LOG"
  local t0 rc
  t0=$(date +%s)
  timeout -s ABRT -k 5 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=$?
  echo "=== [$name] rc=$rc wall=$(($(date +%s) - t0))s$([ "$rc" = 124 ] && echo ' TIMED OUT')" | tee -a "$LOG"
}

# HBM bandwidth for the decode roofline (datasheet): H200 4.8 TB/s, H100 SXM 3.35 TB/s
case "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null)" in
  *H100*) HBM_GBPS=3350 ;;
  *) HBM_GBPS=4800 ;;
esac
if [ "$QUICK" = 1 ]; then
  TRAIN_SHAPES=2x64 BF16_SHAPES=2x64 TRAIN_REPEATS=1
  SAMPLE_BATCHES=1,2 SAMPLE_TOKENS=8 SAMPLE_REPEATS=1 EM_ITERATION=(--quick)
else
  TRAIN_SHAPES=8x512,32x512,16x1024 BF16_SHAPES=32x512,16x1024 TRAIN_REPEATS=5
  SAMPLE_BATCHES=1,16,64,256 SAMPLE_TOKENS=64 SAMPLE_REPEATS=2
  EM_ITERATION=(--questions 32 --samples 4 --max-steps 4 --reference-questions 2 --mstep-steps 4)
fi

stage env 15 bash -c "nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.max.sm,power.draw,\
power.limit --format=csv 2>&1; $PY -V; $PY -m pip list 2>/dev/null | grep -iE \
'^(jax|jaxlib|jax-cuda|flax|optax|orbax|numpy|torch |transformers|ml.dtypes)'"

if [ "${GPU_CHECK_CEILINGS:-1}" = 1 ]; then
  # the two ceilings MFU and the decode roofline are read against (bf16 matmul, device-to-device copy)
  stage ceilings 30 "$PY" - <<'PYEOF'
import torch
if not torch.cuda.is_available():
  raise SystemExit("no CUDA for torch")
def timed(fn, n):
  fn(); torch.cuda.synchronize()
  start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
  start.record()
  for _ in range(n):
    fn()
  end.record(); torch.cuda.synchronize()
  return start.elapsed_time(end) / 1e3 / n
a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
t = timed(lambda: a @ b, 20)
print(f"bf16 8192^3 matmul: {2 * 8192**3 / t / 1e12:.0f} TFLOP/s")
a32, b32 = a.float(), b.float()
torch.backends.cuda.matmul.allow_tf32 = True
t = timed(lambda: a32 @ b32, 10)
print(f"tf32 8192^3 matmul: {2 * 8192**3 / t / 1e12:.0f} TFLOP/s")
x = torch.empty(2**30, dtype=torch.float32, device="cuda").normal_()
y = torch.empty_like(x)
t = timed(lambda: y.copy_(x), 10)
print(f"device copy of 4 GiB: {2 * x.numel() * 4 / t / 1e9:.0f} GB/s (read + write)")
PYEOF
fi

# Each side in its own process, so one side's stall leaves the other's numbers: ours never imports torch;
# PyTorch's process builds the same random weights with JAX on the CPU. (The first two H200 runs stalled
# in JAX's compilation of `init_model`; the benchmarks now draw random weights on the host instead.)
TRAIN=(benchmarks/train_step.py --random-init --models smollm2 --repeats "$TRAIN_REPEATS")
SAMPLE=(benchmarks/sampling.py --random-init --batches "$SAMPLE_BATCHES" --new-tokens "$SAMPLE_TOKENS"
        --repeats "$SAMPLE_REPEATS" --hbm-gbps "$HBM_GBPS" --mixes "short,search")
stage train_ours_f32 80 "$PY" "${TRAIN[@]}" --side ours --shapes "$TRAIN_SHAPES" --dtype float32 --f32-matmul tf32
stage train_torch_f32 40 env JAX_PLATFORMS=cpu "$PY" "${TRAIN[@]}" --side torch --shapes "$TRAIN_SHAPES" \
  --dtype float32 --f32-matmul tf32
stage sampling_ours_f32 70 "$PY" "${SAMPLE[@]}" --side ours --dtype float32
stage sampling_torch_f32 35 env JAX_PLATFORMS=cpu "$PY" "${SAMPLE[@]}" --side torch --dtype float32
# one EM iteration, phase by phase, against both PyTorch loops (one process: the rollout shares the host loop)
stage em_iteration 120 "$PY" benchmarks/em_iteration.py --random-init "${EM_ITERATION[@]}"
stage train_ours_bf16 45 "$PY" "${TRAIN[@]}" --side ours --shapes "$BF16_SHAPES" --dtype bfloat16
stage train_torch_bf16 25 env JAX_PLATFORMS=cpu "$PY" "${TRAIN[@]}" --side torch --shapes "$BF16_SHAPES" \
  --dtype bfloat16
stage pytest_gpu 25 "$PY" -m pytest -q -x -p no:cacheprovider --tb=short tests/test_train_step_bench.py
# both sides in one process, as on the CPU (where it stalls, faulthandler prints the stacks)
stage both_one_process 60 "$PY" "${TRAIN[@]}" --side both --shapes "${TRAIN_SHAPES%%,*}" --repeats 1 \
  --dtype float32 --f32-matmul tf32

echo "=== done in $(($(date +%s) - START))s" | tee -a "$LOG"
grep -E "^===|^ *smollm2|^device:|^ *[0-9]+ +[0-9-]+ |^ *(short|chat60|search|mixed) |^(rollout|scoring|m-step|\
checkpoint|iteration|prefill) |TFLOP/s|GB/s|roofline|passed|failed|Error" "$LOG" \
  >"$LOGDIR/summary" || true
