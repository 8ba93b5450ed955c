"""The M-step update: weighted per-sequence-mean cross entropy over model-written tokens, AdamW with
warmup + cosine and clipping, gradient accumulation over micro-batches, one `jax.jit` with explicit
shardings and donated parameters and optimizer state.

A step whose loss or gradient norm is not finite leaves parameters and optimizer state untouched and
reports `skipped`, so a NaN never reaches a checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from exsearch_jax.em.sequences import Batch
from exsearch_jax.sharding import state_shardings


def sequence_logprobs(model, tokens, loss_mask, attention_mask, remat: bool = False):
  """Per sequence: sum of log p(token) over the masked target tokens, and how many there are."""
  logits = model(tokens[:, :-1], attention_mask=attention_mask[:, :-1], remat=remat).astype(jnp.float32)
  logp = -optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])
  target = (loss_mask[:, 1:] & attention_mask[:, 1:]).astype(jnp.float32)
  return (logp * target).sum(axis=1), target.sum(axis=1)


def weighted_loss_sum(model, tokens, loss_mask, attention_mask, weights, remat: bool = False):
  """Σ_i w_i · mean NLL_i over the rows of one micro-batch (the caller divides by the sequence count)."""
  total, count = sequence_logprobs(model, tokens, loss_mask, attention_mask, remat)
  return jnp.sum(weights * (-total / jnp.maximum(count, 1.0)))


def make_optimizer(
    weight_decay: float = 0.0, grad_clip: float = 1.0, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
  """AdamW with clipping and a unit step: the learning rate is an argument of each train step, so one
  compiled step serves every phase (stage 0, warm-up, each M-step) with its own schedule."""
  return optax.chain(
      optax.clip_by_global_norm(grad_clip),
      optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
      optax.add_decayed_weights(weight_decay),
      optax.scale(-1.0),
  )


def learning_rate(step: int, total_steps: int, peak: float, warmup_ratio: float = 0.1, end_ratio: float = 0.1) -> float:
  """Linear warmup then cosine decay to `end_ratio`·peak (the paper: warmup 0.1, cosine)."""
  total = max(1, int(total_steps))
  warmup = int(round(warmup_ratio * total))
  if step < warmup:
    return peak * (step + 1) / warmup
  progress = min(1.0, (step - warmup) / max(1, total - warmup))
  return peak * (end_ratio + (1 - end_ratio) * 0.5 * (1 + np.cos(np.pi * progress)))


def trainable_mask(params, trainable_layers: int = 0) -> tuple:
  """Which leaves of `params` (in `jax.tree.leaves` order) the M-step trains. 0: all of them; N > 0: the top N
  decoder layers and the final norm only, so the backward pass stops at the first trained layer (the
  embeddings, tied to the output head in small models, stay as they are)."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  if trainable_layers <= 0:
    return (True,) * len(flat)
  keys: list[list[Any]] = [[getattr(k, "key", getattr(k, "idx", None)) for k in path] for path, _ in flat]
  layers = 1 + max((k[1] for k in keys if k[0] == "layers"), default=-1)
  if trainable_layers > layers:
    raise ValueError(f"train.trainable_layers={trainable_layers}, but the model has {layers} layers")
  return tuple(k[0] == "final_norm" or (k[0] == "layers" and k[1] >= layers - trainable_layers) for k in keys)


def _split(params, mask):
  """The trained leaves (a list) and a function putting trained leaves back among the frozen ones."""
  leaves, treedef = jax.tree.flatten(params)

  def join(trained):
    it = iter(trained)
    return treedef.unflatten([next(it) if m else leaf for leaf, m in zip(leaves, mask)])

  return [leaf for leaf, m in zip(leaves, mask) if m], join


def _step(graphdef, tx, mask, remat, params, opt_state, lr, tokens, loss_mask, attention_mask, weights):
  sequences = jnp.maximum(jnp.sum(attention_mask[..., 0]), 1).astype(jnp.float32)
  trained, join = _split(params, mask)

  def micro(grads_and_loss, batch):
    grads_acc, loss_acc = grads_and_loss
    loss_of = lambda t: weighted_loss_sum(nnx.merge(graphdef, join(t)), *batch, remat=remat)  # noqa: E731
    loss, grads = jax.value_and_grad(loss_of)(trained)
    return (jax.tree.map(jnp.add, grads_acc, grads), loss_acc + loss), None

  zeros = jax.tree.map(jnp.zeros_like, trained)
  (grads, loss), _ = jax.lax.scan(micro, (zeros, jnp.float32(0.0)), (tokens, loss_mask, attention_mask, weights))
  grads = jax.tree.map(lambda g: g / sequences, grads)
  loss = loss / sequences
  grad_norm = optax.global_norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  updates, new_opt = tx.update(grads, opt_state, trained)
  updates = jax.tree.map(lambda u: lr * u, updates)
  new_trained = optax.apply_updates(trained, updates)
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)  # noqa: E731
  return (
      join(keep(new_trained, trained)),
      keep(new_opt, opt_state),
      {"loss": loss, "grad_norm": grad_norm, "skipped": ~finite},
  )


@dataclasses.dataclass
class TrainState:
  params: nnx.State
  opt_state: object
  step: int = 0


class Trainer:
  """Holds the sharded parameters and optimizer state of one model; `update(batch)` is one jitted step.

  `remat` recomputes each layer's activations in the backward pass (`Decoder.hidden_states`).
  `trainable_layers` > 0 trains only the top layers (`trainable_mask`); the optimizer state then holds
  moments for those weights alone.
  """

  def __init__(
      self, model, tx: optax.GradientTransformation, mesh=None, trainable_layers: int = 0, remat: bool = False
  ):
    self.graphdef, params = nnx.split(model)
    self.tx, self.mesh = tx, mesh
    self.mask = trainable_mask(params, trainable_layers)
    self.param_shardings = state_shardings(params, mesh)
    params = jax.device_put(params, self.param_shardings)
    init = lambda p: tx.init(_split(p, self.mask)[0])  # noqa: E731
    if mesh is None:  # committed to the device, as the step's outputs are: else the second step compiles again
      self._init_opt = jax.jit(init, out_shardings=jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    else:  # moments are sharded like their parameters; counters are replicated
      replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
      trained_shardings = _split(self.param_shardings, self.mask)[0]
      opt_shardings = optax.tree_utils.tree_map_params(
          tx,
          lambda _, sharding: sharding,
          jax.eval_shape(init, params),
          trained_shardings,
          transform_non_params=lambda _: replicated,
      )
      self._init_opt = jax.jit(init, out_shardings=opt_shardings)
    opt_state = self._init_opt(params)
    self.opt_shardings = jax.tree.map(lambda x: x.sharding, opt_state)
    self.state = TrainState(params, opt_state, 0)
    in_shardings: Optional[tuple] = None
    out_shardings: Optional[tuple] = None
    self._batch_shardings: Optional[tuple] = None
    if mesh is not None:  # (micro, rows, length): rows over data+fsdp
      data = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, ("data", "fsdp"), None))
      weights = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, ("data", "fsdp")))
      replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
      in_shardings = (self.param_shardings, self.opt_shardings, replicated, data, data, data, weights)
      out_shardings = (self.param_shardings, self.opt_shardings, replicated)
      self._batch_shardings = (data, data, data, weights)
    step = lambda *args: _step(self.graphdef, tx, self.mask, remat, *args)  # noqa: E731
    self._jit = jax.jit(step, in_shardings=in_shardings, out_shardings=out_shardings, donate_argnums=(0, 1))

  def update(self, batch: Batch, lr: float) -> dict:
    """One step on the global batch. Every process passes the same whole batch and places only its slices."""
    arrays: Sequence = (batch.tokens, batch.loss_mask, batch.attention_mask, batch.weights)
    if self._batch_shardings is not None:
      arrays = [jax.make_array_from_callback(a.shape, s, a.__getitem__) for a, s in zip(arrays, self._batch_shardings)]
    params, opt_state, metrics = self._jit(self.state.params, self.state.opt_state, np.float32(lr), *arrays)
    self.state = TrainState(params, opt_state, self.state.step + 1)
    return {k: float(np.asarray(v)) for k, v in metrics.items()}

  def reset_optimizer(self):
    """Fresh AdamW moments for a new phase (the paper fine-tunes anew in each EM iteration)."""
    self.state = TrainState(self.state.params, self._init_opt(self.state.params), self.state.step)

  def model(self):
    return nnx.merge(self.graphdef, self.state.params)

  def restore(self, params, opt_state, step: int):
    self.state = TrainState(
        jax.device_put(params, self.param_shardings), jax.device_put(opt_state, self.opt_shardings), int(step)
    )
