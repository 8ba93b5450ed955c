"""An experiment's records as tables and plots: means with 95% intervals over seeds, and each variant against
the reference variant, paired by seed, with the difference called not significant when its interval holds 0.

Intervals are Student-t intervals over seeds (the runs are the unit: the demo's warm-up alone moves EM by
several points between seeds), so three seeds give wide intervals; that is the honest width.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from experiments.catalog import Experiment
from experiments.sweep import RunRecord

# (record key, column title, digits); "bound" is the E-step's GEM bound, known from iteration 1 on
CURVES = (
    ("em", "EM", 1),
    ("f1", "F1", 1),
    ("acc", "Acc", 1),
    ("recall@5", "R@5", 2),
    ("precision@5", "P@5", 2),
    ("mean_steps", "searches", 2),
    ("log_marginal_bound", "GEM bound", 3),
)


def interval(values: Sequence[float]) -> tuple[float, float, float]:
  """(mean, low, high) of the 95% Student-t interval; low = high = NaN for fewer than two values."""
  values = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
  if len(values) == 0:
    return float("nan"), float("nan"), float("nan")
  mean = float(values.mean())
  if len(values) < 2:
    return mean, float("nan"), float("nan")
  from scipy import stats

  half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
  return mean, mean - half, mean + half


def _cell(stat: tuple, digits: int) -> str:
  mean, low, high = stat
  if math.isnan(mean):
    return ""
  if math.isnan(low):
    return f"{mean:.{digits}f}"
  return f"{mean:.{digits}f} ({low:.{digits}f}..{high:.{digits}f})"


def _value(record: RunRecord, iteration: int, key: str) -> float:
  rows = record.esteps if key == "log_marginal_bound" else record.evals
  for r in rows:
    if r["iteration"] == iteration:
      return float(r.get(key, float("nan")))
  return float("nan")


def by_variant(exp: Experiment, records: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
  """Records grouped by variant in the experiment's order (variants with no finished run left out)."""
  out = {
      v.label: sorted([r for r in records if r.key.variant == v.label], key=lambda r: r.key.seed) for v in exp.variants
  }
  return {k: v for k, v in out.items() if v}


def iterations_of(records: Sequence[RunRecord]) -> list[int]:
  return sorted({r["iteration"] for rec in records for r in rec.evals})


def curve(records: Sequence[RunRecord], key: str) -> list[tuple[int, tuple]]:
  return [(it, interval([_value(r, it, key) for r in records])) for it in iterations_of(records)]


def scores_table(exp: Experiment, records: Sequence[RunRecord]) -> str:
  lines = [
      "| variant | seeds | iteration | " + " | ".join(title for _, title, _ in CURVES) + " |",
      "|---" * (len(CURVES) + 3) + "|",
  ]
  for label, recs in by_variant(exp, records).items():
    for it in iterations_of(recs):
      cells = [_cell(interval([_value(r, it, key) for r in recs]), digits) for key, _, digits in CURVES]
      lines.append(f"| {label} | {len(recs)} | {'warm-up' if it == 0 else it} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def comparison_table(exp: Experiment, records: Sequence[RunRecord]) -> str:
  """Each variant's last-iteration EM minus the reference's, paired by seed."""
  groups = by_variant(exp, records)
  ref = exp.reference_label
  if len(exp.variants) == 1:
    return "(one variant: nothing to compare)"
  if ref not in groups or len(groups) < 2:
    return f"(needs finished runs of the reference variant {ref!r} and of another variant)"
  ref_em = {r.key.seed: r.evals[-1]["em"] for r in groups[ref]}
  lines = [
      f"| variant | last-iteration EM | minus {ref} (paired by seed) | seeds | significant? |",
      "|---|---|---|---|---|",
  ]
  for label, recs in groups.items():
    own = _cell(interval([r.evals[-1]["em"] for r in recs]), 1)
    if label == ref:
      lines.append(f"| {label} | {own} | reference | {len(recs)} | |")
      continue
    diffs = [r.evals[-1]["em"] - ref_em[r.key.seed] for r in recs if r.key.seed in ref_em]
    mean, low, high = interval(diffs)
    verdict = (
        "one seed: no interval"
        if len(diffs) < 2
        else "not judged (the same difference at every seed: no spread to build an interval from)"
        if high - low < 1e-9
        else "not significant (interval holds 0)"
        if low <= 0 <= high
        else "yes"
    )
    lines.append(f"| {label} | {own} | {_cell((mean, low, high), 1)} | {len(diffs)} | {verdict} |")
  return "\n".join(lines)


def gain_table(exp: Experiment, records: Sequence[RunRecord]) -> str:
  """Each run's dev EM gain from the warm-up to the last iteration, with its paired bootstrap interval over the
  dev questions (how sure one seed's gain is), then the mean gain over seeds (how sure the method's is)."""
  from exsearch_jax.eval.runner import bootstrap_gain

  lines = [
      "| variant | seed | warm-up EM | last EM | gain | 95% paired bootstrap over questions |",
      "|---|---|---|---|---|---|",
  ]
  for label, recs in by_variant(exp, records).items():
    gains = []
    for r in recs:
      if 0 not in r.correct or len(r.correct) < 2:
        continue
      before = np.array([c == "1" for c in r.correct[0]], dtype=np.float64)
      after = r.last_correct()
      gain, (low, high) = (after.mean() - before.mean()) * 100, bootstrap_gain(before, after)
      gains.append(gain)
      lines.append(
          f"| {label} | {r.key.seed} | {before.mean() * 100:.1f} | {after.mean() * 100:.1f} | {gain:+.1f} | "
          f"{low:+.1f} .. {high:+.1f} |"
      )
    if len(gains) > 1:
      mean, low, high = interval(gains)
      lines.append(
          f"| {label} | mean of {len(gains)} | | | {mean:+.1f} | Student-t over seeds: {low:+.1f} .. " f"{high:+.1f} |"
      )
  return "\n".join(lines)


def kinds_table(exp: Experiment, records: Sequence[RunRecord]) -> str:
  """Correct dev answers by question kind, summed over seeds, at warm-up and at the last iteration."""
  groups = by_variant(exp, records)
  kinds = sorted({k for recs in groups.values() for r in recs for e in r.evals for k in e.get("by_type", {})})
  lines = ["| variant | iteration | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 2) + "|"]
  for label, recs in groups.items():
    for name, pick in (("warm-up", 0), ("last", -1)) if max(len(r.evals) for r in recs) > 1 else (("only", 0),):
      cells = []
      for kind in kinds:
        right = sum(r.evals[pick].get("by_type", {}).get(kind, [0, 0])[0] for r in recs)
        total = sum(r.evals[pick].get("by_type", {}).get(kind, [0, 0])[1] for r in recs)
        cells.append(f"{right} / {total}" if total else "")
      lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plot(exp: Experiment, records: Sequence[RunRecord], path: str) -> None:
  """One panel per curve, one line per variant, the 95% interval over seeds shaded."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  groups = by_variant(exp, records)
  fig, axes = plt.subplots(2, 4, figsize=(14, 6), dpi=110)
  for ax, (key, title, _) in zip(axes.flat, CURVES):
    for label, recs in groups.items():
      points = [(it, s) for it, s in curve(recs, key) if not math.isnan(s[0])]
      if not points:
        continue
      xs = [it for it, _ in points]
      ax.plot(xs, [s[0] for _, s in points], "o-", label=f"{label} (n={len(recs)})", markersize=3)
      if len(recs) > 1:
        ax.fill_between(xs, [s[1] for _, s in points], [s[2] for _, s in points], alpha=0.2)
    ax.set_title(title)
    ax.set_xlabel("EM iteration (0 = warm-up)")
    ax.grid(alpha=0.3)
  axes.flat[-1].axis("off")
  handles, labels = axes.flat[0].get_legend_handles_labels()
  axes.flat[-1].legend(handles, labels, loc="center")
  fig.suptitle(f"{exp.name}: mean and 95% interval over seeds")
  from exsearch_jax.em.report import save_png

  save_png(fig, path)


def markdown(exp: Experiment, records: Sequence[RunRecord], size: str, commands: Sequence[str], meta: dict) -> str:
  minutes = sum(r.minutes for r in records)
  m = meta.get("machine", {})
  machine = (
      f"{m.get('cpu')}, {m.get('cores')} cores, {m.get('devices')} {m.get('platform')} device(s), "
      f"jax {m.get('jax')}"
  )
  parts = (
      [
          f"# {exp.name} ({size})",
          "",
          exp.question,
          "",
          f"{len(records)} run{'s' * (len(records) != 1)}, {minutes:.1f} min of wall time; intervals are 95% "
          "Student-t over seeds.",
          "",
          "## Dev scores per iteration",
          "",
          scores_table(exp, records),
          "",
          "## Gain over the warm-up",
          "",
          gain_table(exp, records),
          "",
          f"## Against `{exp.reference_label}` at the last iteration",
          "",
          comparison_table(exp, records),
          "",
          "## Correct dev answers by question kind (summed over seeds)",
          "",
          kinds_table(exp, records),
          "",
          f"![{exp.name}]({exp.name}.png)",
          "",
          "## How to rerun",
          "",
          "```",
      ]
      + list(commands)
      + [
          "```",
          "",
          f"Runs at revision {', '.join(sorted({r.revision for r in records})) or '-'} (this page written at "
          f"{meta.get('revision')}); {machine}; resolved configs in `configs/{size}/`, one record per run in "
          "`runs.jsonl`.",
          "",
      ]
  )
  return "\n".join(parts)
