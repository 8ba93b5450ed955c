#!/usr/bin/env bash
# One GPU check in one call: versions and devices, the matmul / copy ceilings, the train-step benchmark
# (f32 with TF32 matmuls, then bf16), the sampling benchmark, and a short pytest subset with JAX on the GPU.
#
#   bash benchmarks/gpu_check.sh          # from the repository root; logs to $OUT/log when OUT is set
#
# Runs on the bare device image (python3 with jax[cuda], flax, optax, torch, transformers): no assets
# (`--random-init`, SmolLM2-135M architecture), no packages beyond the image's. Stages run in order of
# priority, each under `timeout`, and all of them within GPU_CHECK_SECONDS (default 350): a stage that
# would start with less than 20 s left is skipped, so one hung stage never eats the whole call.
# GPU_CHECK_QUICK=1 shrinks every stage (a dry run of the script itself, e.g. on a CPU), and
# GPU_CHECK_LIMIT_SCALE multiplies every stage's limit (a slow CPU needs minutes to compile SmolLM2).
set -o pipefail
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and PyTorch share the GPU in one process
PY=${PYTHON:-python3}
LOGDIR=${OUT:-/tmp/gpu_check}
mkdir -p "$LOGDIR"
LOG="$LOGDIR/log"
: >"$LOG"
START=$(date +%s)
DEADLINE=$((START + ${GPU_CHECK_SECONDS:-350}))
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
  timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=$?
  echo "=== [$name] rc=$rc wall=$(($(date +%s) - t0))s$([ "$rc" = 124 ] && echo ' TIMED OUT')" | tee -a "$LOG"
}

# HBM bandwidth for the decode roofline (datasheet): H200 4.8 TB/s, H100 SXM 3.35 TB/s
case "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null)" in
  *H100*) HBM_GBPS=3350 ;;
  *) HBM_GBPS=4800 ;;
esac
if [ "$QUICK" = 1 ]; then
  TRAIN_SHAPES=2x64 BF16_SHAPES=2x64 TRAIN_REPEATS=1 SAMPLE_BATCHES=1,2 SAMPLE_TOKENS=8 SAMPLE_REPEATS=1
else
  TRAIN_SHAPES=8x512,32x512,16x1024 BF16_SHAPES=32x512,16x1024 TRAIN_REPEATS=5 SAMPLE_BATCHES=1,16,64,256 SAMPLE_TOKENS=64 SAMPLE_REPEATS=2
fi

stage env 30 bash -c "nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.max.sm,power.draw,power.limit \
--format=csv 2>&1; $PY -V; $PY -m pip list 2>/dev/null | grep -iE '^(jax|jaxlib|jax-cuda|flax|optax|orbax|numpy|torch |transformers|ml.dtypes)' ; \
$PY -c 'import jax; print(jax.__version__, jax.default_backend(), jax.devices())'"

# the two ceilings MFU and the decode roofline are read against (bf16 matmul, device-to-device copy)
stage ceilings 30 "$PY" - <<'EOF'
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
EOF

stage train_f32_tf32 110 "$PY" benchmarks/train_step.py --random-init --models smollm2 --shapes "$TRAIN_SHAPES" \
  --repeats "$TRAIN_REPEATS" --dtype float32 --f32-matmul tf32
stage sampling_f32 120 "$PY" benchmarks/sampling.py --random-init --batches "$SAMPLE_BATCHES" \
  --new-tokens "$SAMPLE_TOKENS" --repeats "$SAMPLE_REPEATS" --dtype float32 --hbm-gbps "$HBM_GBPS"
stage train_bf16 80 "$PY" benchmarks/train_step.py --random-init --models smollm2 --shapes "$BF16_SHAPES" \
  --repeats "$TRAIN_REPEATS" --dtype bfloat16
stage pytest_gpu 90 "$PY" -m pytest -q -p no:cacheprovider --timeout 60 --durations 5 \
  tests/test_train_step_bench.py tests/test_engine.py tests/test_engine_sampling.py tests/test_decoder.py
stage sampling_bf16 60 "$PY" benchmarks/sampling.py --random-init --batches "$SAMPLE_BATCHES" \
  --new-tokens "$SAMPLE_TOKENS" --repeats "$SAMPLE_REPEATS" --dtype bfloat16 --hbm-gbps "$HBM_GBPS"

echo "=== done in $(($(date +%s) - START))s" | tee -a "$LOG"
grep -E "^===|^ *smollm2|^device:|^ *[0-9]+ +[0-9]+ |TFLOP/s|GB/s|roofline|passed|failed|Error" "$LOG" >"$LOGDIR/summary" || true
