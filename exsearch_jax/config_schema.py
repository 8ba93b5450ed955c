"""The run configuration as typed records: one frozen dataclass per section, each field with its default, a
comment and its check, so there is one set of defaults and one place that checks them.

The presets (`config.py`) start from these defaults as an ml_collections `ConfigDict`, which stays the
command-line override layer (`--config.rollout.samples=4`); `RunConfig.from_dict` turns the overridden dict
into these records and checks every field once, before any work, raising one `ConfigError` that names the
first bad field, e.g. `config.rollout.top_p=1.5: must be in (0, 1]`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, ClassVar, Mapping, Optional, cast

from exsearch_jax.errors import ConfigError

Check = Callable[[Any], Optional[str]]  # None when the value is fine, else what it must be


def integer(lo: int = 0, hi: Optional[int] = None) -> Check:
  def check(v):
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
      return f"an integer {'>= ' + str(lo) if hi is None else f'in [{lo}, {hi}]'}"
    return None

  return check


def number(lo: float, hi: float = math.inf, open_lo: bool = False, open_hi: bool = False) -> Check:
  def check(v):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > lo if open_lo else v >= lo) and (v < hi if open_hi else v <= hi)
    if not ok:
      return (
          f"a number in {'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
          if math.isfinite(hi)
          else f"a number {'>' if open_lo else '>='} {lo:g}"
      )
    return None

  return check


def choice(options: Callable[[], tuple]) -> Check:
  """One of `options()`: read when checked, so the modules that own the choices are imported late."""

  def check(v):
    allowed = tuple(options())
    return None if v in allowed else f"one of {', '.join(repr(o) for o in allowed)}"

  return check


def boolean(v) -> Optional[str]:
  return None if isinstance(v, bool) else "true or false"


def text(v) -> Optional[str]:
  return None if isinstance(v, str) else "a string"


POSITIVE, FRACTION = number(0, open_lo=True), number(0, 1)


def field(default, check: Check, *, in_config: bool = True):
  """A section field: its default and its check; `in_config=False` for a value the run fills (the seed)."""
  factory = dict(default_factory=lambda: dict(default)) if isinstance(default, dict) else dict(default=default)
  return dataclasses.field(**factory, metadata=dict(check=check, in_config=in_config))


def _choices(module: str, name: str) -> Callable[[], tuple]:
  def options():
    import importlib

    return tuple(getattr(importlib.import_module(module), name))

  return options


def _mesh_shape(v) -> Optional[str]:
  from exsearch_jax.sharding import MESH_AXES

  keys = list(v.keys()) if isinstance(v, Mapping) else None
  if (
      keys is None
      or set(keys) - set(MESH_AXES)
      or any(isinstance(s, bool) or not isinstance(s, int) or (s < 1 and s != -1) for s in v.values())
  ):
    return f"axes {MESH_AXES}, each a positive integer or -1"
  return None


def _architecture(v) -> Optional[str]:
  from exsearch_jax.models.decoder_config import DecoderConfig

  unknown = (
      sorted(set(v.keys()) - {f.name for f in dataclasses.fields(DecoderConfig)})
      if isinstance(v, Mapping)
      else ["(not a mapping)"]
  )
  return f"DecoderConfig fields only (unknown: {unknown})" if unknown else None


@dataclasses.dataclass(frozen=True)
class Section:
  """A config section: checks each field against its metadata's check after construction."""

  path: ClassVar[str] = ""

  def __post_init__(self):
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      problem = f.metadata["check"](value)
      if problem:
        raise ConfigError(f"config.{self.path}.{f.name}={_shown(value)}: must be {problem}")

  @classmethod
  def from_dict(cls, values: Mapping[str, Any], **runtime) -> "Section":
    known = {f.name for f in dataclasses.fields(cls) if f.metadata["in_config"]}
    for key in values.keys():
      if key not in known:
        raise ConfigError(f"config.{cls.path}.{key}: unknown field")
    return cls(**{k: _plain(values[k]) for k in values.keys()}, **runtime)

  def to_dict(self) -> dict:
    return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.metadata["in_config"]}


def _plain(value):
  return {k: _plain(value[k]) for k in value.keys()} if hasattr(value, "keys") else value


def _shown(value) -> str:
  return repr(_plain(value)) if hasattr(value, "keys") else repr(value)


@dataclasses.dataclass(frozen=True)
class ModelConfig(Section):
  path: ClassVar[str] = "model"
  checkpoint: str = field("", text)  # HF directory, .gguf file, or asset:NAME; empty = random init from `init`
  tokenizer: str = field("", text)  # a tokenizer directory, or "word" (built from the world); empty = checkpoint's
  dtype: str = field("float32", choice(_choices("exsearch_jax.models.decoder_config", "DTYPES")))  # compute dtype
  param_dtype: str = field("float32", choice(_choices("exsearch_jax.models.decoder_config", "DTYPES")))
  init: dict = field({}, _architecture)  # DecoderConfig fields of a from-scratch model (no checkpoint)


@dataclasses.dataclass(frozen=True)
class MeshConfig(Section):
  """Product of sizes = device count; -1 takes the rest. Sampling and training use different meshes."""

  path: ClassVar[str] = "mesh"
  sample: dict = field(dict(data=-1, fsdp=1, tensor=1), _mesh_shape)
  train: dict = field(dict(data=1, fsdp=-1, tensor=1), _mesh_shape)
  # multi-host: degrees across TPU slices or hosts (DCN); any degree > 1 makes `train` the shape inside one
  dcn: dict = field(dict(data=1, fsdp=1, tensor=1), _mesh_shape)


@dataclasses.dataclass(frozen=True)
class GenerationConfig(Section):
  """`launch/generate.py`'s free generation."""

  path: ClassVar[str] = "generation"
  max_new_tokens: int = field(64, integer(1))
  temperature: float = field(0.0, number(0))  # 0 = greedy
  top_p: float = field(1.0, number(0, 1, open_lo=True))
  top_k: int = field(0, integer())  # 0 = no top-k cut


DATA_SOURCES = ("world", "files")


def _world_size(v) -> Optional[str]:
  return choice(_choices("exsearch_jax.data.world", "SIZES"))(v)


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
  path: ClassVar[str] = "data"
  source: str = field("world", choice(lambda: DATA_SOURCES))  # the synthetic world, or benchmark files
  world_seed: int = field(0, integer())
  world_size: str = field("demo", _world_size)  # source=world: how many entities (data.world.SIZES)
  # source=files: train/dev/seeds in this format, each in its official form
  format: str = field("flashrag", choice(_choices("exsearch_jax.data", "FORMATS")))
  corpus: str = field("", text)  # passages JSONL; empty = the files' context paragraphs (hotpotqa, 2wiki, musique)
  train: str = field("", text)
  dev: str = field("", text)
  seeds: str = field("", text)  # empty = the first train questions with a gold decomposition
  seeds_format: str = field("", choice(lambda: ("", "messages", *_choices("exsearch_jax.data", "FORMATS")())))
  dev_limit: int = field(0, integer())  # keep the first N dev questions; 0 = all

  @classmethod
  def from_dict(cls, values: Mapping[str, Any], **runtime) -> "DataConfig":
    """The earlier spelling of benchmark files, an empty `world_size`, still means `source=files`."""
    if "world_size" in values.keys() and values["world_size"] == "":
      values = {**{k: values[k] for k in values.keys()}, "world_size": cls.world_size, "source": "files"}
    return cast("DataConfig", super().from_dict(values, **runtime))


@dataclasses.dataclass(frozen=True)
class RetrievalConfig(Section):
  path: ClassVar[str] = "retrieval"
  # auto = BM25 on the world, dense MiniLM + ScaNN on real text
  kind: str = field("auto", choice(lambda: ("auto", "scann", "exact", "bm25", "remote")))
  index_dir: str = field("", text)  # empty = built under the workdir
  encoder: str = field("asset:all-minilm-l6-v2", text)
  url: str = field("", text)  # kind=remote: the server
  protocol: str = field("exsearch", choice(_choices("exsearch_jax.retrieval.remote", "PROTOCOLS")))
  timeout: float = field(60.0, POSITIVE)  # seconds per remote request
  retries: int = field(3, integer())  # after a failed remote request


# Who writes the search turns (the model always writes the answer):
POLICIES = {
    "model": "the model writes every turn (EXSEARCH)",
    "question": "the first query is the question itself, the model writes the rest (with max_steps=1 and "
    "answer_at_budget: retrieve once with the question, then answer, as standard RAG does)",
    "oracle": "every search turn is the question's gold decomposition (sub-query and fact), the model writes the "
    "answer: an upper bound on search",
}


@dataclasses.dataclass(frozen=True)
class RolloutConfig(Section):
  """Sampling trajectories (the E-step and evaluation); defaults are the paper's."""

  path: ClassVar[str] = "rollout"
  samples: int = field(8, integer(1))  # trajectories per question
  max_steps: int = field(20, integer())  # searches per trajectory
  retrieve_k: int = field(10, integer(1))  # passages retrieved per sub-query
  shown: int = field(3, integer(1))  # of those, shown to the model
  step_tokens: int = field(64, integer(1))  # new tokens per search turn
  answer_tokens: int = field(32, integer(1))  # new tokens for the answer
  capacity: int = field(8192, integer(16))  # KV-cache slots per trajectory
  batch_rows: int = field(64, integer(1))  # trajectories decoded together
  temperature: float = field(0.8, number(0))
  top_p: float = field(0.95, number(0, 1, open_lo=True))
  top_k: int = field(0, integer())
  # what the model is told before the question (trajectory.INSTRUCTIONS), as a system turn; never trained on
  instruction: str = field("exsearch", choice(_choices("exsearch_jax.trajectory", "INSTRUCTIONS")))
  constrained: bool = field(True, boolean)  # opening tags written for the model, a grammar mask on its turns
  # a search past max_steps, or one whose results overflow the cache, is asked for its answer (the reference)
  answer_at_budget: bool = field(True, boolean)
  policy: str = field("model", choice(lambda: tuple(POLICIES)))  # who writes the search turns (POLICIES)
  # the paper's Zoo re-rank action: each search lists its retrieve_k candidates' titles, the model orders them
  # before the top `shown` are shown (trajectory.py)
  rerank: bool = field(False, boolean)
  seed: int = field(0, integer(), in_config=False)  # the run's seed (config.seed): fixes every sample

  def __post_init__(self):
    super().__post_init__()
    if self.shown > self.retrieve_k:
      raise ConfigError(f"config.rollout.shown={self.shown}: must be <= config.rollout.retrieve_k={self.retrieve_k}")


@dataclasses.dataclass(frozen=True)
class EMConfig(Section):
  path: ClassVar[str] = "em"
  iterations: int = field(5, integer())
  weights: str = field("paper", choice(_choices("exsearch_jax.em.weights", "SCHEMES")))  # E-step weighting
  guard: float = field(0.0, number(0))  # drop questions whose best p(y*|x,z) is below it
  questions_per_iteration: int = field(0, integer())  # train questions per E-step; 0 = all
  seed_trajectories: int = field(1000, integer())  # gold-decomposition trajectories of the warm-up
  seed_balance: bool = field(False, boolean)  # seeds taken from each question kind in turn, not the first N
  # train each M-step on the seed trajectories too (STaR-style replay): keeps the multi-hop strategy the seeds
  # taught when most correct samples are one-hop
  replay_seeds: bool = field(False, boolean)


@dataclasses.dataclass(frozen=True)
class PhaseConfig(Section):
  """What every training phase (stage 0, warm-up, M-step) has; batch_size 0 = train.batch_size."""

  epochs: int = field(2, integer())
  learning_rate: float = field(2e-6, POSITIVE)  # peak of the cosine schedule
  batch_size: int = field(0, integer())  # sequences per optimizer step


@dataclasses.dataclass(frozen=True)
class TrainConfig(PhaseConfig):
  """The M-step, and what every phase shares (paper: lr 2e-6 cosine, warmup 0.1, 2 epochs, 256 per batch)."""

  path: ClassVar[str] = "train"
  epochs: int = field(2, integer(1))
  batch_size: int = field(256, integer(1))
  warmup_ratio: float = field(0.1, number(0, 1, open_hi=True))  # of the schedule's steps
  weight_decay: float = field(0.0, number(0))
  grad_clip: float = field(1.0, POSITIVE)  # global norm
  micro_batches: int = field(8, integer(1))  # gradient accumulation per step
  max_length: int = field(8192, integer(16))  # tokens per sequence
  checkpoint_every: int = field(100, integer(1))  # steps
  # train only the top N decoder layers and the final norm (0 = every weight): the backward pass and the optimizer
  # state stop there, for a real model on a small machine
  trainable_layers: int = field(0, integer())
  remat: bool = field(False, boolean)  # recompute each layer's activations in the backward pass (see --dry_run)
  # fresh AdamW moments per phase; a fresh Adam's first steps move every weight by ~lr, which a tiny model's
  # few-example M-step does not survive, so the demo keeps its moments across phases
  reset_optimizer: bool = field(True, boolean)

  def __post_init__(self):
    super().__post_init__()
    if self.batch_size % self.micro_batches:
      raise ConfigError(
          f"config.train.micro_batches={self.micro_batches}: must divide config.train.batch_size=" f"{self.batch_size}"
      )


@dataclasses.dataclass(frozen=True)
class WarmupConfig(PhaseConfig):
  """Training on the seed trajectories before the first E-step."""

  path: ClassVar[str] = "warmup"
  stage0_mix: int = field(0, integer())  # fresh stage-0 tasks (no corpus text) trained along with the seeds


@dataclasses.dataclass(frozen=True)
class Stage0Config(PhaseConfig):
  """A from-scratch model's short "pre-training": the corpus plus reading and copying made-up facts."""

  path: ClassVar[str] = "stage0"
  examples: int = field(0, integer())  # 0 = skip stage 0
  epochs: int = field(1, integer(1))
  learning_rate: float = field(1e-3, POSITIVE)
  corpus_share: float = field(0.3, FRACTION)  # of the examples, plain corpus passages
  chain_share: float = field(0.0, FRACTION)  # of the others, made-up multi-hop searches with only facts trained
  chain_queries: bool = field(False, boolean)  # train those searches' queries too


@dataclasses.dataclass(frozen=True)
class EvalConfig(Section):
  path: ClassVar[str] = "eval"
  split: str = field("dev", choice(lambda: ("dev", "test", "train")))


@dataclasses.dataclass(frozen=True)
class TargetConfig(Section):
  """The hardware `launch/train.py --dry_run` plans for (simulated on CPU); unused by real runs."""

  path: ClassVar[str] = "target"
  accelerator: str = field("", choice(lambda: ("", *_choices("exsearch_jax.capacity", "ACCELERATORS")())))
  devices: int = field(0, integer())


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """A whole run: the seed and every section, checked across sections too."""

  seed: int = 0
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)
  generation: GenerationConfig = dataclasses.field(default_factory=GenerationConfig)
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  retrieval: RetrievalConfig = dataclasses.field(default_factory=RetrievalConfig)
  rollout: RolloutConfig = dataclasses.field(default_factory=RolloutConfig)
  em: EMConfig = dataclasses.field(default_factory=EMConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  warmup: WarmupConfig = dataclasses.field(default_factory=WarmupConfig)
  stage0: Stage0Config = dataclasses.field(default_factory=Stage0Config)
  eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
  target: TargetConfig = dataclasses.field(default_factory=TargetConfig)

  def __post_init__(self):
    problem = integer()(self.seed)
    if problem:
      raise ConfigError(f"config.seed={self.seed!r}: must be {problem}")
    if self.rollout.seed != self.seed:
      object.__setattr__(self, "rollout", dataclasses.replace(self.rollout, seed=self.seed))
    if self.retrieval.kind == "remote" and not self.retrieval.url:
      raise ConfigError("config.retrieval.url: must be set when config.retrieval.kind='remote'")
    if (self.stage0.examples or self.warmup.stage0_mix) and self.data.source != "world":
      raise ConfigError(
          "config.stage0.examples and config.warmup.stage0_mix make reading tasks from the synthetic "
          "world's schema: set them to 0 with config.data.source=files"
      )

  @classmethod
  def from_dict(cls, cfg) -> "RunConfig":
    """A ConfigDict (or mapping) of the whole run as records; a RunConfig passes through."""
    if isinstance(cfg, RunConfig):
      return cfg
    for key in cfg.keys():
      if key != "seed" and key not in SECTIONS:
        raise ConfigError(f"config.{key}: unknown field")
    sections: dict[str, Any] = {
        name: kind.from_dict(cfg[name]) for name, kind in SECTIONS.items() if name in cfg.keys()
    }
    return cls(seed=cfg["seed"] if "seed" in cfg.keys() else 0, **sections)

  def to_dict(self) -> dict:
    return dict(seed=self.seed, **{name: getattr(self, name).to_dict() for name in SECTIONS})

  def phase(self, kind: str) -> PhaseConfig:
    """The section of a training phase: stage0, warmup, or the M-step's train."""
    return {"stage0": self.stage0, "warmup": self.warmup}.get(kind, self.train)

  def batch_size(self, kind: str) -> int:
    """A training phase's batch size: its own, or train.batch_size when 0."""
    return self.phase(kind).batch_size or self.train.batch_size


# name -> record of every section: RunConfig's fields are the one list of them
SECTIONS: dict[str, type[Section]] = {
    f.name: cast(type[Section], f.default_factory) for f in dataclasses.fields(RunConfig) if f.name != "seed"
}
