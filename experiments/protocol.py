"""Does an untrained instruct model follow the search protocol? Zero-shot, greedy, on a benchmark file, with
neither, each and both of the instruction and the grammar-constrained turns:

  python experiments/protocol.py --format=hotpotqa --dev=hotpot_dev_distractor_v1.json --dev_limit=53
  python experiments/protocol.py ... --model=runs/smollm2_world/final_model --variants=grammar   # a trained model

Writes OUT/<variant>.json (the evaluation), OUT/<variant>.jsonl and .html (its trajectories), OUT/results.md
(the table) and OUT/provenance.json. A variant whose JSON exists is not run again, so a killed run resumes.
"""

import json
import os
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from exsearch_jax import cli  # pylint: disable=wrong-import-position

_FORMAT = flags.DEFINE_string("format", "hotpotqa", "config.data.format of the dev file.")
_DEV = flags.DEFINE_string("dev", None, "Dev file in its official format.", required=True)
_DEV_LIMIT = flags.DEFINE_integer("dev_limit", 0, "First N questions (0 = all).")
_MODEL = flags.DEFINE_string("model", "asset:smollm2-135m-instruct", "HF directory, .gguf or asset:NAME.")
_OUT = flags.DEFINE_string("out", "experiments/results/protocol", "Results folder.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/protocol", "Corpus and index (built once).")
_VARIANTS = flags.DEFINE_list("variants", "neither,instruction,grammar,both", "Which variants to run.")

VARIANTS = {
    "neither": ("none", False),
    "instruction": ("exsearch", False),
    "grammar": ("none", True),
    "both": ("exsearch", True),
}
_TOKEN_FIELDS = ("tokens", "loss_mask", "logprobs")
COLUMNS = ("parse_share", "mean_steps", "recall@3", "recall@5", "precision@3", "precision@5", "em", "f1", "acc")


def _config(instruction: str, constrained: bool):
  from exsearch_jax.config import get_config

  cfg = get_config("smollm2_135m")
  cfg.data.update(dict(source="files", format=_FORMAT.value, dev=_DEV.value, dev_limit=_DEV_LIMIT.value))
  cfg.rollout.update(dict(instruction=instruction, constrained=constrained))
  from exsearch_jax.config_check import typed

  return typed(cfg)


def main(argv):
  del argv
  from exsearch_jax.assets import resolve_checkpoint
  from exsearch_jax.em import setup
  from exsearch_jax.eval.html_report import write_html, write_jsonl
  from exsearch_jax.eval.runner import evaluate
  from exsearch_jax.models import from_pretrained, load_tokenizer
  from exsearch_jax.sampling.chat import ChatFormat
  from experiments import provenance

  os.makedirs(_OUT.value, exist_ok=True)
  path = resolve_checkpoint(_MODEL.value)
  chat, model, rows = ChatFormat(load_tokenizer(path)), None, {}
  chosen = {name: VARIANTS[name] for name in _VARIANTS.value}
  for name, (instruction, constrained) in chosen.items():
    out = os.path.join(_OUT.value, f"{name}.json")
    cfg = _config(instruction, constrained)
    if not os.path.exists(out):
      data = setup.load_data(cfg, _WORKDIR.value, need_train=False)
      retriever = setup.load_retriever(cfg, data.corpus_path, _WORKDIR.value)
      model = model or from_pretrained(path)
      metrics, trajectories = evaluate(model, chat, retriever, data.dev, cfg.rollout, progress=True)
      passages = {p.id: {"title": p.title, "text": p.text} for p in retriever.passages}
      write_html(trajectories, os.path.join(_OUT.value, f"{name}.html"), chat, passages, title=f"zero-shot: {name}")
      # what was searched, read and answered (token ids stay out: megabytes)
      write_jsonl(trajectories, os.path.join(_OUT.value, f"{name}.jsonl"), drop=_TOKEN_FIELDS)
      with open(out, "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=1)
    with open(out, encoding="utf-8") as f:
      rows[name] = json.load(f)
    print(name, {k: rows[name][k] for k in COLUMNS}, flush=True)
  lines = [
      "| variant (instruction, grammar) | " + " | ".join(COLUMNS) + " | stop reasons |",
      "|---" * (len(COLUMNS) + 2) + "|",
  ]
  for name, (instruction, constrained) in chosen.items():
    r = rows[name]
    lines.append(
        f"| {name} ({instruction}, {'on' if constrained else 'off'}) | "
        + " | ".join(f"{r[k]:.2f}" if k not in ("em", "f1", "acc") else f"{r[k]:.1f}" for k in COLUMNS)
        + f" | {r['stop_reasons']} |"
    )
  table = "\n".join(lines)
  with open(os.path.join(_OUT.value, "results.md"), "w", encoding="utf-8") as f:
    f.write(
        f"# Zero-shot protocol following: {_MODEL.value} on {os.path.basename(_DEV.value)} "
        f"({next(iter(rows.values()))['n']} questions, greedy)\n\n{table}\n"
    )
  provenance.record(_OUT.value, _config(*next(iter(chosen.values()))), variants=chosen)
  print(table)


if __name__ == "__main__":
  cli.run(main)
