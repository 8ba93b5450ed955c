"""The Generalized-EM run: [stage 0] → warm-up SFT → eval → (E-step → M-step → eval) × iterations.

The run is a fixed list of phases. A checkpoint is written after every phase and every
`train.checkpoint_every` steps inside a training phase, holding the parameters, the optimizer state and
the position (phases done, phase in progress, step inside it). E-step results are written to the
workdir before the phase counts as done, so a killed run resumes exactly where it stopped and, given
the seed, reaches bit-identical parameters.

Multi-process runs take the same path: each process rolls out and scores its share of the questions on
its own devices (a whole copy of the model under `mesh.sample`), all processes gather every trajectory,
so the E-step weights, the M-step's global batches and the parameters are the same everywhere; process 0
alone writes the workdir's files, and orbax writes one checkpoint from all of them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Optional

import numpy as np
from absl import logging
from flax import nnx

from exsearch_jax import atomic, distributed, program_cache
from exsearch_jax.checkpoint import RunCheckpoints
from exsearch_jax.em import report, sequences, setup, warmup
from exsearch_jax.em.estep import score_trajectories, weigh
from exsearch_jax.em.train_step import Trainer, learning_rate, make_optimizer
from exsearch_jax.errors import ConfigError
from exsearch_jax.eval.runner import bootstrap_gain, evaluate, per_question_correct
from exsearch_jax.eval import html_report
from exsearch_jax.sampling.chat import ChatFormat
from exsearch_jax.sampling.rollout import rollout
from exsearch_jax.sharding import host_local_copy, sampling_meshes

_ORDER_STREAM = {"stage0": 1000, "warmup": 1001}  # shuffling streams apart from the M-step iterations


class RunHalted(RuntimeError):
  """Raised by `halt_at` (tests simulate a killed run with it) right after a checkpoint was written."""


@dataclasses.dataclass(frozen=True)
class Phase:
  """One step of the run's fixed plan. Written as "kind/iteration" (e.g. "mstep/2") in checkpoints and logs."""

  kind: str  # stage0 | warmup | eval | estep | mstep
  iteration: int  # 0 for stage 0, the warm-up and its evaluation

  KINDS = ("stage0", "warmup", "eval", "estep", "mstep")

  def __post_init__(self):
    if self.kind not in self.KINDS or self.iteration < 0:
      raise ValueError(f"not a phase: {self.kind}/{self.iteration}")

  def __str__(self) -> str:
    return f"{self.kind}/{self.iteration}"

  @property
  def trains(self) -> bool:
    return self.kind in ("stage0", "warmup", "mstep")

  @classmethod
  def parse(cls, key: str) -> "Phase":
    kind, _, iteration = key.partition("/")
    return cls(kind, int(iteration))


def phases(cfg) -> list[Phase]:
  out = ([Phase("stage0", 0)] if cfg.stage0.examples else []) + [Phase("warmup", 0), Phase("eval", 0)]
  for it in range(1, cfg.em.iterations + 1):
    out += [Phase("estep", it), Phase("mstep", it), Phase("eval", it)]
  return out


class EMRun:

  def __init__(self, cfg, workdir: str, mesh=None, progress: bool = True):
    """`mesh`: the training mesh (None: one device); sampling then uses `cfg.mesh.sample` on each process."""
    from exsearch_jax.config_check import typed, writable_directory

    cfg = typed(cfg)
    self.cfg, self.workdir, self.mesh = cfg, workdir, mesh
    self.progress = progress and distributed.is_primary()
    self.sample_meshes = sampling_meshes(cfg.mesh.sample) if mesh is not None else None
    shards = 1 if mesh is None else mesh.shape["data"] * mesh.shape["fsdp"]
    for name in ("train", "warmup", "stage0"):
      batch_size = cfg.batch_size(name)
      rows = batch_size // cfg.train.micro_batches
      if batch_size % cfg.train.micro_batches or rows % shards:
        raise ConfigError(
            f"{name}.batch_size / train.micro_batches = {batch_size} / {cfg.train.micro_batches} must "
            f"be a whole number of rows per micro-batch and a multiple of the training mesh's "
            f"data x fsdp = {shards}"
        )
    writable_directory(workdir)
    with distributed.primary_first("exsearch-setup"):  # on a shared disk the others reuse what process 0 built
      self.data = setup.load_data(cfg, workdir)
      self.retriever = setup.load_retriever(cfg, self.data.corpus_path, workdir)
      self.tokenizer = setup.load_tokenizer_for(cfg, self.data, workdir)
    if cfg.em.iterations and not self.data.train:
      raise ConfigError(
          f"no train question is left for the E-step: the seed trajectories took all "
          f"{len(self.data.seeds)} (config.em.seed_trajectories={cfg.em.seed_trajectories}); lower it "
          "or give more train questions"
      )
    self.chat = ChatFormat(self.tokenizer)
    model = setup.build_run_model(cfg, self.tokenizer, self.chat, mesh)
    self.trainer = Trainer(
        model,
        make_optimizer(cfg.train.weight_decay, cfg.train.grad_clip),
        mesh,
        trainable_layers=cfg.train.trainable_layers,
        remat=cfg.train.remat,
    )
    self.rollout_cfg = cfg.rollout
    self.checkpoints = RunCheckpoints(os.path.join(workdir, "checkpoints"))
    self.log = report.MetricsLog(workdir, enabled=distributed.is_primary())
    self.passages = {p.id: {"title": p.title, "text": p.text} for p in getattr(self.retriever, "passages", [])}

  # ---- training phases -------------------------------------------------------------------------
  def _examples(self, phase: str, iteration: int) -> list:
    cfg = self.cfg
    if phase == "stage0":
      return self._stage0_tasks(cfg.stage0.examples, cfg.seed, cfg.stage0.corpus_share)
    seeds = []
    if phase == "warmup" or cfg.em.replay_seeds:
      seeds = warmup.seed_examples(
          self.data.seeds,
          self.retriever,
          self.chat,
          self.rollout_cfg.shown,
          self.rollout_cfg.retrieve_k,
          self.rollout_cfg.instruction,
          self.data.chat_seeds,
          rerank=self.rollout_cfg.rerank,
      )
    if phase == "warmup":
      return seeds + self._stage0_mix()
    return distributed.broadcast_object(self._read_examples(iteration) if distributed.is_primary() else None) + seeds

  def _stage0_mix(self) -> list:
    """`warmup.stage0_mix` fresh stage-0 tasks trained with the seeds, so that many epochs on a few seeds
    do not overwrite stage 0's copying (their own stream: none of them is a stage-0 example)."""
    count = self.cfg.warmup.stage0_mix
    return self._stage0_tasks(count, self.cfg.seed + _ORDER_STREAM["warmup"], 0.0) if count else []

  def _stage0_tasks(self, count: int, seed: int, corpus_share: float) -> list:
    s0 = self.cfg.stage0
    return warmup.stage0_examples(
        self.data.world,
        self.chat,
        count,
        self.rollout_cfg.shown,
        seed=seed,
        corpus_share=corpus_share,
        chain_share=s0.chain_share,
        chain_queries=s0.chain_queries,
    )

  def _read_examples(self, iteration: int) -> list:
    with open(self._estep_path(iteration), encoding="utf-8") as f:
      return [sequences.Example.from_json(json.loads(line)) for line in f]

  def _train(self, current: Phase, position: dict, halt_at: Optional[tuple]):
    phase, iteration, key = current.kind, current.iteration, str(current)
    cfg, tc = self.cfg, self.cfg.train
    examples = self._examples(phase, iteration)
    section = cfg.phase(phase)
    epochs, peak, batch_size = section.epochs, section.learning_rate, cfg.batch_size(phase)
    total = sequences.steps_per_run(examples, batch_size, epochs)
    start = position["step"] if position.get("phase") == key else 0
    if start == 0 and tc.reset_optimizer:
      self.trainer.reset_optimizer()
    losses = []
    with _bar(total, start, key, self.progress) as bar:  # closed on an error too: its message starts a line
      for step, batch in sequences.batches(
          examples,
          batch_size,
          tc.micro_batches,
          tc.max_length,
          cfg.seed,
          _ORDER_STREAM.get(phase, iteration),
          epochs,
          start,
      ):
        lr = learning_rate(step, total, peak, tc.warmup_ratio)
        metrics = self.trainer.update(batch, lr)
        losses.append(metrics["loss"])
        if metrics["skipped"]:
          logging.warning("%s step %d: non-finite loss or gradient; update skipped", key, step)
        bar.set_postfix(loss=f"{metrics['loss']:.3f}")
        bar.update(1)
        if (step + 1) % 10 == 0 or step + 1 == total:
          self.log.write(
              dict(kind="train", phase=key, step=step + 1, lr=lr, tokens=batch.real_tokens, **metrics),
              self.trainer.state.step,
          )
        if (step + 1) % tc.checkpoint_every == 0 and step + 1 < total:
          self._save(position, phase=key, step=step + 1)
          if halt_at == (key, step + 1):
            raise RunHalted(f"halted at {key} step {step + 1}")
    logging.info("%s: %d steps, mean loss %.4f", key, total, float(np.mean(losses)) if losses else float("nan"))

  # ---- E-step and evaluation -------------------------------------------------------------------
  def _estep_path(self, iteration: int) -> str:
    return os.path.join(self.workdir, "estep", f"{iteration}", "examples.jsonl")

  def _questions_for(self, iteration: int) -> list:
    """The data position: iteration i takes the i-th slice of one seeded permutation of the train set."""
    train, per = self.data.train, self.cfg.em.questions_per_iteration or len(self.data.train)
    order = np.random.default_rng([self.cfg.seed, 7]).permutation(len(train))
    picks = [(iteration - 1) * per + j for j in range(per)]
    return [train[order[p % len(train)]] for p in picks]

  def _sampler(self):
    """The current model on this process's devices alone (the sampling mesh), for rollouts and scoring."""
    if self.sample_meshes is None:
      return self.trainer.model()
    return nnx.merge(self.trainer.graphdef, host_local_copy(self.trainer.state.params, self.sample_meshes))

  def _sample_mesh(self):
    return None if self.sample_meshes is None else self.sample_meshes[1]

  def _estep(self, iteration: int):
    started = time.time()
    questions = self._questions_for(iteration)
    cfg = dataclasses.replace(self.rollout_cfg, seed=self.cfg.seed * 1000 + iteration)
    model = self._sampler()
    mine = rollout(
        model,
        self.chat,
        self.retriever,
        distributed.share(questions),
        cfg,
        mesh=self._sample_mesh(),
        progress=self.progress,
        score_gold=True,
    )
    logp, count = score_trajectories(model, self.chat, mine, max_length=self.cfg.train.max_length)
    scored = distributed.gather_shares(list(zip(mine, logp, count)), len(questions), cfg.samples)
    trajectories = [t for t, _, _ in scored]
    examples, stats = weigh(
        self.chat,
        trajectories,
        np.array([x[1] for x in scored]),
        np.array([x[2] for x in scored]),
        self.cfg.em.weights,
        self.cfg.em.guard,
    )
    stats.update(kind="estep", iteration=iteration, questions=len(questions), seconds=round(time.time() - started, 1))
    if distributed.is_primary():
      self._write_estep(iteration, trajectories, examples, stats)

  def _write_estep(self, iteration: int, trajectories, examples, stats):
    directory = os.path.dirname(self._estep_path(iteration))
    os.makedirs(directory, exist_ok=True)
    html_report.write_jsonl(trajectories, os.path.join(directory, "trajectories.jsonl"), self.chat)
    html_report.write_html(
        trajectories[:200],
        os.path.join(directory, "trajectories.html"),
        self.chat,
        self.passages,
        title=f"E-step {iteration}: sampled trajectories",
    )
    with atomic.replaced_file(self._estep_path(iteration)) as f:
      for e in examples:
        f.write(json.dumps(e.to_json()) + "\n")
    self.log.write(stats, iteration)
    logging.info("E-step %d: %s", iteration, json.dumps(stats))
    print(
        f"[E-step] iteration {iteration}: {len(trajectories)} trajectories, {stats['correct_share']:.1%} correct, "
        f"{stats['valid_share']:.1%} valid, {stats['examples']} weighted examples, ESS "
        f"{stats['effective_sample_size']:.1f}, bound {stats['log_marginal_bound']:.3f}",
        flush=True,
    )

  def _eval(self, iteration: int):
    started = time.time()
    questions = self.data.dev
    metrics, trajectories = evaluate(
        self._sampler(),
        self.chat,
        self.retriever,
        questions,
        self.rollout_cfg,
        mesh=self._sample_mesh(),
        progress=self.progress,
    )
    if not distributed.is_primary():
      return
    directory = os.path.join(self.workdir, "eval", str(iteration))
    os.makedirs(directory, exist_ok=True)
    html_report.write_html(
        trajectories[:100],
        os.path.join(directory, "trajectories.html"),
        self.chat,
        self.passages,
        title=f"dev after iteration {iteration}",
    )
    with atomic.replaced_file(os.path.join(directory, "correct.npy"), "wb") as f:
      np.save(f, per_question_correct(trajectories, questions))
    record = dict(
        kind="eval", iteration=iteration, split=self.cfg.eval.split, seconds=round(time.time() - started, 1), **metrics
    )
    self.log.write(record, iteration)
    print(
        f"[eval] iteration {iteration}: EM {metrics['em']:.1f}  F1 {metrics['f1']:.1f}  Acc {metrics['acc']:.1f}  "
        f"gold recall {metrics['gold_passage_recall']:.2f}  steps {metrics['mean_steps']:.2f}",
        flush=True,
    )

  # ---- the run ---------------------------------------------------------------------------------
  def _save(self, position: dict, phase: Optional[str], step: int):
    position.update(phase=phase, step=step, save=position.get("save", 0) + 1)
    self.checkpoints.save(position["save"], self.trainer, position)

  def run(self, halt_at: Optional[tuple] = None, on_phase: Optional[Callable[[Phase], None]] = None) -> dict:
    """Every phase not yet done, in order; `on_phase(phase)` after each one is saved (process 0 only), so
    results can be written as they finish. `halt_at` ("kind/iteration", step or None): tests' simulated kill."""
    position = self.checkpoints.restore_latest(self.trainer) or {"done": [], "phase": None, "step": 0, "save": 0}
    if position["done"] or position.get("phase"):
      print(
          f"resuming: {len(position['done'])} phases done, in {position.get('phase')} at step "
          f"{position.get('step', 0)}",
          flush=True,
      )
    for phase in phases(self.cfg):
      key = str(phase)
      if key in position["done"]:
        continue
      started = time.time()
      program_cache.release_if_crowded()
      if phase.trains:
        self._train(phase, position, halt_at)
      elif phase.kind == "estep":
        self._estep(phase.iteration)
      else:
        self._eval(phase.iteration)
      # wall time of the phase (of its resumed part only, when a run was killed inside it)
      self.log.write(dict(kind="phase", phase=key, seconds=round(time.time() - started, 1)), phase.iteration)
      position["done"].append(key)
      self._save(position, phase=None, step=0)
      if on_phase is not None and distributed.is_primary():
        on_phase(phase)
      if halt_at == (key, None):
        raise RunHalted(f"halted after {key}")
    return self.summary()

  def evaluate_state(self, state, iteration: int) -> None:
    """Evaluates another run's training state (its model) with this run's rollout settings, logged as this run's
    evaluation `iteration`: the baselines search with a trained model in other ways (sweeps, experiments/)."""
    started = time.time()
    self.trainer.state = state
    self._eval(iteration)
    self.log.write(dict(kind="phase", phase=f"eval/{iteration}", seconds=round(time.time() - started, 1)), iteration)

  def summary(self) -> dict:
    """The dev-EM table, gain and plot (process 0; the others, which write nothing, get an empty table)."""
    if not distributed.is_primary():
      return {"table": "", "evals": []}
    rows = report.latest_per_iteration(self.log.read("eval"))
    out: dict[str, Any] = {"table": report.table(rows), "evals": rows}
    if len(rows) > 1:
      first = np.load(os.path.join(self.workdir, "eval", str(rows[0]["iteration"]), "correct.npy"), allow_pickle=False)
      last = np.load(os.path.join(self.workdir, "eval", str(rows[-1]["iteration"]), "correct.npy"), allow_pickle=False)
      out["em_gain"] = float((last.mean() - first.mean()) * 100)
      out["em_gain_95ci"] = bootstrap_gain(first, last)
      report.plot(rows, os.path.join(self.workdir, "em_curve.png"), title="dev EM over EM iterations")
    with atomic.replaced_file(os.path.join(self.workdir, "summary.json")) as f:
      json.dump({k: v for k, v in out.items() if k != "table"}, f, indent=1)
    return out

  def params(self):
    return self.trainer.state.params


def _bar(total: int, start: int, desc: str, enabled: bool):
  from tqdm import tqdm

  return tqdm(total=total, initial=start, desc=desc, unit="step", disable=not enabled)
