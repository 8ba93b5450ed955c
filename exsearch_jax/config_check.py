"""Every config field checked once, before any work: its type, its range or its choices, and no field the base
config does not have. One `ConfigError` names the first bad field, e.g.
`config.rollout.top_p=1.5: must be in (0, 1]`. Runs, evaluations and sweeps call `validate` first.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional

from exsearch_jax.errors import ConfigError

Check = Callable[[Any], Optional[str]]  # None when the value is fine, else what it must be


def _integer(lo: int = 0, hi: Optional[int] = None) -> Check:
  def check(v):
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
      return f"an integer {'>= ' + str(lo) if hi is None else f'in [{lo}, {hi}]'}"
    return None
  return check


def _number(lo: float, hi: float = math.inf, open_lo: bool = False, open_hi: bool = False) -> Check:
  def check(v):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > lo if open_lo else v >= lo) and (v < hi if open_hi else v <= hi)
    if not ok:
      return (f"a number in {'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}" if math.isfinite(hi)
              else f"a number {'>' if open_lo else '>='} {lo:g}")
    return None
  return check


def _choice(*options) -> Check:
  return lambda v: None if v in options else f"one of {', '.join(repr(o) for o in options)}"


def _boolean(v) -> Optional[str]:
  return None if isinstance(v, bool) else "true or false"


def _text(v) -> Optional[str]:
  return None if isinstance(v, str) else "a string"


def _rules() -> dict:
  from exsearch_jax import capacity, trajectory
  from exsearch_jax.data import FORMATS
  from exsearch_jax.data.world import SIZES
  from exsearch_jax.em.weights import SCHEMES
  from exsearch_jax.models.decoder_config import DTYPES
  from exsearch_jax.retrieval.remote import PROTOCOLS
  from exsearch_jax.sampling.rollout import POLICIES
  positive, fraction = _number(0, open_lo=True), _number(0, 1)
  return {
      "seed": _integer(),
      "model.checkpoint": _text, "model.tokenizer": _text, "model.dtype": _choice(*DTYPES),
      "model.param_dtype": _choice(*DTYPES),
      "generation.max_new_tokens": _integer(1), "generation.temperature": _number(0),
      "generation.top_p": _number(0, 1, open_lo=True), "generation.top_k": _integer(),
      "data.world_seed": _integer(), "data.world_size": _choice("", *SIZES), "data.format": _choice(*FORMATS),
      "data.corpus": _text, "data.train": _text, "data.dev": _text, "data.seeds": _text,
      "data.seeds_format": _choice("", "messages", *FORMATS), "data.dev_limit": _integer(),
      "retrieval.kind": _choice("auto", "scann", "exact", "bm25", "remote"), "retrieval.index_dir": _text,
      "retrieval.encoder": _text, "retrieval.url": _text, "retrieval.protocol": _choice(*PROTOCOLS),
      "retrieval.timeout": positive, "retrieval.retries": _integer(),
      "rollout.samples": _integer(1), "rollout.max_steps": _integer(), "rollout.retrieve_k": _integer(1),
      "rollout.shown": _integer(1), "rollout.step_tokens": _integer(1), "rollout.answer_tokens": _integer(1),
      "rollout.capacity": _integer(16), "rollout.batch_rows": _integer(1), "rollout.temperature": _number(0),
      "rollout.top_p": _number(0, 1, open_lo=True), "rollout.top_k": _integer(),
      "rollout.instruction": _choice(*trajectory.INSTRUCTIONS), "rollout.constrained": _boolean,
      "rollout.answer_at_budget": _boolean, "rollout.policy": _choice(*POLICIES), "rollout.rerank": _boolean,
      "em.iterations": _integer(), "em.weights": _choice(*SCHEMES), "em.guard": _number(0),
      "em.questions_per_iteration": _integer(), "em.seed_trajectories": _integer(), "em.seed_balance": _boolean,
      "em.replay_seeds": _boolean,
      "train.learning_rate": positive, "train.warmup_ratio": _number(0, 1, open_hi=True),
      "train.weight_decay": _number(0), "train.grad_clip": positive, "train.batch_size": _integer(1),
      "train.micro_batches": _integer(1), "train.max_length": _integer(16), "train.epochs": _integer(1),
      "train.checkpoint_every": _integer(1), "train.trainable_layers": _integer(), "train.remat": _boolean,
      "train.reset_optimizer": _boolean,
      "warmup.epochs": _integer(), "warmup.learning_rate": positive, "warmup.batch_size": _integer(),
      "warmup.stage0_mix": _integer(),
      "stage0.examples": _integer(), "stage0.epochs": _integer(1), "stage0.learning_rate": positive,
      "stage0.corpus_share": fraction, "stage0.batch_size": _integer(), "stage0.chain_share": fraction,
      "stage0.chain_queries": _boolean,
      "eval.split": _choice("dev", "test", "train"),
      "target.accelerator": _choice("", *capacity.ACCELERATORS), "target.devices": _integer(),
  }


def flatten(node, prefix: str = "", whole: Callable[[str], bool] = lambda path: False) -> dict:
  """{"section.field": value} of a config; a section for which `whole(path)` holds stays one value."""
  out = {}
  for key in node.keys():
    value, path = node[key], f"{prefix}{key}"
    if hasattr(value, "keys") and not whole(path):
      out.update(flatten(value, path + ".", whole))
    else:
      out[path] = value
  return out


def validate(cfg):
  """Raises one ConfigError for the first bad field; returns `cfg` unchanged when every field is fine."""
  from exsearch_jax.models.decoder_config import DecoderConfig
  from exsearch_jax.sharding import MESH_AXES
  rules = _rules()
  fields = flatten(cfg, whole=lambda path: path == "model.init" or path.startswith("mesh."))
  for path, value in fields.items():
    if path == "model.init":
      known = {f.name for f in dataclasses.fields(DecoderConfig)}
      unknown = sorted(set(value.keys()) - known)
      if unknown:
        raise ConfigError(f"config.model.init: unknown architecture fields {unknown}")
      continue
    if path in ("mesh.sample", "mesh.train", "mesh.dcn"):
      bad = sorted(set(value.keys()) - set(MESH_AXES))
      sizes = [value[a] for a in value.keys()]
      if bad or any(isinstance(s, bool) or not isinstance(s, int) or (s < 1 and s != -1) for s in sizes):
        raise ConfigError(f"config.{path}={dict(value)}: axes {MESH_AXES}, each a positive integer or -1")
      continue
    if path not in rules:
      raise ConfigError(f"config.{path}: unknown field")
    problem = rules[path](value)
    if problem:
      raise ConfigError(f"config.{path}={value!r}: must be {problem}")
  r, t = cfg.rollout, cfg.train
  if r.shown > r.retrieve_k:
    raise ConfigError(f"config.rollout.shown={r.shown}: must be <= config.rollout.retrieve_k={r.retrieve_k}")
  if t.batch_size % t.micro_batches:
    raise ConfigError(f"config.train.micro_batches={t.micro_batches}: must divide config.train.batch_size="
                      f"{t.batch_size}")
  if cfg.retrieval.kind == "remote" and not cfg.retrieval.url:
    raise ConfigError("config.retrieval.url: must be set when config.retrieval.kind='remote'")
  return cfg


def writable_directory(path: str, what: str = "--workdir") -> str:
  """Creates `path` if needed and proves it takes a file; a ConfigError naming `what` when it does not."""
  import os
  import tempfile
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path):
      pass
  except OSError as e:
    raise ConfigError(f"{what}={path}: cannot write there ({e.strerror or e})") from None
  return path
