"""Train a searcher with Generalized EM:

  python launch/train.py --config=exsearch_jax/config.py:demo --workdir=runs/demo
  python launch/train.py --config=exsearch_jax/config.py:demo --config.em.iterations=5 --config.em.weights=paper

Re-running the same command with the same --workdir resumes from the last checkpoint.
"""
import time

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "exsearch_jax/config.py:demo", "Run config (preset).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Run directory: world, index, checkpoints, metrics, plots.")


def main(argv):
  del argv
  import jax
  from absl import logging
  from exsearch_jax.em.loop import EMRun
  from exsearch_jax.models import save_pretrained
  from exsearch_jax.sharding import make_mesh

  started = time.time()
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax and bm25s log every save at INFO; -v 0 brings them back
  cfg = _CONFIG.value
  mesh = make_mesh(cfg.mesh.train) if jax.device_count() > 1 else None
  run = EMRun(cfg, _WORKDIR.value, mesh=mesh)
  summary = run.run()
  save_pretrained(run.trainer.model(), f"{_WORKDIR.value}/final_model", tokenizer=run.tokenizer)
  print("\n" + summary["table"])
  if "em_gain" in summary:
    low, high = summary["em_gain_95ci"]
    print(f"\ndev EM gain over warm-up: {summary['em_gain']:+.1f} points (95% bootstrap CI {low:+.1f} .. {high:+.1f})")
    print(f"EM curve: {_WORKDIR.value}/em_curve.png")
  print(f"metrics: {_WORKDIR.value}/metrics.jsonl, trajectories: {_WORKDIR.value}/estep/*/trajectories.html, "
        f"final model: {_WORKDIR.value}/final_model   ({(time.time() - started) / 60:.1f} min)")


if __name__ == "__main__":
  app.run(main)
