"""Presets are data: each builds, overrides apply, and the demo preset makes a working model."""
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
  with pytest.raises(ValueError, match="unknown preset 'nope'"):
    presets.get_config("nope")


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
