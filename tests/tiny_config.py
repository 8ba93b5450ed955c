"""The tiny EM run the loop and multi-host tests share; also a config file for the launchers:
`--config=tests/tiny_config.py` (from scratch) or `--config=tests/tiny_config.py:/path/to/hf_model`
(one EM iteration starting from that model, no stage 0 or warm-up)."""

from exsearch_jax.config import get_config as preset


def get_config(checkpoint: str = ""):
  cfg = preset("demo")
  cfg.data.world_size = "tiny"
  cfg.model.init.update(
      dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=16)
  )
  cfg.rollout.update(dict(samples=2, max_steps=3, step_tokens=16, answer_tokens=6, capacity=512, batch_rows=32))
  cfg.em.update(dict(iterations=2, weights="uniform", questions_per_iteration=12, seed_trajectories=16))
  cfg.train.update(dict(batch_size=4, micro_batches=2, max_length=512, checkpoint_every=2, learning_rate=3e-3))
  cfg.warmup.update(dict(epochs=40, learning_rate=1e-2))  # enough for the tiny model to write parseable turns
  cfg.stage0.update(dict(examples=16, learning_rate=3e-3))
  cfg.data.dev_limit = 0
  if checkpoint:  # a trained model (and its word tokenizer) from an HF directory
    cfg.model.update(dict(checkpoint=checkpoint, tokenizer=""))
    cfg.stage0.examples = 0
    cfg.warmup.epochs = 0
    cfg.em.iterations = 1
    cfg.train.update(dict(batch_size=8, micro_batches=1))  # rows split over 8 devices
  return cfg
