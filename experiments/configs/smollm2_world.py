"""SmolLM2-135M-Instruct learns to search the synthetic world by EM, sized for a 2-core CPU (about two hours):

  python experiments/em_run.py --config=experiments/configs/smollm2_world.py --workdir=runs/smollm2_world \
      --out=experiments/results/smollm2_world

Sizing (measured on 2 cores): a train step of 16 x 384 tokens takes 27 s with every weight trained and 13 s
with the top 10 of 30 layers; greedy rollouts of 64 dev questions take 165 s at 32 rows and 208 s at 64.
"""

from exsearch_jax.config import get_config as preset


def get_config():
  c = preset("smollm2_135m")  # grammar-constrained turns, no instruction, answer at the step budget
  c.data.update(dict(world_size="demo", dev_limit=200))
  # the world's passages are one or two sentences: two shown passages and short turns are enough
  c.rollout.update(
      dict(
          samples=4,
          max_steps=4,
          shown=2,
          step_tokens=48,
          answer_tokens=12,
          capacity=1024,
          batch_rows=32,
          temperature=0.8,
          top_p=0.95,
      )
  )
  c.em.update(dict(iterations=3, weights="code", questions_per_iteration=128, seed_trajectories=64, replay_seeds=True))
  c.warmup.update(dict(epochs=3, learning_rate=1e-4, batch_size=16))
  c.train.update(
      dict(
          learning_rate=3e-5,
          batch_size=16,
          micro_batches=4,
          max_length=1024,
          epochs=1,
          trainable_layers=15,
          checkpoint_every=10,
      )
  )
  return c
