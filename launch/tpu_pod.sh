#!/usr/bin/env bash
# EXSEARCH on a Cloud TPU pod slice. Every worker runs the same launch/train.py; JAX forms the process group
# from the TPU metadata (--distributed=on). The workdir is a GCS bucket mounted with gcsfuse at the same
# path on every worker, so checkpoints, metrics and the built index are shared, and rerunning resumes.
#
#   export TPU_NAME=exsearch ZONE=us-central2-b ACCELERATOR=v4-32 BUCKET=my-bucket
#   launch/tpu_pod.sh create             # the TPU VM slice
#   launch/tpu_pod.sh install            # this checkout (git HEAD), a venv with jax[tpu], the bucket mount
#   launch/tpu_pod.sh data               # DATA_DIR (local folder or gs://...) to ~/exsearch-data on every worker
#   launch/tpu_pod.sh train [flags...]   # launch/train.py flags; data paths absolute, e.g. /home/me/exsearch-data/..
#   launch/tpu_pod.sh logs               # WORKERS=4: each worker's log into ./logs/
#   launch/tpu_pod.sh delete
#   DRY_RUN=1 launch/tpu_pod.sh STEP ... # print the commands instead of running them
#
# Resume: run `train` again with the same RUN (workdir $MOUNT/$RUN); it continues from the last checkpoint.
set -euo pipefail

usage() { sed -n '2,15p' "$0" >&2; exit 2; }
STEP=${1:-}
[[ $# -gt 0 ]] && shift
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
ACCELERATOR=${ACCELERATOR:-v4-32}
RUNTIME=${RUNTIME:-tpu-ubuntu2204-base}
BUCKET=${BUCKET:-}
MOUNT=${MOUNT:-/mnt/exsearch}
RUN=${RUN:-run}
CONFIG=${CONFIG:-exsearch_jax/config.py:qwen2_5_7b}
DATA_DIR=${DATA_DIR:-}
ARCHIVE=${TMPDIR:-/tmp}/exsearch-jax-$$.tar.gz

run() {  # runs a command, or prints it (shell-quoted) under DRY_RUN=1
  if [[ ${DRY_RUN:-0} == 1 ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}
tpu() { run gcloud compute tpus tpu-vm "$@" --zone="$ZONE" ${PROJECT:+--project="$PROJECT"}; }
on_all() { tpu ssh "$TPU_NAME" --worker=all --command="$1"; }  # in parallel on every worker

case "$STEP" in
  create)
    tpu create "$TPU_NAME" --accelerator-type="$ACCELERATOR" --version="$RUNTIME" ;;
  install)
    : "${BUCKET:?set BUCKET (the GCS bucket that holds the workdir)}"
    run git -C "$(dirname "$0")/.." archive --format=tar.gz -o "$ARCHIVE" HEAD
    tpu scp "$ARCHIVE" "$TPU_NAME:~/exsearch-jax.tar.gz" --worker=all
    on_all "set -e; mkdir -p ~/exsearch-jax && tar -xzf ~/exsearch-jax.tar.gz -C ~/exsearch-jax
      cd ~/exsearch-jax && python3 -m venv .venv && .venv/bin/pip install -q -e . 'jax[tpu]'
      curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null
      echo \"deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-\$(lsb_release -cs) main\" | sudo tee /etc/apt/sources.list.d/gcsfuse.list
      sudo apt-get update -q && sudo apt-get install -yq gcsfuse
      sudo mkdir -p $MOUNT && sudo chown \$USER $MOUNT && gcsfuse --implicit-dirs $BUCKET $MOUNT" ;;
  data)
    : "${DATA_DIR:?set DATA_DIR (corpus, questions, a prebuilt index, model weights)}"
    if [[ $DATA_DIR == gs://* ]]; then
      on_all "mkdir -p ~/exsearch-data && gcloud storage rsync -r $DATA_DIR ~/exsearch-data"
    else
      tpu scp --recurse "$DATA_DIR" "$TPU_NAME:~/exsearch-data" --worker=all
    fi ;;
  train)
    flags=$(printf ' %q' --config="$CONFIG" --workdir="$MOUNT/$RUN" --distributed=on "$@")
    on_all "set -o pipefail; cd ~/exsearch-jax && .venv/bin/python launch/train.py$flags 2>&1 | tee ~/exsearch-train.log" ;;
  logs)
    : "${WORKERS:?set WORKERS (hosts in the slice, e.g. 4 for v4-32)}"
    run mkdir -p logs
    for ((w = 0; w < WORKERS; w++)); do
      tpu scp "$TPU_NAME:~/exsearch-train.log" "logs/worker-$w.log" --worker="$w"
    done ;;
  delete)
    tpu delete "$TPU_NAME" --quiet ;;
  *)
    usage ;;
esac
