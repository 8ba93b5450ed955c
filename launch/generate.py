"""Answer questions with a model from a config: the end-to-end check that a checkpoint loads and talks.

  python launch/generate.py --config=exsearch_jax/config.py:smollm2_135m \
      --question="What is the capital of France?" --question="Who wrote Hamlet?"
"""

import time

from absl import flags

from exsearch_jax import cli

_CONFIG = cli.define_config("config", "exsearch_jax/config.py:smollm2_135m", "Run config.")
_QUESTIONS = flags.DEFINE_multi_string(
    "question",
    [
        "What is the capital of France?",
        "Which planet is known as the Red Planet?",
        "Who wrote the play Romeo and Juliet?",
        "What gas do plants absorb from the air?",
    ],
    "Questions to answer (repeat the flag for several).",
)


def main(argv):
  del argv
  from exsearch_jax.assets import resolve_checkpoint
  from exsearch_jax.models import build_model, check_vocabulary, load_tokenizer
  from exsearch_jax.sampling import generate
  from exsearch_jax.sharding import make_mesh

  from exsearch_jax.config_check import typed

  cfg = typed(_CONFIG.value)
  start = time.time()
  mesh = make_mesh(cfg.mesh.sample)
  model = build_model(cfg.model, mesh=mesh, seed=cfg.seed)
  tokenizer = load_tokenizer(resolve_checkpoint(cfg.model.tokenizer or cfg.model.checkpoint))
  check_vocabulary(tokenizer, model.config.vocab_size, cfg.model.checkpoint)
  print(
      f"loaded {cfg.model.checkpoint} ({model.config.num_params() / 1e6:.0f}M params, "
      f"mesh {dict(mesh.shape)}) in {time.time() - start:.1f}s"
  )
  prompts = [
      tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
      for q in _QUESTIONS.value
  ]
  prompts = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
  g = cfg.generation
  start = time.time()
  outputs = generate(
      model, prompts, g.max_new_tokens, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k, seed=cfg.seed
  )
  elapsed = time.time() - start
  for question, tokens in zip(_QUESTIONS.value, outputs):
    print(f"Q: {question}\nA: {tokenizer.decode(tokens, skip_special_tokens=True).strip()}\n")
  total = sum(len(t) for t in outputs)
  print(f"{len(outputs)} answers, {total} new tokens in {elapsed:.1f}s (first call includes compilation)")


if __name__ == "__main__":
  cli.run(main)
