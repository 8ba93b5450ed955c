"""Evaluate a searcher (an HF directory, e.g. a run's final_model, or a .gguf / asset:NAME) on a dataset:

  python launch/eval.py --config=exsearch_jax/config.py:demo --workdir=runs/demo --model=runs/demo/final_model
  python launch/eval.py --config=exsearch_jax/config.py:smollm2_135m --workdir=runs/nq \
      --config.data.source=files --config.data.format=flashrag --config.data.corpus=wiki.jsonl \
      --config.data.dev=nq_dev.jsonl

Benchmark files in their official formats (HotpotQA, 2Wiki, MuSiQue carry their passages; the corpus and a dense
index are then built in the workdir once):

  python launch/eval.py --config=exsearch_jax/config.py:smollm2_135m --workdir=runs/hotpot \
      --model=asset:smollm2-135m-instruct --config.data.source=files --config.data.format=hotpotqa \
      --config.data.dev=hotpot_dev_distractor_v1.json

Prints EM / F1 / Acc (greedy, one trajectory per question), Recall@3/5 and Precision@3/5 of the supporting
passages, the parse share and the search diagnostics, and writes <workdir>/eval_<name>.json, the trajectories
(eval_<name>.jsonl) and an HTML page of them. Multi-process flags as in launch/train.py.
"""

import json
import math
import os

from absl import flags

from exsearch_jax import cli, distributed

_CONFIG = cli.define_config("config", "exsearch_jax/config.py:demo", "Run config (data, retrieval).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Where the world / index live (built if missing).")
_MODEL = flags.DEFINE_string("model", None, "HF directory, .gguf file or asset:NAME (default: config.model).")
_NAME = flags.DEFINE_string("name", "model", "Name of this evaluation in the output files.")
distributed.define_flags()


def main(argv):
  del argv
  with distributed.session():  # several processes: each answers its share of the questions
    _evaluate()


def _evaluate():
  import jax
  from exsearch_jax.assets import resolve_checkpoint
  from exsearch_jax.em import setup
  from exsearch_jax.eval.runner import evaluate
  from exsearch_jax.models import check_vocabulary, from_pretrained, load_tokenizer
  from exsearch_jax.eval import html_report
  from exsearch_jax.sampling.chat import ChatFormat
  from exsearch_jax.sharding import sampling_meshes

  from exsearch_jax.config_check import typed, writable_directory

  cfg = typed(_CONFIG.value)
  writable_directory(_WORKDIR.value)
  path = resolve_checkpoint(_MODEL.value) if _MODEL.value else None
  with distributed.primary_first("exsearch-setup"):
    data = setup.load_data(cfg, _WORKDIR.value, need_train=False)
    retriever = setup.load_retriever(cfg, data.corpus_path, _WORKDIR.value)
    tokenizer = load_tokenizer(path) if path else setup.load_tokenizer_for(cfg, data, _WORKDIR.value)
  chat = ChatFormat(tokenizer)
  mesh = sampling_meshes(cfg.mesh.sample)[1] if jax.local_device_count() > 1 else None  # this process's devices
  if path:
    model = from_pretrained(path, dtype=cfg.model.dtype, mesh=mesh)
    check_vocabulary(tokenizer, model.config.vocab_size, _MODEL.value)
  else:
    model = setup.build_run_model(cfg, tokenizer, chat, mesh)  # checks the vocabulary itself
  metrics, trajectories = evaluate(
      model, chat, retriever, data.dev, cfg.rollout, mesh=mesh, progress=distributed.is_primary()
  )
  if not distributed.is_primary():
    return
  out = os.path.join(_WORKDIR.value, f"eval_{_NAME.value}.json")
  metrics = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in metrics.items()}  # strict JSON
  with open(out, "w", encoding="utf-8") as f:
    json.dump(metrics, f, indent=1)
  with open(os.path.join(_WORKDIR.value, f"eval_{_NAME.value}.jsonl"), "w", encoding="utf-8") as f:
    for t in trajectories:
      f.write(json.dumps(t.to_json(), ensure_ascii=False) + "\n")
  passages = {p.id: {"title": p.title, "text": p.text} for p in getattr(retriever, "passages", [])}
  html_report.write_html(trajectories, os.path.join(_WORKDIR.value, f"eval_{_NAME.value}.html"), chat, passages)
  print(json.dumps(metrics, indent=1))
  print(
      f"EM {metrics['em']:.1f}  F1 {metrics['f1']:.1f}  Acc {metrics['acc']:.1f} on {metrics['n']} questions "
      f"-> {out}"
  )


if __name__ == "__main__":
  cli.run(main)
