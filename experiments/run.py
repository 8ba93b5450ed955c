"""Runs an experiment of experiments/catalog.py as a sweep of normal EM runs and writes its tables and plots:

  python experiments/run.py --list
  python experiments/run.py --experiment=weighting --size=full --seeds=0,1,2
  python experiments/run.py --experiment=iterations --size=smoke --out=/tmp/results

Each (variant, seed) is one EMRun in <workdir>/<size>/<experiment>/<variant>/seed<N>; a finished run adds a line
to <out>/<experiment>/runs.jsonl and is skipped when the command is run again, and a killed run resumes from its
checkpoint, so a sweep can span sessions. After every run <out>/<experiment>/ gets results.md (means and 95%
intervals over seeds, each variant against the reference), <experiment>.png, the resolved configs and
provenance.json (command, revision, machine).
"""

import os
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from exsearch_jax import cli  # pylint: disable=wrong-import-position

_EXPERIMENT = flags.DEFINE_string("experiment", None, "An experiment of experiments/catalog.py (see --list).")
_SIZE = flags.DEFINE_enum("size", "full", ["smoke", "full"], "smoke: minutes, checks the outputs; full: the results.")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds to run (default: the experiment's seeds; smoke: 0).")
_VARIANTS = flags.DEFINE_list("variants", None, "Only these variants (default: all).")
_OUT = flags.DEFINE_string("out", None, "Results root (default: experiments/results; smoke: runs/smoke_results).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/experiments", "Root of the runs' working directories.")
_LIST = flags.DEFINE_bool("list", False, "List the experiments with run counts and estimated minutes, then exit.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Rewrite the tables and plots from runs.jsonl; run nothing.")


def _out() -> str:
  return _OUT.value or ("experiments/results" if _SIZE.value == "full" else "runs/smoke_results")


def _list() -> None:
  from experiments import catalog, sweep

  print(f"{'experiment':<20} {'variants':>8} {'seeds':>6} {'runs':>5} {'minutes':>8} {'recorded':>9}  question")
  for exp in catalog.EXPERIMENTS.values():
    planned = sweep.plan(exp, None, _SIZE.value)
    recorded = [r for r in sweep.read_records(_out(), exp.name) if r.key.size == _SIZE.value]
    per_run = (sum(r.minutes for r in recorded) / len(recorded)) if recorded else exp.minutes[_SIZE.value]
    left = sum(1 for _, key in planned if key not in {r.key for r in recorded})
    print(
        f"{exp.name:<20} {len(exp.variants):>8} {len(planned) // len(exp.variants):>6} {len(planned):>5} "
        f"{per_run * left:>8.0f} {len(recorded):>9}  {exp.question}"
    )
  print(
      f"(minutes: estimated for the runs not yet recorded in {_out()}, {_SIZE.value} size, from recorded runs "
      "where there are any, else from measurements on 2 CPU cores)"
  )


def _report(exp, out: str) -> str:
  from experiments import aggregate, provenance, sweep

  records = [r for r in sweep.read_records(out, exp.name) if r.key.size == _SIZE.value]
  directory = os.path.join(out, exp.name)
  os.makedirs(directory, exist_ok=True)
  seeds = sorted({r.key.seed for r in records})
  default_out = os.path.abspath(os.path.join(provenance.ROOT, "experiments", "results"))
  where = "" if os.path.abspath(out) == default_out else f" --out={os.path.relpath(out, provenance.ROOT)}"
  commands = [
      f"python experiments/run.py --experiment={exp.name} --size={_SIZE.value} "
      f"--seeds={','.join(str(s) for s in seeds)}{where}"
  ]
  meta = provenance.record(directory, None, experiment=exp.name, size=_SIZE.value, reproduce=commands[0])
  if records:
    aggregate.plot(exp, records, os.path.join(directory, f"{exp.name}.png"))
  text = aggregate.markdown(exp, records, _SIZE.value, commands, meta)
  tmp = os.path.join(directory, "results.md.tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, os.path.join(directory, "results.md"))
  return text


def main(argv):
  del argv
  from absl import logging
  from exsearch_jax.errors import ExsearchError

  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if _LIST.value:
    _list()
    return
  if not _EXPERIMENT.value:
    raise ExsearchError("--experiment is required (or --list); choose one of those --list names")
  from experiments import catalog, sweep

  exp = catalog.get(_EXPERIMENT.value)
  try:
    seeds = [int(s) for s in _SEEDS.value] if _SEEDS.value else None
  except ValueError:
    raise ExsearchError(f"--seeds={','.join(_SEEDS.value)}: comma-separated integers") from None
  out = _out()
  if not _REPORT_ONLY.value:
    planned = sweep.plan(exp, seeds, _SIZE.value, _VARIANTS.value)
    for line in sweep.execute(exp, planned, out, _WORKDIR.value, on_record=lambda _: _report(exp, out)):
      print(f"[sweep] {line}", flush=True)
  print(_report(exp, out))


if __name__ == "__main__":
  cli.run(main)
