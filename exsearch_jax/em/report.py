"""What a run shows its user: metrics.jsonl, TensorBoard scalars, the EM curve as a PNG, a console table."""

from __future__ import annotations

import json
import math
import os


class MetricsLog:
  """Appends one JSON object per record to <workdir>/metrics.jsonl and mirrors numbers to TensorBoard."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = enabled
    self._tb = None
    if enabled:
      try:
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
      except ImportError:  # TensorBoard is optional; metrics.jsonl is the record
        self._tb = None

  def write(self, record: dict, tb_step: int) -> None:
    if not self.enabled:
      return
    from exsearch_jax import atomic

    atomic.append_line(self.path, json.dumps(record, sort_keys=True))
    if self._tb is not None:
      prefix = record.get("kind", "metrics") + ("/" + record["split"] if "split" in record else "")
      for key, value in record.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
          self._tb.add_scalar(f"{prefix}/{key}", value, tb_step)
      self._tb.flush()

  def read(self, kind: str = "eval") -> list[dict]:
    if not os.path.exists(self.path):
      return []
    from exsearch_jax import atomic

    rows = [r for _, r in atomic.read_jsonl(self.path, "a metrics record") if isinstance(r, dict)]
    return [r for r in rows if r.get("kind") == kind]

  def close(self):
    if self._tb is not None:
      self._tb.close()


def latest_per_iteration(rows: list[dict]) -> list[dict]:
  """One eval row per iteration (a resumed run may have logged an iteration twice; the last one wins)."""
  by_iteration = {}
  for r in rows:
    by_iteration[r["iteration"]] = r
  return [by_iteration[k] for k in sorted(by_iteration)]


def table(rows: list[dict]) -> str:
  lines = [
      "iteration   EM     F1     Acc    gold-recall  correct+gold  steps",
      "---------  -----  -----  -----  -----------  ------------  -----",
  ]
  for r in latest_per_iteration(rows):
    name = "warm-up" if r["iteration"] == 0 else str(r["iteration"])
    lines.append(
        f"{name:>9}  {r['em']:5.1f}  {r['f1']:5.1f}  {r['acc']:5.1f}  {r['gold_passage_recall']:11.2f}  "
        f"{r['correct_with_gold_retrieved']:12.2f}  {r['mean_steps']:5.2f}"
    )
  return "\n".join(lines)


def plot(rows: list[dict], path: str, title: str = "") -> None:
  """Dev EM / F1 / Acc per EM iteration (0 = after warm-up) as a PNG."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rows = latest_per_iteration(rows)
  xs = [r["iteration"] for r in rows]
  fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
  for key, style in (("em", "o-"), ("f1", "s--"), ("acc", "^:")):
    ax.plot(xs, [r[key] for r in rows], style, label=key.upper())
  ax.set_xlabel("EM iteration (0 = warm-up)")
  ax.set_ylabel("dev score (%)")
  ax.set_xticks(xs)
  ax.grid(alpha=0.3)
  ax.legend()
  if title:
    ax.set_title(title)
  save_png(fig, path)


def save_png(fig, path: str) -> None:
  """Writes a matplotlib figure as a PNG, crash-safe (`atomic.replaced_file`), and closes it."""
  import matplotlib.pyplot as plt
  from exsearch_jax import atomic

  fig.tight_layout()
  with atomic.replaced_file(path, "wb") as f:
    fig.savefig(f, format="png")
  plt.close(fig)
