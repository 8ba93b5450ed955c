"""`load_split`: prepare a QA builder (once) and read one split back as example dicts, without TensorFlow."""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

from exsearch_jax.data.examples import DatasetError, from_features


def builder_class(name: str) -> Any:
  """The builder named `name`; a builder `x` outside builders.py lives in `exsearch_jax/data/x.py`."""
  from exsearch_jax.data.builders import BUILDERS  # noqa: PLC0415  (tensorflow_datasets only when loading)

  if name not in BUILDERS and name.isidentifier() and importlib.util.find_spec(f"exsearch_jax.data.{name}"):
    importlib.import_module(f"exsearch_jax.data.{name}")
  if name not in BUILDERS:
    raise DatasetError(f"unknown dataset {name!r} (known: {', '.join(sorted(BUILDERS))})")
  return BUILDERS[name]


def make_builder(name: str, data_dir: str | None = None, config=None):
  """`name` may carry the config, as in "hotpotqa/distractor"; `config` may be a config object or name."""
  name, _, config_name = name.partition("/")
  cls = builder_class(name)
  config = config or config_name or None
  names = [c.name for c in cls.BUILDER_CONFIGS]
  if isinstance(config, str) and config not in names:
    raise DatasetError(f"dataset {name!r} has no config {config!r} (configs: {', '.join(names)})")
  return cls(config=config, data_dir=os.fspath(data_dir) if data_dir else None)


def load_split(
    name: str, split: str, manual_dir: str | None = None, data_dir: str | None = None, *, config=None
) -> list[dict]:
  """Examples of one split in file order; prepares `data_dir` from `manual_dir` the first time."""
  import tensorflow_datasets as tfds  # noqa: PLC0415

  builder = make_builder(name, data_dir, config)
  label = f"{builder.name}/{builder.builder_config.name}" if builder.builder_config else builder.name
  if not builder.is_prepared():
    if hasattr(builder, "split_path"):  # a benchmark read from manual_dir: say which file is missing, and where
      path = builder.split_path(split, manual_dir)
      how = builder.instructions(builder.builder_config)
      if not os.path.isabs(path) and not manual_dir:
        raise DatasetError(f"{label}: pass manual_dir, the folder holding {path!r}. {how}")
      if not os.path.isfile(path):
        raise DatasetError(f"{label}: split {split!r} needs {path}, which is missing. {how}")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir) if manual_dir else None)
    )
  if split not in builder.info.splits:
    raise DatasetError(
        f"{label}: split {split!r} is not in the data prepared at {builder.data_dir} "
        f"(splits: {', '.join(sorted(builder.info.splits))}); delete that folder to prepare again"
    )
  source = builder.as_data_source(split=split)
  return [from_features(record) for record in source.__getitems__(range(len(source)))]
