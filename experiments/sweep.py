"""Runs an experiment's (variant, seed) runs one after another and keeps one record per finished run.

Each run is a normal `EMRun` in its own workdir (`ROOT/SIZE/NAME/VARIANT/seedN`), so a run killed midway
resumes from its last checkpoint. A finished run appends one line to `OUT/NAME/runs.jsonl`; a rerun of the
sweep skips every (variant, seed, size) found there, so a sweep can span sessions. A run whose resolved config
another experiment has recorded under the same OUT (a shared arm) takes that record instead of training again.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
from typing import Iterator, Optional, Sequence

import numpy as np

from experiments import provenance
from experiments.catalog import Experiment, Variant

EVAL_KEYS = (
    "em",
    "f1",
    "acc",
    "recall@3",
    "recall@5",
    "precision@3",
    "precision@5",
    "gold_passage_recall",
    "mean_steps",
    "parse_share",
)
ESTEP_KEYS = ("log_marginal_bound", "correct_share", "valid_share", "effective_sample_size", "examples")


@dataclasses.dataclass(frozen=True)
class RunKey:
  variant: str
  seed: int
  size: str


def run_directory(root: str, exp_name: str, key: RunKey, cfg) -> str:
  """A run's workdir: `ROOT/SIZE/by_config/HASH`, so experiments that share a run (the demo's defaults are the
  reference arm of several) train it once, with `ROOT/SIZE/NAME/VARIANT/seedN` linked to it for people."""
  actual = os.path.join(root, key.size, "by_config", config_hash(cfg))
  link = os.path.join(root, key.size, exp_name, key.variant, f"seed{key.seed}")
  os.makedirs(actual, exist_ok=True)
  os.makedirs(os.path.dirname(link), exist_ok=True)
  if not os.path.lexists(link):
    os.symlink(os.path.relpath(actual, os.path.dirname(link)), link)
  return actual


@dataclasses.dataclass
class RunRecord:
  """What a finished run leaves for the tables: its scores per iteration and what it cost."""

  experiment: str
  key: RunKey
  config_hash: str
  evals: list  # per iteration (0 = warm-up): EVAL_KEYS and by_type {kind: [correct, total]}
  esteps: list  # per EM iteration: ESTEP_KEYS
  correct: dict  # iteration -> per-question exact match on dev, as a string of 0/1
  minutes: float  # wall time of all phases (all sessions together)
  revision: str
  finished: str

  def to_json(self) -> dict:
    return {**dataclasses.asdict(self), "key": dataclasses.asdict(self.key)}

  @classmethod
  def from_json(cls, row: dict) -> "RunRecord":
    return cls(**{**row, "key": RunKey(**row["key"]), "correct": {int(k): v for k, v in row["correct"].items()}})

  def last_correct(self) -> np.ndarray:
    return np.array([c == "1" for c in self.correct[max(self.correct)]], dtype=np.float64)


def config_hash(cfg) -> str:
  """The run's identity: the fields whose values differ from the base config's defaults, so a field added to
  the code later (with its default) does not orphan a run in progress."""
  from exsearch_jax.config import _base  # pylint: disable=protected-access
  from exsearch_jax.config_check import flatten

  defaults = flatten(_base())
  changed = {k: v for k, v in flatten(cfg).items() if k not in defaults or defaults[k] != v}
  return hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()[:12]


def plan(
    exp: Experiment, seeds: Optional[Sequence[int]], size: str, variants: Optional[Sequence[str]] = None
) -> list[tuple[Variant, RunKey]]:
  """The runs of an experiment in order: seed by seed, each seed's variants together (early seeds of every
  arm first, so a sweep stopped halfway already compares all arms)."""
  chosen = [exp.variant(label) for label in variants] if variants else list(exp.variants)
  seeds = list(seeds) if seeds is not None else (list(exp.seeds) if size == "full" else [0])
  return [(v, RunKey(v.label, s, size)) for s in seeds for v in chosen]


def runs_path(out: str, experiment: str) -> str:
  return os.path.join(out, experiment, "runs.jsonl")


def read_records(out: str, experiment: str) -> list[RunRecord]:
  """The finished runs (a line torn by a kill while appending is ignored: its run counts as not finished)."""
  from exsearch_jax import atomic
  from exsearch_jax.errors import ExsearchError

  path = runs_path(out, experiment)
  if not os.path.exists(path):
    return []
  records, what = {}, "a run record; delete the line to rerun that run"
  for number, row in atomic.read_jsonl(path, what):
    try:
      r = RunRecord.from_json(row)
    except (ValueError, KeyError, TypeError):
      raise ExsearchError(f"{path}:{number}: not {what}") from None
    records[r.key] = r  # a run recorded twice: the later record wins
  return list(records.values())


def recorded_elsewhere(out: str, exp_name: str, cfg_hash: str, size: str) -> Optional[RunRecord]:
  """A run of another experiment under `out` with the same resolved config (the demo's defaults are an arm
  of several experiments): its record stands for this run too, so a shared arm trains once even when its
  workdir is gone (another machine, a clean clone)."""
  if not os.path.isdir(out):
    return None
  for name in sorted(os.listdir(out)):
    if name != exp_name and os.path.exists(runs_path(out, name)):
      for r in read_records(out, name):
        if r.config_hash == cfg_hash and r.key.size == size:
          return r
  return None


def append_record(out: str, record: RunRecord) -> None:
  from exsearch_jax import atomic

  atomic.append_line(runs_path(out, record.experiment), json.dumps(record.to_json(), sort_keys=True))


def record_of(run, exp: Experiment, key: RunKey) -> RunRecord:
  """Reads a finished EMRun's metrics and per-question results into a record."""
  from exsearch_jax.em import report

  evals = []
  correct = {}
  for r in report.latest_per_iteration(run.log.read("eval")):
    evals.append(
        {"iteration": r["iteration"], "by_type": r.get("by_type", {}), **{k: r.get(k, float("nan")) for k in EVAL_KEYS}}
    )
    hits = np.load(os.path.join(run.workdir, "eval", str(r["iteration"]), "correct.npy"), allow_pickle=False)
    correct[r["iteration"]] = "".join("1" if h else "0" for h in hits)
  esteps = [
      {"iteration": r["iteration"], **{k: r[k] for k in ESTEP_KEYS if k in r}}
      for r in report.latest_per_iteration(run.log.read("estep"))
  ]
  minutes = sum(p["seconds"] for p in run.log.read("phase")) / 60
  return RunRecord(
      experiment=exp.name,
      key=key,
      config_hash=config_hash(run.cfg),
      evals=evals,
      esteps=esteps,
      correct=correct,
      minutes=round(minutes, 2),
      revision=provenance.revision(provenance.ROOT),
      finished=datetime.datetime.now().isoformat(timespec="seconds"),
  )


def write_config(out: str, exp: Experiment, key: RunKey, cfg) -> str:
  path = os.path.join(out, exp.name, "configs", key.size, f"{key.variant}_seed{key.seed}.json")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write(cfg.to_json(indent=1, sort_keys=True) + "\n")
  return path


def execute(
    exp: Experiment, planned: list, out: str, root: str, progress: bool = True, on_record=None
) -> Iterator[str]:
  """Runs every planned run not yet recorded; yields one line per run (skipped, finished, or stale)."""
  from exsearch_jax.em.loop import EMRun

  done = {r.key: r for r in read_records(out, exp.name)}
  todo = [(v, k) for v, k in planned if k not in done]
  size = planned[0][1].size if planned else "full"
  measured = [r.minutes for r in done.values() if r.key.size == size and r.minutes > 0]
  for variant, key in planned:
    cfg = exp.config(variant, key.seed, key.size)
    if key in done:  # its config file is the one written when it ran
      stale = done[key].config_hash != config_hash(cfg)
      yield (
          f"{exp.name}/{key.variant} seed {key.seed}: recorded"
          + (
              f" under another config ({done[key].config_hash}); delete its line in {runs_path(out, exp.name)} "
              "to rerun it"
              if stale
              else ""
          )
      )
      continue
    write_config(out, exp, key, cfg)
    shared = recorded_elsewhere(out, exp.name, config_hash(cfg), key.size)
    if shared is not None:  # the same run, recorded by another experiment: its revision and minutes stay its own
      append_record(out, dataclasses.replace(shared, experiment=exp.name, key=key))
      if on_record is not None:
        on_record(shared)
      yield f"{exp.name}/{key.variant} seed {key.seed}: recorded as {shared.experiment}/{shared.key.variant}"
      continue
    position = todo.index((variant, key))
    per_run = sum(measured) / len(measured) if measured else exp.minutes[size]  # minutes of the runs so far
    yield (
        f"{exp.name}/{key.variant} seed {key.seed}: run {position + 1} of {len(todo)} "
        f"(ETA {per_run * (len(todo) - position):.0f} min)"
    )
    run = EMRun(cfg, run_directory(root, exp.name, key, cfg), progress=progress)
    if variant.evaluates:
      source_cfg = exp.config(exp.variant(variant.evaluates), key.seed, key.size)
      source = EMRun(
          source_cfg,
          run_directory(root, exp.name, RunKey(variant.evaluates, key.seed, key.size), source_cfg),
          progress=progress,
      )
      source.run()  # nothing to do when that variant's run is finished
      if not run.log.read("eval"):
        run.evaluate_state(source.trainer.state, source_cfg.em.iterations)
    else:
      run.run()
    record = record_of(run, exp, key)
    append_record(out, record)
    measured.append(record.minutes)
    if on_record is not None:
      on_record(record)
    yield (
        f"{exp.name}/{key.variant} seed {key.seed}: EM {record.evals[0]['em']:.1f} -> {record.evals[-1]['em']:.1f} "
        f"({record.minutes:.1f} min)"
    )
