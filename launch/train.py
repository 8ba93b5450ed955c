"""Train a searcher with Generalized EM:

  python launch/train.py --config=exsearch_jax/config.py:demo --workdir=runs/demo
  python launch/train.py --config=exsearch_jax/config.py:demo --config.em.iterations=5 --config.em.weights=paper

Re-running the same command with the same --workdir resumes from the last checkpoint.

Several processes (TPU pod workers, GPU hosts, SLURM tasks) run the same command; the process group comes
from --coordinator_address/--num_processes/--process_id, JAX_COORDINATOR_ADDRESS/JAX_NUM_PROCESSES/
JAX_PROCESS_ID, SLURM or the TPU pod (see README "Multi-host"), e.g. two local CPU processes:

  python launch/train.py --config=... --workdir=runs/mh --coordinator_address=localhost:12355 \
      --num_processes=2 --process_id=0     # and --process_id=1 in a second shell
"""

import os
import re
import sys
import time

from absl import flags

from exsearch_jax import cli, distributed

_CONFIG = cli.define_config("config", "exsearch_jax/config.py:demo", "Run config (preset).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Run directory: world, index, checkpoints, metrics, plots.")
_DRY_RUN = flags.DEFINE_bool(
    "dry_run",
    False,
    "Plan only: on config.target.devices simulated CPU devices, print "
    "memory per device and the estimated time of one EM iteration on config.target's "
    "accelerator; exit status 1 when it does not fit. Loads and trains nothing.",
)
distributed.define_flags()


def main(argv):
  del argv
  from absl import logging

  if _DRY_RUN.value:
    sys.exit(_dry_run())

  started = time.time()
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax and bm25s log every save at INFO; -v 0 brings them back
  with distributed.session():
    summary, primary = _train(), distributed.is_primary()
  if primary:
    _report(summary, started)


def _dry_run() -> int:
  """Simulates config.target.devices CPU devices (before JAX starts its backend) and prints the plan."""
  from exsearch_jax.config_check import typed
  from exsearch_jax.errors import ConfigError

  cfg = typed(_CONFIG.value)
  if cfg.target.devices <= 0:
    raise ConfigError("--dry_run needs config.target.devices (and config.target.accelerator) set")
  flags_now = re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", ""))
  os.environ["XLA_FLAGS"] = f"{flags_now} --xla_force_host_platform_device_count={cfg.target.devices}".strip()
  import jax

  jax.config.update("jax_platforms", "cpu")
  from exsearch_jax import capacity

  plan = capacity.plan(cfg)
  print("\n".join(plan.lines))
  print(
      "\nfits"
      if plan.fits
      else f"\ndoes not fit: the M-step needs {plan.train_bytes / capacity.GIB:.1f} GiB and "
      f"the rollout {plan.sample_bytes / capacity.GIB:.1f} GiB per device; {plan.limit / capacity.GIB:.1f} GiB "
      "are usable (more devices, a larger fsdp or tensor degree, more micro-batches, train.remat, or fewer "
      "trainable layers)"
  )
  return 0 if plan.fits else 1


def _train() -> dict:
  from exsearch_jax.em.loop import EMRun
  from exsearch_jax.models import save_pretrained
  from exsearch_jax.sharding import train_mesh

  run = EMRun(_CONFIG.value, _WORKDIR.value, mesh=train_mesh(_CONFIG.value.mesh))
  summary = run.run()
  save_pretrained(run.trainer.model(), f"{_WORKDIR.value}/final_model", tokenizer=run.tokenizer)
  return summary


def _report(summary: dict, started: float):
  print("\n" + summary["table"])
  if "em_gain" in summary:
    low, high = summary["em_gain_95ci"]
    print(f"\ndev EM gain over warm-up: {summary['em_gain']:+.1f} points (95% bootstrap CI {low:+.1f} .. {high:+.1f})")
    print(f"EM curve: {_WORKDIR.value}/em_curve.png")
  print(
      f"metrics: {_WORKDIR.value}/metrics.jsonl, trajectories: {_WORKDIR.value}/estep/*/trajectories.html, "
      f"final model: {_WORKDIR.value}/final_model   ({(time.time() - started) / 60:.1f} min)"
  )


if __name__ == "__main__":
  cli.run(main)
