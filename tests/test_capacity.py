"""exsearch_jax/capacity.py and `launch/train.py --dry_run`: exact weight bytes per device, the paper-scale configs
fit their targets, and a 7B model with full AdamW state on one GPU is reported as not fitting."""

import os
import subprocess
import sys

import jax
import pytest

from exsearch_jax import capacity
from exsearch_jax.config import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER = ("qwen2_5_7b_v5p", "qwen2_5_7b_8xh100", "llama3_1_8b_v5p", "llama3_1_8b_8xh100")


def test_weight_bytes_per_device_are_those_of_a_real_sharded_model():
  from exsearch_jax.models import DecoderConfig, init_model
  from exsearch_jax.sharding import make_mesh

  cfg = get_config("demo")
  cfg.model.init.update(dict(vocab_size=2048, eos_token_id=1))
  cfg.mesh.train.update(dict(data=1, fsdp=4, tensor=2))
  cfg.target.update(dict(accelerator="h100", devices=8))
  cfg.em.questions_per_iteration = 64
  plan = capacity.plan(cfg, jax.devices()[:8])
  mesh = make_mesh(cfg.mesh.train, jax.devices()[:8])
  model = init_model(DecoderConfig(**cfg.model.init.to_dict()), mesh=mesh)
  per_device = {}
  for leaf in jax.tree.leaves(model):
    if hasattr(leaf, "addressable_shards"):
      for shard in leaf.addressable_shards:
        per_device[shard.device] = per_device.get(shard.device, 0) + shard.data.nbytes
  params_line = next(line for line in plan.lines if line.strip().startswith("parameters"))
  assert float(params_line.split()[1]) == pytest.approx(max(per_device.values()) / capacity.GIB, abs=0.006)


def test_remat_keeps_one_layer_and_kv_cache_formula():
  from exsearch_jax.models import DecoderConfig

  dc = DecoderConfig(
      vocab_size=1000, hidden_size=64, intermediate_size=128, num_layers=10, num_heads=4, num_kv_heads=2, head_dim=16
  )
  full = capacity.activation_bytes(dc, rows=2, length=256, tensor=1, remat=False)
  remat = capacity.activation_bytes(dc, rows=2, length=256, tensor=1, remat=True)
  logits = 4 * 2 * 2 * 256 * 1000
  assert (full - logits) / (remat - logits - 10 * 4 * 2 * 256 * 64) == pytest.approx(10)
  assert capacity.kv_cache_bytes(dc, rows=3, capacity=100, tensor=1) == 2 * 10 * 3 * 100 * 2 * 16 * 4


def _dry_run(*args):
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch", "train.py"), "--dry_run", *args],
      capture_output=True,
      text=True,
      cwd=ROOT,
      timeout=300,
      check=False,
  )


@pytest.mark.parametrize("name", PAPER)
def test_paper_configs_fit_their_targets(name):
  out = _dry_run(f"--config=experiments/paper/configs.py:{name}")
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.rstrip().endswith("fits") and "DOES NOT FIT" not in out.stdout
  devices = 32 if name.endswith("v5p") else 8
  assert f"target: {devices} x" in out.stdout and "AdamW moments" in out.stdout and "M-step" in out.stdout


def test_a_7b_model_with_adamw_on_one_gpu_does_not_fit():
  out = _dry_run(
      "--config=experiments/paper/configs.py:qwen2_5_7b_8xh100",
      "--config.target.devices=1",
      "--config.mesh.train.fsdp=1",
      "--config.mesh.sample.tensor=1",
      "--config.train.micro_batches=256",
  )
  assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
  assert "DOES NOT FIT" in out.stdout and out.stdout.rstrip().splitlines()[-1].startswith("does not fit")
  moments = next(line for line in out.stdout.splitlines() if "AdamW moments" in line)
  assert float(moments.split()[2]) == pytest.approx(2 * 7.62e9 * 2 / capacity.GIB, rel=0.01)  # bf16 m and v


def test_a_mesh_the_target_cannot_hold_is_one_line_and_status_2():
  out = _dry_run("--config=experiments/paper/configs.py:qwen2_5_7b_8xh100", "--config.target.devices=6")
  assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "mesh" in out.stderr
