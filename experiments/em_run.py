"""One EM run as an experiment: train (resumable), then write its results where they are kept:

  python experiments/em_run.py --config=experiments/configs/smollm2_world.py --workdir=runs/smollm2_world \
      --out=experiments/results/smollm2_world

Rerunning the command resumes the run in --workdir from its last checkpoint; the trained model is saved as an
HF directory in <workdir>/final_model. Results are rewritten after every evaluation (and at the end), so a run
that spans sessions always has its latest tables; --results_only writes them without training further.
--out receives results.md (dev
scores and correct answers by question kind per iteration, the EM gain with its paired bootstrap 95%
interval, minutes per phase, E-step statistics), em_curve.png, metrics.jsonl, the dev trajectories of the
first and last evaluation as HTML, and provenance.json (command, resolved config, revision, machine).
"""

import json
import os
import shutil
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from exsearch_jax import cli  # pylint: disable=wrong-import-position

_CONFIG = cli.define_config("config", None, "Run config (a preset or a file in experiments/configs).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (resumed when it holds a checkpoint).")
_OUT = flags.DEFINE_string("out", None, "Where the results are written.")
_RESULTS_ONLY = flags.DEFINE_bool("results_only", False, "Write the results of the run so far; do not train.")
flags.mark_flags_as_required(["config", "workdir", "out"])

SCORES = ("em", "f1", "acc", "recall@3", "recall@5", "precision@3", "precision@5", "mean_steps", "parse_share")


def _scores_table(evals: list) -> str:
  lines = ["| iteration | " + " | ".join(SCORES) + " |", "|---" * (len(SCORES) + 1) + "|"]
  for r in evals:
    name = "warm-up" if r["iteration"] == 0 else str(r["iteration"])
    lines.append(
        f"| {name} | "
        + " | ".join(
            f"{r.get(k, float('nan')):.1f}" if k in ("em", "f1", "acc") else f"{r.get(k, float('nan')):.2f}"
            for k in SCORES
        )
        + " |"
    )
  return "\n".join(lines)


def _kinds_table(evals: list) -> str:
  kinds = sorted({k for r in evals for k in r.get("by_type", {})})
  lines = ["| iteration | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
  for r in evals:
    name = "warm-up" if r["iteration"] == 0 else str(r["iteration"])
    cells = [f"{r['by_type'][k][0]} / {r['by_type'][k][1]}" if k in r.get("by_type", {}) else "" for k in kinds]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _phases_table(phases: list) -> str:
  minutes = {}
  for p in phases:  # a resumed phase adds up its parts
    minutes[p["phase"]] = minutes.get(p["phase"], 0.0) + p["seconds"] / 60
  lines = ["| phase | minutes |", "|---|---|"] + [f"| {k} | {v:.1f} |" for k, v in minutes.items()]
  lines.append(f"| total | {sum(minutes.values()):.1f} |")
  return "\n".join(lines)


def _estep_table(esteps: list) -> str:
  keys = ("correct_share", "valid_share", "examples", "effective_sample_size", "log_marginal_bound")
  lines = ["| iteration | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
  for r in esteps:
    lines.append(
        f"| {r['iteration']} | "
        + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys)
        + " |"
    )
  return "\n".join(lines)


def _estep_kinds_table(workdir: str, questions: list) -> str:
  """What the E-step found, by question kind: the share of questions with at least one correct sample (the
  only ones whose correct searches the M-step can reinforce), correct samples, searches, repeated queries."""
  from exsearch_jax.eval.metrics import exact_match
  from exsearch_jax.eval.runner import question_kind

  kind_of = {q["id"]: question_kind(q) for q in questions}
  lines = [
      "| iteration | kind | questions with a correct sample | correct samples | mean searches "
      "| samples repeating a query |",
      "|---|---|---|---|---|---|",
  ]
  estep = os.path.join(workdir, "estep")
  if not os.path.isdir(estep):  # results written after the warm-up's evaluation
    return "no E-step yet"
  for it in sorted((int(d) for d in os.listdir(estep) if d.isdigit())):
    path = os.path.join(workdir, "estep", str(it), "trajectories.jsonl")
    if not os.path.exists(path):
      continue
    rows = {}
    with open(path, encoding="utf-8") as f:
      for line in f:
        t = json.loads(line)
        queries = [s["query"].strip().lower() for s in t["steps"]]
        r = rows.setdefault(kind_of.get(t["question_id"], "unknown"), {"q": {}, "n": 0, "ok": 0, "steps": 0, "rep": 0})
        right = bool(exact_match(t.get("answer") or "", t["golden_answers"]))
        r["q"][t["question_id"]] = r["q"].get(t["question_id"], False) or right
        r["n"], r["ok"], r["steps"] = r["n"] + 1, r["ok"] + right, r["steps"] + len(queries)
        r["rep"] += len(set(queries)) < len(queries)
    for kind, r in sorted(rows.items()):
      lines.append(
          f"| {it} | {kind} | {sum(r['q'].values())} / {len(r['q'])} | {r['ok']} / {r['n']} "
          f"| {r['steps'] / r['n']:.2f} | {r['rep'] / r['n']:.2f} |"
      )
  return "\n".join(lines)


def write_results(run, out: str, title: str) -> None:
  from exsearch_jax.em import report
  from experiments import provenance

  workdir = run.workdir
  summary = run.summary()
  evals = report.latest_per_iteration(run.log.read("eval"))
  esteps = report.latest_per_iteration(run.log.read("estep"))
  os.makedirs(out, exist_ok=True)
  parts = [
      f"# {title}",
      "",
      "Dev scores (greedy, one trajectory per question):",
      "",
      _scores_table(evals),
      "",
      "Correct dev answers by question kind:",
      "",
      _kinds_table(evals),
      "",
  ]
  if "em_gain" in summary:
    low, high = summary["em_gain_95ci"]
    parts += [
        f"Dev EM gain of the last iteration over warm-up: {summary['em_gain']:+.1f} points "
        f"(paired bootstrap 95% interval {low:+.1f} .. {high:+.1f}"
        + ("; the interval includes 0: not significant)" if low <= 0 <= high else ")"),
        "",
    ]
  parts += [
      "E-step (sampled trajectories):",
      "",
      _estep_table(esteps),
      "",
      "E-step by question kind (exact match of the sampled answer):",
      "",
      _estep_kinds_table(workdir, run.data.train),
      "",
      "Wall time per phase:",
      "",
      _phases_table(run.log.read("phase")),
      "",
  ]
  with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(parts))
  for name in ("em_curve.png", "metrics.jsonl", "summary.json"):
    if os.path.exists(os.path.join(workdir, name)):
      shutil.copy(os.path.join(workdir, name), os.path.join(out, name))
  for r in (evals[:1] + evals[-1:]) if evals else []:
    page = os.path.join(workdir, "eval", str(r["iteration"]), "trajectories.html")
    if os.path.exists(page):
      shutil.copy(page, os.path.join(out, f"dev_trajectories_{r['iteration']}.html"))
  provenance.record(out, run.cfg)
  print("\n".join(parts))


def main(argv):
  del argv
  from absl import logging
  from exsearch_jax.em.loop import EMRun

  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  from exsearch_jax.models import save_pretrained

  run = EMRun(_CONFIG.value, _WORKDIR.value)
  title = os.path.basename(_OUT.value.rstrip("/"))
  if _RESULTS_ONLY.value:
    write_results(run, _OUT.value, title)
    return
  run.run(on_phase=lambda phase: write_results(run, _OUT.value, title) if phase.kind == "eval" else None)
  final = os.path.join(_WORKDIR.value, "final_model")
  if not os.path.exists(os.path.join(final, "config.json")):
    save_pretrained(run.trainer.model(), final, tokenizer=run.tokenizer)
  write_results(run, _OUT.value, title)


if __name__ == "__main__":
  cli.run(main)
