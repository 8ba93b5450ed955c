"""Presets are data: each builds, overrides apply, and the demo preset makes a working model."""

import dataclasses

import numpy as np
import pytest

from exsearch_jax import config as presets
from exsearch_jax.assets import asset_path, resolve_checkpoint
from exsearch_jax.errors import ConfigError
from exsearch_jax.models import build_model
from exsearch_jax.sharding import make_mesh


@pytest.mark.parametrize("name", presets.PRESETS)
def test_presets_build_and_meshes_fill_8_devices(name):
  cfg = presets.get_config(name)
  for mesh_cfg in (cfg.mesh.sample, cfg.mesh.train):
    mesh = make_mesh(mesh_cfg)
    assert mesh.devices.size == 8


def test_unknown_preset():
  with pytest.raises(ConfigError, match="unknown preset 'nope'"):
    presets.get_config("nope")


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_demo_preset_model_runs_sharded():
  cfg = presets.get_config("demo")
  model = build_model(cfg.model, mesh=make_mesh(cfg.mesh.train), seed=0)
  logits = model(np.zeros((2, 5), np.int32))
  assert logits.shape == (2, 5, cfg.model.init.vocab_size)
  assert np.isfinite(np.asarray(logits)).all()


def test_assets_resolve():
  assert resolve_checkpoint("asset:smollm2-135m-instruct").endswith(".gguf")
  assert resolve_checkpoint("/some/dir") == "/some/dir"
  with pytest.raises(ConfigError, match="unknown asset"):
    asset_path("gpt-9")


@pytest.mark.parametrize("name", presets.PRESETS)
def test_presets_pass_validation(name):
  from exsearch_jax.config_check import validate

  validate(presets.get_config(name))


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("rollout.top_p", 1.5, r"config\.rollout\.top_p=1\.5: must be a number in \(0, 1\]"),
        ("rollout.top_p", 0.0, r"config\.rollout\.top_p"),
        ("rollout.samples", 0, r"config\.rollout\.samples=0: must be an integer >= 1"),
        ("rollout.policy", "psychic", r"config\.rollout\.policy='psychic': must be one of"),
        ("rollout.shown", 11, r"config\.rollout\.shown=11: must be <= config\.rollout\.retrieve_k=10"),
        ("train.learning_rate", -1e-5, r"config\.train\.learning_rate=-1e-05: must be a number > 0"),
        ("train.learning_rate", float("nan"), r"config\.train\.learning_rate=nan"),
        ("train.micro_batches", 3, r"config\.train\.micro_batches=3: must divide config\.train\.batch_size=32"),
        ("train.warmup_ratio", 1.0, r"config\.train\.warmup_ratio=1\.0: must be a number in \[0, 1\)"),
        ("em.weights", "best", r"config\.em\.weights='best'"),
        ("em.iterations", True, r"config\.em\.iterations=True: must be an integer"),
        ("data.format", "csv", r"config\.data\.format='csv'"),
        ("data.world_size", "huge", r"config\.data\.world_size='huge'"),
        ("data.source", "disk", r"config\.data\.source='disk': must be one of 'world', 'files'"),
        ("retrieval.kind", "faiss", r"config\.retrieval\.kind='faiss'"),
        ("retrieval.timeout", 0, r"config\.retrieval\.timeout=0"),
        ("stage0.corpus_share", 1.5, r"config\.stage0\.corpus_share=1\.5: must be a number in \[0, 1\]"),
        ("model.dtype", "float8", r"config\.model\.dtype='float8'"),
        ("target.accelerator", "tpu_v9", r"config\.target\.accelerator='tpu_v9'"),
    ],
)
def test_a_bad_field_is_one_config_error_naming_it(field, value, message):
  from exsearch_jax.config_check import validate

  cfg = presets.get_config("demo")
  section, key = field.split(".")
  cfg[section][key] = value
  with pytest.raises(ConfigError, match=message):
    validate(cfg)


def test_unknown_fields_mesh_axes_and_architecture_fields():
  from exsearch_jax.config_check import validate

  cfg = presets.get_config("demo")
  cfg.em.wieghts = "paper"  # a config file's typo adds a field
  with pytest.raises(ConfigError, match=r"config\.em\.wieghts: unknown field"):
    validate(cfg)
  cfg = presets.get_config("demo")
  cfg.mesh.train.pipeline = 2
  with pytest.raises(ConfigError, match=r"config\.mesh\.train="):
    validate(cfg)
  cfg = presets.get_config("demo")
  cfg.mesh.sample.data = 0
  with pytest.raises(ConfigError, match=r"config\.mesh\.sample="):
    validate(cfg)
  cfg = presets.get_config("demo")
  cfg.model.init.hidden = 64
  with pytest.raises(ConfigError, match=r"config\.model\.init=.*unknown: \['hidden'\]"):
    validate(cfg)
  cfg = presets.get_config("demo")
  cfg.retrieval.kind = "remote"
  with pytest.raises(ConfigError, match=r"config\.retrieval\.url"):
    validate(cfg)


def test_an_unwritable_workdir_is_named():
  from exsearch_jax.config_check import writable_directory

  with pytest.raises(ConfigError, match=r"--workdir=/proc/exsearch-never: cannot write there"):
    writable_directory("/proc/exsearch-never")


def test_one_source_of_defaults_the_typed_records():
  """The ConfigDict every preset starts from is the schema's defaults; per-module configs are those records."""
  from exsearch_jax.config_check import flatten, typed
  from exsearch_jax.config_schema import RunConfig
  from exsearch_jax.sampling.rollout import RolloutConfig

  assert flatten(presets._base()) == flatten(RunConfig().to_dict())
  assert typed(presets._base()) == RunConfig()
  assert RolloutConfig() == RunConfig().rollout
  assert (RolloutConfig().samples, RolloutConfig().max_steps, RolloutConfig().capacity) == (8, 20, 8192)  # the paper's
  run = typed(presets.get_config("demo"))
  assert run.rollout.samples == 4 and run.rollout.seed == run.seed
  with pytest.raises(dataclasses.FrozenInstanceError):
    run.rollout.samples = 2


def test_phases_share_one_record_type_and_batch_size_falls_back_to_train():
  from exsearch_jax.config_check import typed
  from exsearch_jax.config_schema import PhaseConfig

  cfg = presets.get_config("demo")
  cfg.seed = 7
  run = typed(cfg)
  assert all(isinstance(run.phase(k), PhaseConfig) for k in ("stage0", "warmup", "mstep"))
  assert run.phase("mstep") is run.train
  assert run.batch_size("warmup") == run.train.batch_size == 32 and run.batch_size("stage0") == 16
  assert run.rollout.seed == 7


def test_world_tasks_with_benchmark_files_are_refused():
  from exsearch_jax.config_check import validate

  cfg = presets.get_config("demo")  # stage0.examples > 0
  cfg.data.source = "files"
  with pytest.raises(ConfigError, match=r"config\.stage0\.examples .* config\.data\.source=files"):
    validate(cfg)


def test_presets_are_a_registry():
  assert set(presets.PRESETS) == {"demo", "smollm2_135m", "qwen2_5_7b", "llama3_1_8b"}
  assert presets.get_config("smollm2_135m").model.checkpoint == "asset:smollm2-135m-instruct"


def test_an_empty_world_size_still_means_benchmark_files():
  """The earlier spelling (`--config.data.world_size=`) keeps working: it is `data.source=files`."""
  from exsearch_jax.config_check import typed

  cfg = presets.get_config("smollm2_135m")
  cfg.data.world_size = ""
  data = typed(cfg).data
  assert data.source == "files" and data.world_size == "demo"
  cfg.data.wrold = 1
  with pytest.raises(ConfigError, match=r"config\.data\.wrold: unknown field"):
    typed(cfg)
