"""Will a run fit, and how long will one EM iteration take? Memory per device and a roofline time, from the config
alone, before paying for a pod (`launch/train.py --dry_run`).

Parameters and optimizer state are counted exactly: the model is built abstractly (shapes only) and each weight
is sharded over the configured mesh by the same rules as a real run (`sharding.LOGICAL_AXIS_RULES`), on as many
simulated CPU devices as the target has. Activations, the KV cache and the time are estimates whose assumptions
are printed with them (`Assumptions`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import jax
import numpy as np

from exsearch_jax.errors import ConfigError

GIB = 1024**3


@dataclasses.dataclass(frozen=True)
class Accelerator:
  name: str
  bf16_flops: float  # peak dense bf16 FLOP/s per device
  memory: float  # bytes of HBM per device
  bandwidth: float  # HBM bytes/s per device


# Per device (a TPU chip, a GPU), from the vendors' spec sheets.
ACCELERATORS = {
    "tpu_v5p": Accelerator("TPU v5p chip", 459e12, 95e9, 2.765e12),
    "tpu_v5e": Accelerator("TPU v5e chip", 197e12, 16e9, 0.819e12),
    "h100": Accelerator("H100 SXM 80GB", 989e12, 80e9, 3.35e12),
    "h200": Accelerator("H200 141GB", 989e12, 141e9, 4.8e12),
    "a100": Accelerator("A100 SXM 80GB", 312e12, 80e9, 2.039e12),
}


@dataclasses.dataclass(frozen=True)
class Assumptions:
  """What the estimates assume; printed beside them."""

  train_mfu: float = 0.40  # share of peak FLOP/s the M-step reaches
  forward_mfu: float = 0.50  # ... the E-step's scoring and the rollout's prefill
  decode_bandwidth: float = 0.60  # share of HBM bandwidth a decode step reaches (it is bandwidth-bound)
  searches: float = 3.0  # mean searches per trajectory
  passage_tokens: int = 150  # tokens per shown passage (a 100-word Wikipedia passage)
  prompt_tokens: int = 300  # instruction + question
  usable_memory: float = 0.90  # share of HBM a run may plan for (the rest: runtime, fragmentation)


@dataclasses.dataclass
class Plan:
  """Bytes per device for training and for sampling, the time of one EM iteration, and whether it fits."""

  lines: list
  train_bytes: float
  sample_bytes: float
  limit: float
  seconds: dict

  @property
  def fits(self) -> bool:
    return self.train_bytes <= self.limit and self.sample_bytes <= self.limit


def decoder_config(cfg):
  """The model's architecture: the checkpoint's config.json when it exists, else `model.init`."""
  import os
  from exsearch_jax.models import DecoderConfig
  from exsearch_jax.models.loading import load_config

  path = cfg.model.checkpoint
  if path and not path.startswith("asset:") and os.path.exists(os.path.join(path, "config.json")):
    return load_config(path, dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype)
  if path.startswith("asset:"):
    from exsearch_jax.assets import resolve_checkpoint

    return load_config(resolve_checkpoint(path), dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype)
  if not cfg.model.init:
    raise ConfigError(
        f"model.checkpoint {path!r} has no config.json here and model.init is empty: the dry run "
        "needs the architecture from one of them"
    )
  return DecoderConfig(**dict(cfg.model.init), dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype)


def _leaf_bytes(abstract_state, mesh) -> list[tuple[float, float]]:
  """(bytes on the fullest device, bytes in all) of each weight, sharded over `mesh` by the logical-axis rules."""
  from exsearch_jax.sharding import state_shardings

  values = jax.tree.leaves(abstract_state)
  shardings = jax.tree.leaves(state_shardings(abstract_state, mesh))
  return [
      (
          math.prod(sharding.shard_shape(v.shape)) * np.dtype(v.dtype).itemsize,
          math.prod(v.shape) * np.dtype(v.dtype).itemsize,
      )
      for v, sharding in zip(values, shardings)
  ]


def activation_bytes(dc, rows: float, length: int, tensor: int, remat: bool) -> float:
  """Activations kept for the backward pass of one micro-batch on one device (compute dtype; attention scores
  in f32 as the decoder keeps them, causal half; f32 logits and their gradient). With `remat` only each layer's
  input is kept and one layer's activations are rebuilt at a time."""
  item = np.dtype(dc.dtype).itemsize
  e, f, d = dc.hidden_size, dc.intermediate_size, dc.head_dim
  h, kv = dc.num_heads / tensor, dc.num_kv_heads / tensor
  tokens = rows * length
  layer = item * tokens * (5 * e + (2 * h + 2 * kv) * d + 4 * f / tensor) + 6 * rows * h * length * length / 2
  logits = 4 * 2 * tokens * dc.vocab_size / tensor
  kept = dc.num_layers * item * tokens * e + layer if remat else dc.num_layers * layer
  return kept + logits


def kv_cache_bytes(dc, rows: float, capacity: int, tensor: int) -> float:
  item = np.dtype(dc.dtype).itemsize
  return 2 * dc.num_layers * rows * capacity * max(dc.num_kv_heads / tensor, 1) * dc.head_dim * item


def plan(cfg, devices: Optional[list] = None, assume: Assumptions = Assumptions()) -> Plan:
  """The plan of `cfg` on `devices` (default: every visible device, simulated for a dry run)."""
  from exsearch_jax.models.loading import _abstract
  from exsearch_jax.sharding import make_mesh

  accelerator = ACCELERATORS.get(cfg.target.accelerator)
  if accelerator is None:
    raise ConfigError(f"target.accelerator={cfg.target.accelerator!r}: choose one of {sorted(ACCELERATORS)}")
  devices = list(jax.devices() if devices is None else devices)
  dc = decoder_config(cfg)
  _, state = _abstract(dc, 0)
  train_mesh, sample_mesh = make_mesh(cfg.mesh.train, devices), make_mesh(cfg.mesh.sample, devices)
  from exsearch_jax.em.train_step import trainable_mask

  leaves = _leaf_bytes(state, train_mesh)
  params, total = sum(b for b, _ in leaves), sum(t for _, t in leaves)
  trained = sum(b for (b, _), m in zip(leaves, trainable_mask(state, cfg.train.trainable_layers)) if m)
  moments = 2 * trained  # AdamW's first and second moments, sharded like their weights, in the weights' dtype
  shards = train_mesh.shape["data"] * train_mesh.shape["fsdp"]
  batch = cfg.train.batch_size
  rows = batch / cfg.train.micro_batches / shards
  remat = cfg.train.remat
  acts = activation_bytes(dc, rows, cfg.train.max_length, train_mesh.shape["tensor"], remat)
  train_bytes = params + trained + moments + acts
  r = cfg.rollout
  sample_params = sum(b for b, _ in _leaf_bytes(state, sample_mesh))
  sample_rows = r.batch_rows / (sample_mesh.shape["data"] * sample_mesh.shape["fsdp"])
  kv = kv_cache_bytes(dc, sample_rows, r.capacity, sample_mesh.shape["tensor"])
  sample_bytes = sample_params + kv
  limit = assume.usable_memory * accelerator.memory
  seconds = iteration_seconds(cfg, dc, total, len(devices), accelerator, assume, sample_mesh)
  gib = lambda x: f"{x / GIB:8.2f} GiB"  # noqa: E731
  lines = [
      f"model: {dc.architecture}, {dc.num_params() / 1e9:.2f}B parameters, {dc.num_layers} layers, "
      f"params {dc.param_dtype}, compute {dc.dtype}",
      f"target: {len(devices)} x {accelerator.name} ({accelerator.memory / 1e9:.0f} GB each; planning for "
      f"{assume.usable_memory:.0%} = {limit / GIB:.1f} GiB)",
      f"train mesh {dict(train_mesh.shape)}, sample mesh {dict(sample_mesh.shape)}",
      "",
      "M-step, per device:",
      f"  parameters            {gib(params)}",
      f"  gradients             {gib(trained)}   (trained weights: {cfg.train.trainable_layers or 'all'} layers)",
      f"  AdamW moments         {gib(moments)}",
      f"  activations           {gib(acts)}   ({rows:g} row(s) x {cfg.train.max_length} tokens per micro-batch, "
      f"{'remat per layer' if remat else 'no remat'})",
      f"  total                 {gib(train_bytes)}   {'fits' if train_bytes <= limit else 'DOES NOT FIT'}",
      "",
      "Rollout, per device:",
      f"  parameters            {gib(sample_params)}",
      f"  KV cache              {gib(kv)}   ({sample_rows:g} row(s) x {r.capacity} slots)",
      f"  total                 {gib(sample_bytes)}   {'fits' if sample_bytes <= limit else 'DOES NOT FIT'}",
      "",
      f"One EM iteration ({_questions(cfg)} questions x {r.samples} samples), roofline estimate:",
  ]
  lines += [f"  {k:<20}{v / 60:9.1f} min" for k, v in seconds.items()]
  lines += ["", "Assumptions: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(assume).items())]
  return Plan(lines, train_bytes, sample_bytes, limit, seconds)


def _questions(cfg) -> int:
  if not cfg.em.questions_per_iteration:
    raise ConfigError(
        "em.questions_per_iteration is 0 (the whole train file): the dry run cannot read the file's " "size; set it"
    )
  return cfg.em.questions_per_iteration


def iteration_seconds(
    cfg, dc, param_bytes: float, devices: int, acc: Accelerator, assume: Assumptions, sample_mesh
) -> dict:
  """Rollout (prefill FLOPs + bandwidth-bound decode), E-step scoring and M-step from FLOPs and bytes."""
  r = cfg.rollout
  n = dc.num_params()
  trajectories = _questions(cfg) * r.samples
  steps = min(assume.searches, r.max_steps)
  written = (steps + 1) * r.step_tokens + r.answer_tokens
  read = assume.prompt_tokens + steps * r.shown * assume.passage_tokens
  tokens = min(written + read, cfg.train.max_length)
  prefill = 2 * n * read * trajectories / (devices * acc.bf16_flops * assume.forward_mfu)
  groups = sample_mesh.shape["data"] * sample_mesh.shape["fsdp"]
  rows = r.batch_rows / groups
  per_token = (
      param_bytes / sample_mesh.shape["tensor"] + kv_cache_bytes(dc, rows, r.capacity, sample_mesh.shape["tensor"]) / 2
  ) / (acc.bandwidth * assume.decode_bandwidth)
  rounds = math.ceil(trajectories / r.batch_rows)
  decode = rounds * written * per_token
  score = 2 * n * tokens * trajectories / (devices * acc.bf16_flops * assume.forward_mfu)
  mstep = 6 * n * tokens * trajectories * cfg.train.epochs / (devices * acc.bf16_flops * assume.train_mfu)
  return {
      "rollout prefill": prefill,
      "rollout decode": decode,
      "E-step scoring": score,
      "M-step": mstep,
      "total": prefill + decode + score + mstep,
  }
