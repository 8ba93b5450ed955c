"""Every test process sees exactly 8 simulated CPU devices (multi-device tests need them; others use device 0),
whatever XLA_FLAGS the user has: other XLA flags are kept, a device count of their own is replaced."""

import os
import re

os.environ["XLA_FLAGS"] = (
    re.sub(r"--xla_force_host_platform_device_count=\S+", "", os.environ.get("XLA_FLAGS", ""))
    + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import jax  # noqa: E402  (after XLA_FLAGS)
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """The tiny EM run (tests/tiny_config.py) from scratch, once per session: (workdir, summary, parameters).
  Its final model, with its word tokenizer, is in <workdir>/final_model for tests that need a trained model."""
  import numpy as np
  from exsearch_jax.em.loop import EMRun
  from exsearch_jax.models import save_pretrained
  from tests.tiny_config import get_config

  workdir = str(tmp_path_factory.mktemp("tiny_run"))
  run = EMRun(get_config(), workdir, progress=False)
  summary = run.run()
  save_pretrained(run.trainer.model(), os.path.join(workdir, "final_model"), tokenizer=run.tokenizer)
  return workdir, summary, [np.asarray(x) for x in jax.tree.leaves(run.params())]


def pytest_collection_modifyitems(items):
  """A test that needs the tiny EM run (a whole run from scratch) is slow, wherever it lives."""
  for item in items:
    if "tiny_run" in getattr(item, "fixturenames", ()):
      item.add_marker(pytest.mark.slow)
