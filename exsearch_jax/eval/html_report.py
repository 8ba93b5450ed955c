"""Looking at rollouts: trajectories to JSONL (for scripts) and to one self-contained HTML page (for eyes).

The page groups the sampled trajectories of each question and tells the parts of a search apart by
colour and label: sub-queries, the passages shown for them, the facts the model recorded, its answer
(right or wrong against the gold answers), stop reason and EM weight. Everything that came from a model,
a corpus or a question is HTML-escaped, so a model that writes `<script>` or `<QUERY>` shows it as text.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import json
from typing import Iterable, Mapping, Optional, Sequence

from exsearch_jax import atomic
from exsearch_jax import trajectory as tj
from exsearch_jax.eval.metrics import exact_match, extract_answer
from exsearch_jax.trajectory import Trajectory


def write_jsonl(trajectories: Iterable[Trajectory], path: str, chat=None, drop: Sequence[str] = ()) -> None:
  """One JSON object per line (`Trajectory.to_json()` less the `drop` fields), plus the decoded "text" when a
  ChatFormat is given."""
  with atomic.replaced_file(path) as f:
    for traj in trajectories:
      record = {k: v for k, v in traj.to_json().items() if k not in drop}
      if chat is not None:
        record["text"] = chat.tokenizer.decode(traj.tokens, skip_special_tokens=False)
      f.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_jsonl(path: str) -> list[Trajectory]:
  """The trajectories `write_jsonl` wrote (extra keys such as "text" are dropped)."""
  names = {f.name for f in dataclasses.fields(Trajectory)}
  with open(path, encoding="utf-8") as f:
    return [
        Trajectory.from_json({k: v for k, v in json.loads(line).items() if k in names}) for line in f if line.strip()
    ]


def is_correct(answer: Optional[str], golds: Optional[Sequence[str]]) -> Optional[bool]:
  """Exact match after SQuAD normalisation; None when there is no gold to compare with."""
  if not golds:
    return None
  if answer is None:
    return False
  return exact_match(extract_answer(answer), list(golds)) > 0


def _segments(traj: Trajectory) -> list[tuple[bool, list]]:
  """The token runs after the prompt as (model_written, tokens), in order."""
  runs = []
  for tok, written in zip(traj.tokens[traj.prompt_length :], traj.loss_mask[traj.prompt_length :]):
    if not runs or runs[-1][0] != bool(written):
      runs.append((bool(written), []))
    runs[-1][1].append(tok)
  return runs


def _search_texts(traj: Trajectory, chat) -> list[str]:
  """The decoded `<SEARCH>` user turns, one per search, with the chat template's markers cut off."""
  texts = []
  for written, tokens in _segments(traj):
    text = chat.tokenizer.decode(tokens, skip_special_tokens=False)
    if not written and tj.SEARCH in text:
      body = text[text.index(tj.SEARCH) + len(tj.SEARCH) :]
      end = chat.end_of_turn_text
      texts.append((body.split(end)[0] if end else body).strip())
  return texts


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222;max-width:70em}
h1{font-size:1.4em} .summary{background:#fff;border:1px solid #ddd;padding:.6em 1em;border-radius:6px}
.question{background:#fff;border:1px solid #ccc;border-radius:8px;margin:1.2em 0;padding:.8em 1em}
.qtext{font-size:1.1em;font-weight:600} .gold{color:#555}
.traj{border-left:4px solid #bbb;margin:.8em 0 .8em .5em;padding:.2em .8em}
.traj.ok{border-color:#2e7d32} .traj.bad{border-color:#c62828}
.meta{font-size:.9em;color:#444} .label{display:inline-block;min-width:4.5em;font-size:.75em;font-weight:700;
text-transform:uppercase;padding:.1em .4em;border-radius:4px;margin-right:.4em;color:#fff}
.row{margin:.25em 0;white-space:pre-wrap}
.query .label{background:#1565c0} .query{color:#0d47a1}
.rerank .label{background:#ef6c00} .rerank{color:#e65100}
.passage .label{background:#757575} .passage{color:#424242;font-size:.9em;margin-left:1.5em}
.fact .label{background:#2e7d32} .fact{color:#1b5e20}
.answer .label{background:#6a1b9a} .answer{color:#4a148c;font-weight:600}
.verdict.ok{color:#2e7d32;font-weight:700} .verdict.bad{color:#c62828;font-weight:700}
details{margin-top:.4em} details pre{white-space:pre-wrap;font-size:.8em;background:#f3f3f3;padding:.5em}
.model{background:#e3f2fd} .context{color:#666}
"""


def _row(kind: str, label: str, text: str) -> str:
  return f'<div class="row {kind}"><span class="label">{html.escape(label)}</span>{html.escape(text)}</div>'


def _passage_rows(step, search_text: Optional[str], passages: Optional[Mapping]) -> list[str]:
  if passages is not None:
    rows = []
    for pid in step.shown_ids:
      p = passages.get(pid) or passages.get(str(pid)) or {}
      rows.append(_row("passage", f"passage {pid}", f"{p.get('title', '?')}: {p.get('text', '(not in corpus)')}"))
    return rows or [_row("passage", "passages", "(no results)")]
  return [_row("passage", "passages", search_text)] if search_text is not None else []


def _fmt_weight(weight: Optional[float]) -> str:
  return "\u2014" if weight is None else f"{weight:.4g}"


def _trajectory_html(traj: Trajectory, chat, passages) -> str:
  correct = is_correct(traj.answer, traj.golden_answers)
  searches = _search_texts(traj, chat)
  parts = []
  for i, step in enumerate(traj.steps):
    parts.append(_row("query", f"query {i + 1}", step.query or ""))
    if step.rerank is not None:  # the re-rank action: the model's order of the retrieved candidates
      titles = step.retrieved_titles
      parts.append(
          _row(
              "rerank",
              f"re-rank {i + 1}",
              " > ".join(f"[{k + 1}] {titles[k]}" if k < len(titles) else f"[{k + 1}]" for k in step.rerank),
          )
      )
    parts += _passage_rows(step, searches[i] if i < len(searches) else None, passages)
    if step.fact is not None:
      parts.append(_row("fact", f"fact {i + 1}", step.fact))
  parts.append(_row("answer", "answer", "(none)" if traj.answer is None else traj.answer))
  verdict = {
      True: '<span class="verdict ok">\u2713 correct</span>',
      False: '<span class="verdict bad">\u2717 wrong</span>',
      None: "no gold",
  }[correct]
  meta = (
      f'<div class="meta">sample {traj.sample} \u00b7 stop: <b>{html.escape(traj.stop_reason or "?")}</b>'
      f" \u00b7 steps: {len(traj.steps)} \u00b7 weight: <b>{_fmt_weight(traj.weight)}</b> \u00b7 {verdict}</div>"
  )
  transcript = "".join(
      f'<span class="{"model" if w else "context"}">{html.escape(chat.tokenizer.decode(t, skip_special_tokens=False))}'
      f"</span>"
      for w, t in _segments(traj)
  )
  cls = {True: "ok", False: "bad", None: ""}[correct]
  return (
      f'<div class="traj {cls}">{meta}{"".join(parts)}<details><summary>transcript (model-written '
      f"highlighted)</summary><pre>{transcript}</pre></details></div>"
  )


def _summary_html(trajectories: Sequence[Trajectory], questions: int) -> str:
  reasons = collections.Counter(t.stop_reason or "?" for t in trajectories)
  mean_steps = sum(len(t.steps) for t in trajectories) / max(1, len(trajectories))
  verdicts = [c for c in (is_correct(t.answer, t.golden_answers) for t in trajectories) if c is not None]
  accuracy = f"{sum(verdicts)}/{len(verdicts)} exact match" if verdicts else "no gold answers"
  reason_text = ", ".join(f"{html.escape(k)}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
  return (
      f'<div class="summary">{questions} questions \u00b7 {len(trajectories)} trajectories \u00b7 mean steps '
      f"{mean_steps:.2f} \u00b7 {accuracy}<br>stop reasons: {reason_text}</div>"
  )


def render_html(trajectories: Sequence[Trajectory], chat, passages: Optional[Mapping] = None, title: str = "") -> str:
  """The page `write_html` writes, as a string."""
  groups = collections.OrderedDict()
  for traj in trajectories:
    groups.setdefault(traj.question_id, []).append(traj)
  body = []
  for qid, trajs in groups.items():
    golds = trajs[0].golden_answers
    gold = " | ".join(html.escape(str(g)) for g in golds) if golds else "\u2014"
    body.append(
        f'<div class="question"><div class="qtext">{html.escape(trajs[0].question)}</div>'
        f'<div class="gold">id {html.escape(qid)} \u00b7 gold: {gold}</div>'
        + "".join(_trajectory_html(t, chat, passages) for t in trajs)
        + "</div>"
    )
  heading = html.escape(title or "EXSEARCH trajectories")
  return (
      f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{heading}</title><style>{_CSS}</style>'
      f'</head><body><h1>{heading}</h1>{_summary_html(trajectories, len(groups))}{"".join(body)}</body></html>\n'
  )


def write_html(
    trajectories: Sequence[Trajectory], path: str, chat, passages: Optional[Mapping] = None, title: str = ""
) -> None:
  """A self-contained page (inline CSS, no scripts or external assets). `passages`: id -> {title, text}."""
  with atomic.replaced_file(path) as f:
    f.write(render_html(trajectories, chat, passages, title))
