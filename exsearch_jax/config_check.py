"""Every config field checked once, before any work, against its record in config_schema.py: its type, its range
or its choices, and no field the schema does not have. One `ConfigError` names the first bad field, e.g.
`config.rollout.top_p=1.5: must be in (0, 1]`. Runs, evaluations and sweeps call `validate` or `typed` first.
"""

from __future__ import annotations

from typing import Callable

from exsearch_jax.config_schema import RunConfig
from exsearch_jax.errors import ConfigError


def flatten(node, prefix: str = "", whole: Callable[[str], bool] = lambda path: False) -> dict:
  """{"section.field": value} of a config (a ConfigDict or the typed RunConfig); a section for which `whole(path)`
  holds stays one value."""
  if isinstance(node, RunConfig):
    node = node.to_dict()
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
  RunConfig.from_dict(cfg)
  return cfg


def typed(cfg) -> RunConfig:
  """The run config as checked, typed records (config_schema.py)."""
  return RunConfig.from_dict(cfg)


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
