"""Orbax checkpoints of a run: parameters, optimizer state, and where the run stands (EM iteration,
phase, step inside the phase, data position, seed), so a killed run resumes exactly where it stopped.

Arrays are saved as a flat list of leaves and restored into the live trainer's tree with its shardings,
so restoring never builds a second copy of the model and works the same on one host or many.
"""

from __future__ import annotations

import os
from typing import Optional

import jax
import orbax.checkpoint as ocp

# Seconds a save may take before orbax gives up on it and raises. Its default, 20 minutes, counts wall time:
# a run whose machine was suspended (or whose process was stopped) during a save died on resume, though the
# save was fine. A run that is genuinely stuck is the peer watchdog's business, not this timer's.
SAVE_TIMEOUT_S = 24 * 3600


class RunCheckpoints:
  """`save(step, trainer, position)`; `restore_latest(trainer) -> position or None`."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, async_options=ocp.AsyncOptions(timeout_secs=SAVE_TIMEOUT_S)
        ),
        item_names=("arrays", "position"),
    )

  @staticmethod
  def _leaves(trainer) -> dict:
    leaves = jax.tree.leaves((trainer.state.params, trainer.state.opt_state))
    return {f"{i:05d}": leaf for i, leaf in enumerate(leaves)}

  def save(self, step: int, trainer, position: dict) -> None:
    """Writes checkpoint `step` (a monotone counter of the run) and waits until it is on disk."""
    position = dict(position, train_step=trainer.state.step)
    self.manager.save(
        step,
        args=ocp.args.Composite(
            arrays=ocp.args.StandardSave(self._leaves(trainer)), position=ocp.args.JsonSave(position)
        ),
        force=True,
    )
    self.manager.wait_until_finished()

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def restore_latest(self, trainer) -> Optional[dict]:
    step = self.manager.latest_step()
    if step is None:
      return None
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), self._leaves(trainer))
    restored = self.manager.restore(
        step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(target), position=ocp.args.JsonRestore())
    )
    treedef = jax.tree.structure((trainer.state.params, trainer.state.opt_state))
    params, opt_state = jax.tree.unflatten(treedef, [restored["arrays"][k] for k in sorted(restored["arrays"])])
    position = dict(restored["position"])
    trainer.restore(params, opt_state, position.pop("train_step"))
    return position

  def close(self):
    self.manager.close()
