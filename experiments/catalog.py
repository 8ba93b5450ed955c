"""The experiments `experiments/run.py` knows: each one base config, variants (config overrides) and seeds.

An experiment is data: which config it starts from, what each variant changes, which variant the others are
compared with, and which size overrides make its smoke version. `run.py` expands it into one normal EM run
per (variant, seed), so every number comes from the same `EMRun` code as `launch/train.py`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Any, Mapping, Optional

import ml_collections

from exsearch_jax import config as presets
from exsearch_jax.em.weights import SCHEMES
from exsearch_jax.errors import ConfigError
from experiments.provenance import ROOT

SIZES = ("smoke", "full")

# A few minutes of a tiny world: every phase of the loop runs, nothing is learned (CI checks the outputs).
DEMO_SMOKE = {
    "data.world_size": "tiny",
    "data.dev_limit": 16,
    "stage0.examples": 48,
    "warmup.epochs": 2,
    "em.iterations": 1,
    "em.questions_per_iteration": 8,
    "em.seed_trajectories": 8,
    "rollout.samples": 2,
    "rollout.max_steps": 3,
    "rollout.batch_rows": 32,
    "train.checkpoint_every": 1000,
}
SMOLLM2_SMOKE = {
    "data.dev_limit": 4,
    "em.iterations": 1,
    "em.questions_per_iteration": 2,
    "em.seed_trajectories": 2,
    "rollout.samples": 2,
    "rollout.max_steps": 2,
    "rollout.step_tokens": 16,
    "warmup.epochs": 1,
    "warmup.batch_size": 2,
    "train.batch_size": 2,
    "train.micro_batches": 1,
    "train.max_length": 512,
    "train.checkpoint_every": 1000,
}


@dataclasses.dataclass(frozen=True)
class Variant:
  """One arm of an experiment: a label (a directory name) and the config fields it sets.

  With `evaluates` set, the arm trains nothing: it evaluates the last model of that other variant (same seed)
  on dev with its own rollout settings (the baselines: closed-book, retrieve once, gold decomposition), so its
  overrides may only change `rollout.*`."""

  label: str
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  evaluates: Optional[str] = None
  smoke: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # at smoke size, after `overrides`

  def __post_init__(self):
    if not self.label.replace("_", "").replace("-", "").isalnum():
      raise ConfigError(f"variant label {self.label!r}: letters, digits, '_' and '-' only (it names a directory)")
    if self.evaluates and any(not k.startswith("rollout.") for k in self.overrides):
      raise ConfigError(
          f"variant {self.label!r} evaluates {self.evaluates!r}'s model: it may set rollout.* fields "
          f"only, not {sorted(k for k in self.overrides if not k.startswith('rollout.'))}"
      )


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A named set of runs. `base` is a preset name or a config file under experiments/configs."""

  name: str
  question: str  # what the experiment asks, one line (the first line of its results.md)
  base: str
  variants: tuple[Variant, ...]
  seeds: tuple[int, ...] = (0, 1, 2)
  reference: Optional[str] = None  # the variant the others are compared with (None: the first)
  smoke: Mapping[str, Any] = dataclasses.field(default_factory=lambda: dict(DEMO_SMOKE))
  minutes: Mapping[str, float] = dataclasses.field(default_factory=lambda: {"smoke": 1.0, "full": 13.0})  # per run

  def __post_init__(self):
    labels = [v.label for v in self.variants]
    if not labels or len(set(labels)) != len(labels):
      raise ConfigError(f"experiment {self.name}: variant labels must be distinct and at least one: {labels}")
    if self.reference is not None and self.reference not in labels:
      raise ConfigError(f"experiment {self.name}: reference {self.reference!r} is not one of its variants {labels}")
    for v in self.variants:
      if v.evaluates and (v.evaluates not in labels or self.variant(v.evaluates).evaluates):
        raise ConfigError(
            f"experiment {self.name}: variant {v.label!r} evaluates {v.evaluates!r}, which is not one "
            "of its training variants"
        )

  @property
  def reference_label(self) -> str:
    return self.reference or self.variants[0].label

  def variant(self, label: str) -> Variant:
    for v in self.variants:
      if v.label == label:
        return v
    raise ConfigError(f"experiment {self.name} has no variant {label!r}; it has {[v.label for v in self.variants]}")

  def config(self, variant: Variant, seed: int, size: str) -> ml_collections.ConfigDict:
    """The resolved config of one run: base, then the size's overrides, then the variant's, then the seed."""
    if size not in SIZES:
      raise ConfigError(f"--size={size!r}: choose one of {SIZES}")
    cfg = load_base(self.base)
    apply_overrides(cfg, self.smoke if size == "smoke" else {}, f"{self.name} smoke size")
    if variant.evaluates:
      apply_overrides(cfg, self.variant(variant.evaluates).overrides, f"{self.name}/{variant.evaluates}")
    apply_overrides(cfg, variant.overrides, f"{self.name}/{variant.label}")
    if size == "smoke":  # the variant scaled to the tiny world (e.g. fewer seed trajectories than its 120 questions)
      apply_overrides(cfg, variant.smoke, f"{self.name}/{variant.label} smoke size")
    cfg.seed = seed
    from exsearch_jax.config_check import validate

    return validate(cfg)


def load_base(base: str) -> ml_collections.ConfigDict:
  """A preset of exsearch_jax/config.py by name, or a config file's get_config()."""
  if base in presets.PRESETS:
    return presets.get_config(base)
  path = base if os.path.isabs(base) else os.path.join(ROOT, base)
  if not os.path.exists(path):
    raise ConfigError(f"experiment base {base!r} is neither a preset {sorted(presets.PRESETS)} nor a config file")
  spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Mapping[str, Any], where: str) -> None:
  """Sets dotted fields ("em.weights": "paper"); an unknown field is a ConfigError naming it."""
  for dotted, value in overrides.items():
    node, *_, leaf = [cfg] + dotted.split(".")
    for part in dotted.split(".")[:-1]:
      if part not in node:
        raise ConfigError(f"{where}: unknown config field {dotted!r}")
      node = node[part]
    if leaf not in node:
      raise ConfigError(f"{where}: unknown config field {dotted!r}")
    node[leaf] = value


def _demo(name: str, question: str, variants, **kw) -> Experiment:
  return Experiment(name=name, question=question, base="demo", variants=tuple(variants), **kw)


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        _demo(
            "iterations",
            "How do dev EM/F1/Acc, Recall@k, searches and the GEM bound move over EM iterations 0..5 "
            "(the paper's Figure 1)?",
            [Variant("demo")],
        ),
        Experiment(
            name="iterations_smollm2",
            question="Does SmolLM2-135M-Instruct's dev EM on the world rise over EM "
            "iterations, and on which question kinds?",
            base="experiments/configs/smollm2_world_balanced.py",
            variants=(Variant("balanced"),),
            smoke=dict(SMOLLM2_SMOKE),
            minutes={"smoke": 6.0, "full": 110.0},
        ),
        _demo(
            "weighting",
            "Which E-step weighting learns best at equal compute: the paper's p(y|x,z), the reference "
            "code's, uniform, rejection (correct only) or balanced?",
            [Variant(s, {"em.weights": s}) for s in SCHEMES],
            reference="code",
        ),
        _demo(
            "samples",
            "How much do more trajectories per question help at equal questions (K = 1, 2, 4, 8)?",
            [Variant(f"k{k}", {"rollout.samples": k}) for k in (1, 2, 4, 8)],
            reference="k4",
            minutes={"smoke": 1.0, "full": 16.0},
        ),
        _demo(
            "warmup_size",
            "How many seed trajectories does the warm-up need (24, 96, 384)?",
            [
                Variant(f"seeds{n}", {"em.seed_trajectories": n}, smoke={"em.seed_trajectories": n // 12})
                for n in (24, 96, 384)
            ],
            reference="seeds96",
        ),
        _demo(
            "baselines",
            "Where does EXSEARCH stand between answering without evidence and searching with the gold "
            "decomposition, with the same model? (The baselines evaluate the warm-up model.)",
            [
                Variant("exsearch"),
                Variant("warmup_only", {"em.iterations": 0}),
                Variant(
                    "closed_book", {"rollout.max_steps": 0, "rollout.answer_at_budget": True}, evaluates="warmup_only"
                ),
                Variant(
                    "single_shot",
                    {"rollout.policy": "question", "rollout.max_steps": 1, "rollout.answer_at_budget": True},
                    evaluates="warmup_only",
                ),
                Variant(
                    "oracle", {"rollout.policy": "oracle", "rollout.answer_at_budget": True}, evaluates="warmup_only"
                ),
            ],
            minutes={"smoke": 0.5, "full": 5.0},
        ),
        _demo(
            "rerank",
            "Does the re-rank action (the paper's Zoo: the model orders the 10 candidates before the top 2 "
            "are shown) help?",
            [
                Variant("none"),
                Variant("rerank", {"rollout.rerank": True, "rollout.capacity": 1024, "train.max_length": 1024}),
            ],
            minutes={"smoke": 1.0, "full": 18.0},
        ),
        _demo(
            "retriever",
            "Does the retriever change what EM learns: BM25 against dense MiniLM with ScaNN or exact " "search?",
            [
                Variant("bm25", {"retrieval.kind": "bm25"}),
                Variant("scann", {"retrieval.kind": "scann"}),
                Variant("exact", {"retrieval.kind": "exact"}),
            ],
            reference="bm25",
            minutes={"smoke": 1.5, "full": 15.0},
        ),
    )
}


def get(name: str) -> Experiment:
  if name not in EXPERIMENTS:
    raise ConfigError(f"--experiment={name!r}: unknown; choose one of {sorted(EXPERIMENTS)}")
  return EXPERIMENTS[name]
