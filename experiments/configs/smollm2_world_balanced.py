"""smollm2_world with the 64 seed trajectories taken from each question kind in turn (em.seed_balance):

  python experiments/em_run.py --config=experiments/configs/smollm2_world_balanced.py \
      --workdir=runs/smollm2_world_balanced --out=experiments/results/smollm2_world_balanced

Why: in smollm2_world the first 64 train questions hold 3 chains of 3-4 hops (the train split has 7.7%, dev
21.5%); the warmed-up model then searches twice for every question and no E-step sample of a 3-4-hop
question is correct, so EM has nothing to reinforce there. Everything else is as in smollm2_world.
"""

import importlib.util
import os


def get_config():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smollm2_world.py")
  spec = importlib.util.spec_from_file_location("smollm2_world", path)
  base = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(base)
  c = base.get_config()
  c.em.seed_balance = True
  return c
