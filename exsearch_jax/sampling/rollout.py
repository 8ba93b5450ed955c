"""The E-step's rollout: questions × n samples searched in batches, decode rounds on device, retrieval on host.

Each round decodes every live trajectory until its assistant turn ends; the host parses the turns, sends
all sub-queries of the round to the retriever in one `search` call, and appends the results (or the
request for the final answer) to the KV cache, which keeps every earlier turn. A trajectory that cannot
be parsed, runs out of steps or out of cache ends with its stop reason; nothing raises.
"""

from __future__ import annotations

import zlib
from typing import Optional, Sequence

from absl import logging

from exsearch_jax import program_cache
from exsearch_jax import trajectory as tj
from exsearch_jax.trajectory import SearchStep, Trajectory  # noqa: F401  (Trajectory: the rollout's product)
from exsearch_jax.config_schema import POLICIES, RolloutConfig  # noqa: F401  (re-exported: the rollout config)
from exsearch_jax.errors import ConfigError
from exsearch_jax.sampling import engine
from exsearch_jax.sampling import grammar as gm
from exsearch_jax.sampling.chat import ChatFormat


def row_seed(seed: int, question_id: str, sample: int) -> int:
  """A trajectory's sampling seed: fixed by (seed, question, sample), whatever batch or device it runs on."""
  return zlib.crc32(f"{seed}/{question_id}/{sample}".encode())


class _Row:

  def __init__(self, traj: Trajectory, decomposition: Sequence[dict] = ()):
    self.traj, self.answering, self.done = traj, False, False
    self.decomposition = list(decomposition)  # the gold steps (policy "oracle")
    self.reranking, self.candidates = False, []  # waiting for the model's order of these hits (rerank)
    self.prefix: list = []  # the opening tag written for the model at the start of this turn (constrained)

  def add(self, tokens, model_written: bool, logprobs=None):
    self.traj.tokens += tokens
    self.traj.loss_mask += [model_written] * len(tokens)
    self.traj.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(tokens)

  def finish(self, reason: tj.StopReason):
    self.traj.stop_reason, self.done = reason, True


def _scripted_turn(row: _Row, chat: ChatFormat, cfg: RolloutConfig) -> Optional[list]:
  """The tokens of the row's next search turn when the policy writes it (after the opening tag already written
  for the model), or None when the model writes it."""
  if row.answering or row.reranking or cfg.policy == "model" or (cfg.policy == "question" and row.traj.steps):
    return None
  n = len(row.traj.steps)
  if cfg.policy == "question":
    text = tj.assistant_step(None, row.traj.question)
  else:
    fact = row.decomposition[n - 1]["fact"] if n else None
    text = tj.assistant_step(fact, row.decomposition[n]["query"] if n < len(row.decomposition) else None)
  if not text.endswith(tj.FINAL):
    text += f" {tj.SEARCH}"
  written = chat.decode(row.prefix)
  if not text.startswith(written):
    raise ValueError(f"scripted turn {text!r} does not start with the opening tag {written!r}")
  return chat.encode(text[len(written) :])


def _handle_turn(row: _Row, tokens, logprobs, reason, chat: ChatFormat, cfg: RolloutConfig, model_written=True):
  """Records one assistant turn; returns ("search", query), ("answer", None) or None when the row ended."""
  row.add(tokens, model_written, logprobs)
  text = chat.decode(row.prefix + list(tokens))
  if row.answering:  # an answer cut by its token budget still counts: its first line is read as the answer
    row.traj.answer = text.strip()
    row.finish(tj.StopReason.ANSWERED)
    return None
  if reason == engine.BUDGET:
    row.finish(tj.StopReason.TRUNCATED)
    return None
  if row.reranking:
    try:
      return "show", tj.parse_rerank(text, len(row.candidates))
    except tj.ParseError:
      row.finish(tj.StopReason.UNPARSEABLE)
      return None
  try:
    step = tj.parse_step(text, first=not row.traj.steps)
  except tj.ParseError:
    row.finish(tj.StopReason.UNPARSEABLE)
    return None
  if row.traj.steps:
    row.traj.steps[-1].fact = step.fact
  if step.action == "final":
    return "answer", None
  if len(row.traj.steps) >= cfg.max_steps:
    if cfg.answer_at_budget:  # as the reference does: no more searches, but an answer
      return "answer", None
    row.finish(tj.StopReason.STEP_BUDGET)
    return None
  row.traj.steps.append(SearchStep(step.query))
  return "search", step.query


def _states(rows: list[_Row], grammar) -> Optional[list]:
  """Each row's automaton state at the start of its turn (None: unconstrained)."""
  if grammar is None:
    return None
  return [
      gm.FREE
      if r.done or r.reranking
      else grammar.answer_start
      if r.answering
      else grammar.query_start
      if not r.traj.steps
      else grammar.fact_start
      for r in rows
  ]


def _score_gold(session, rows: list[_Row], chat: ChatFormat):
  """Sets log p(y*|x,z) of every trajectory that asked for its answer, on the cache it was sampled with: the cache
  row cut back to just before the answer turn, then the gold answer turn appended (`gold_examples`' tokens)."""
  asked = [i for i, r in enumerate(rows) if r.traj.answer_start > 0]
  answers = {i: chat.assistant_turn(rows[i].traj.gold_answer) for i in asked}
  fits = [i for i in asked if rows[i].traj.answer_start + len(answers[i]) <= session.capacity]
  cuts = [rows[i].traj.answer_start - 1 for i in fits]  # that token again: its logits predict the answer's first
  tokens = [[rows[i].traj.tokens[c], *answers[i]] for i, c in zip(fits, cuts)]
  for i, logp in zip(fits, session.continuation_logprobs(fits, cuts, tokens)):
    rows[i].traj.gold_logprob, rows[i].traj.gold_tokens = float(logp.sum()), len(logp)


def _rollout_chunk(
    model,
    chat,
    retriever,
    rows: list[_Row],
    cfg: RolloutConfig,
    sharding,
    shards,
    progress,
    session_factory,
    grammar,
    score_gold: bool = False,
):
  eot = chat.end_of_turn
  stops = [chat.encode(tj.SEARCH), chat.encode(tj.FINAL)]
  rerank_prefix = chat.encode(tj.RERANK)
  session = session_factory(
      model,
      len(rows),
      cfg.capacity,
      sharding=sharding,
      shards=shards,
      seeds=[row_seed(cfg.seed, r.traj.question_id, r.traj.sample) for r in rows],
  )
  session.start([r.traj.tokens for r in rows])  # a question's samples share their prompt: prefilled once
  while not all(r.done for r in rows):
    turns = {i: _scripted_turn(r, chat, cfg) for i, r in enumerate(rows) if not r.done}
    scripts = {i: s for i, s in turns.items() if s is not None}
    budgets = [
        0 if r.done or i in scripts else cfg.answer_tokens if r.answering else cfg.step_tokens
        for i, r in enumerate(rows)
    ]
    tokens, logprobs, reasons = [[] for _ in rows], [[] for _ in rows], [0] * len(rows)
    if any(budgets):
      constraint = {} if grammar is None else {"grammar": grammar, "states": _states(rows, grammar)}
      result = session.decode(
          budgets, cfg.temperature, cfg.top_p, cfg.top_k, stop=stops, eos_token_ids=[eot], **constraint
      )
      tokens, logprobs, reasons = list(result.tokens), list(result.logprobs), list(result.reasons)
    for i, script in scripts.items():
      tokens[i], logprobs[i], reasons[i] = script, [0.0] * len(script), engine.STOP
    actions = {}
    for i, row in enumerate(rows):
      if budgets[i] or i in scripts:
        actions[i] = _handle_turn(row, tokens[i], logprobs[i], reasons[i], chat, cfg, model_written=i not in scripts)
    searching = [i for i, a in actions.items() if a and a[0] == "search"]
    hits = retriever.search([actions[i][1] for i in searching], cfg.retrieve_k) if searching else []
    answering = {i for i, a in actions.items() if a and a[0] == "answer"}
    user_turns = {i: tj.answer_request(rows[i].traj.question) for i in answering}
    for i, found in zip(searching, hits):
      step = rows[i].traj.steps[-1]
      step.retrieved_ids, step.retrieved_titles = [h.id for h in found], [h.title for h in found]
      if cfg.rerank:  # the titles first; the passages after the model ordered them
        rows[i].candidates = list(found)
        user_turns[i] = tj.candidates_turn(found)
      else:
        step.shown_ids = [h.id for h in found[: cfg.shown]]
        user_turns[i] = tj.search_turn(found, cfg.shown)
    for i, action in actions.items():
      if action and action[0] == "show":
        ordered = tj.reranked(rows[i].candidates, action[1])
        step = rows[i].traj.steps[-1]
        step.rerank, step.shown_ids = list(action[1]), [h.id for h in ordered[: cfg.shown]]
        user_turns[i] = tj.search_turn(ordered, cfg.shown)
    appends = [None] * len(rows)
    for i, text in sorted(user_turns.items()):
      # the turn's tokens not yet in the cache: a decoded turn's last token, or all of a scripted turn
      row, pending = rows[i], list(tokens[i] if i in scripts else tokens[i][-1:])
      forced = [] if pending[-1] == eot else [eot]  # a turn cut at <SEARCH>/<FINAL> is closed for the model
      turn = chat.user_turn(text)
      to_rerank = cfg.rerank and i in searching
      prefix = (
          list(rerank_prefix)
          if to_rerank
          else list(grammar.fact_prefix)
          if grammar is not None and i not in answering
          else []
      )
      if (
          len(pending) + len(forced) + len(turn) + len(prefix) + 1 > session.room(i)
          and i not in answering
          and cfg.answer_at_budget
      ):  # the results do not fit in the cache: no more searches, but an answer
        step = row.traj.steps[-1]
        step.retrieved_ids, step.retrieved_titles, step.shown_ids, step.rerank = [], [], [], None
        answering.add(i)
        to_rerank = False
        turn, prefix = chat.user_turn(tj.answer_request(row.traj.question)), []
      if len(pending) + len(forced) + len(turn) + len(prefix) + 1 > session.room(i):
        row.finish(tj.StopReason.LENGTH)
        continue
      row.add(forced, False)
      row.add(turn, False)
      row.answering = i in answering
      row.reranking = to_rerank
      if row.answering:
        row.traj.answer_start = len(row.traj.tokens)
      row.add(prefix, True)
      row.prefix = prefix
      appends[i] = pending + forced + turn + prefix
    if any(appends):
      session.extend(appends)
    if progress is not None:
      progress.update(sum(1 for i in actions if rows[i].done))
  if score_gold:
    _score_gold(session, rows, chat)


def rollout(
    model,
    chat: ChatFormat,
    retriever,
    questions: Sequence[dict],
    cfg: RolloutConfig,
    mesh=None,
    progress: bool = False,
    session_factory=engine.DecodeSession,
    score_gold: bool = False,
) -> list[Trajectory]:
  """Samples `cfg.samples` trajectories for each question ({"id", "question", optional "golden_answers"}).

  Works with any retriever that has `search(queries, k) -> list[list[Hit]]` (in-process or HTTP client).
  Trajectories come back in question order, samples in order. `session_factory` builds the decoder
  state for a chunk (default `engine.DecodeSession`; tests pass a scripted policy with the same methods).
  `score_gold`: the E-step's log p(y*|x,z) of each trajectory that asked for its answer, from the chunk's cache
  before it is dropped (`Trajectory.gold_logprob`; `estep.score_trajectories` scores the others).
  """
  from exsearch_jax.sharding import batch_sharding

  if cfg.policy == "oracle":
    missing = [str(q["id"]) for q in questions if not q.get("decomposition")]
    if missing:
      raise ConfigError(
          f"rollout.policy=oracle needs each question's gold decomposition; {len(missing)} have none "
          f"(first: {missing[0]})"
      )
  rows = [
      _Row(
          Trajectory(
              question_id=str(q["id"]),
              sample=s,
              question=q["question"],
              tokens=[],
              loss_mask=[],
              logprobs=[],
              prompt_length=0,
              golden_answers=q.get("golden_answers"),
          ),
          q.get("decomposition") or (),
      )
      for q in questions
      for s in range(cfg.samples)
  ]
  grammar = gm.grammar_for(chat) if cfg.constrained else None
  system = tj.instruction_text(cfg.instruction)
  for row in rows:
    row.add(chat.prompt(tj.question_turn(row.traj.question), system), False)
    row.traj.prompt_length = len(row.traj.tokens)
    if grammar is not None:
      row.prefix = list(grammar.query_prefix)
      row.add(row.prefix, True)
  sharding = batch_sharding(mesh) if mesh is not None else None
  shards = 1 if mesh is None else mesh.shape["data"] * mesh.shape["fsdp"]
  chunk = cfg.batch_rows
  before = engine.compiles["count"]
  from tqdm import tqdm

  with tqdm(total=len(rows), desc="rollout", unit="traj", disable=not progress) as bar:  # closed on errors too
    for start in range(0, len(rows), chunk):
      program_cache.release_if_crowded()
      _rollout_chunk(
          model,
          chat,
          retriever,
          rows[start : start + chunk],
          cfg,
          sharding,
          shards,
          bar if progress else None,
          session_factory,
          grammar,
          score_gold,
      )
  logging.info("rollout: %d trajectories, %d new compiled programs", len(rows), engine.compiles["count"] - before)
  return [r.traj for r in rows]
