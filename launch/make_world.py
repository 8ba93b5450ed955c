"""Write the synthetic multi-hop world: `python launch/make_world.py --seed 0 --out /tmp/world [--size demo]`.

Writes corpus.jsonl and train/dev/test.jsonl (FlashRAG QA form), then prints the statistics and a few
questions with their oracle trajectories.
"""

import json

from absl import flags

from exsearch_jax import cli

_SEED = flags.DEFINE_integer("seed", 0, "World seed: the same seed writes byte-identical files.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_SIZE = flags.DEFINE_enum("size", "demo", ["tiny", "demo", "large"], "World size.")
_SAMPLES = flags.DEFINE_integer("samples", 3, "Sample questions to print.")
flags.mark_flags_as_required(["out"])


def main(argv):
  del argv
  from exsearch_jax import trajectory
  from exsearch_jax.data import world as W

  world = W.make_world(_SEED.value, _SIZE.value)
  paths = W.write_world(world, _OUT.value)
  print(json.dumps(W.statistics(world), indent=2))
  passages = {p["id"]: p for p in world.passages}
  for q in world.splits["train"][: _SAMPLES.value]:
    steps = [{"query": s["query"], "hits": [passages[s["passage_id"]]], "fact": s["fact"]} for s in q["decomposition"]]
    print(f"\n--- {q['id']} ({q['type']}, {q['hops']} hops), gold: {q['golden_answers']}")
    print(trajectory.render_text(trajectory.chat_messages(q["question"], steps, q["golden_answers"][0], shown=1)))
  print("\nwrote " + ", ".join(paths.values()))


if __name__ == "__main__":
  cli.run(main)
