"""Checkpoints: orbax CheckpointManager with the train state and its config side by side.

Each checkpoint step holds `state` (StandardSave of the train state pytree), `config` (the
run's ConfigDict as JSON) and `metadata` (values derived from the data, such as the frame
shape), so a notebook can rebuild the model from a workdir alone.
Saves are atomic (orbax writes to a temporary directory and renames): a run killed mid-save
leaves the previous checkpoints intact.
"""

import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint is missing, unreadable or belongs to another config."""


def checkpoint_dir(workdir: str) -> str:
  """Where a run's checkpoints live inside its workdir."""
  return os.path.join(os.path.abspath(os.path.expanduser(workdir)), "checkpoints")


class Checkpointer:
  """Saves every `save_every` steps (and when forced); restores the latest by default."""

  def __init__(self, directory: str, save_every: int, max_to_keep: int = 3, read_only: bool = False):
    self.directory = directory
    self._save_every = save_every
    self._manager = ocp.CheckpointManager(
        directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else max_to_keep,
            save_interval_steps=0 if read_only else 1,
            create=not read_only,
            read_only=read_only,
        ),
        item_names=("state", "config", "metadata"),
    )

  def latest_step(self) -> int | None:
    """The newest complete checkpoint's step, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Steps of all complete checkpoints, oldest first."""
    return sorted(self._manager.all_steps())

  def save(
      self,
      step: int,
      state: Any,
      config: ml_collections.ConfigDict,
      metadata: dict[str, Any],
      force: bool = False,
  ) -> bool:
    """Saves (asynchronously) when `step` is due or `force`; returns whether it saved."""
    if not force and step % self._save_every != 0:
      return False
    if step in self._manager.all_steps():
      return False
    return self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            config=ocp.args.JsonSave(config.to_dict()),
            metadata=ocp.args.JsonSave(metadata),
        ),
        force=True,
    )

  def _step_or_latest(self, step: int | None) -> int:
    step = self.latest_step() if step is None else step
    if step is None or step not in self._manager.all_steps():
      raise CheckpointError(
          f"No checkpoint{'' if step is None else f' at step {step}'} in {self.directory} "
          f"(found steps {self.all_steps()}). Train first, or point --workdir at a run."
      )
    return step

  def restore_state(self, abstract_state: Any, step: int | None = None) -> Any:
    """The train state at `step` (default latest), laid out like `abstract_state`."""
    step = self._step_or_latest(step)
    try:
      restored = self._manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
      )
    except Exception as error:
      raise CheckpointError(
          f"Could not read the checkpoint at step {step} in {self.directory}: {error}. If the run "
          "was changed (model sizes, optimizer), use a new --workdir; if the files are damaged, "
          f"move {os.path.join(self.directory, str(step))} aside to resume from the one before."
      ) from error
    return restored.state

  def restore_params(self, step: int | None = None) -> Any:
    """The parameters of the train state at `step` (default latest), as saved (numpy leaves)."""
    step = self._step_or_latest(step)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    except Exception as error:
      raise CheckpointError(f"Could not read the parameters at step {step} in {self.directory}: {error}.") from error
    return restored.state["params"]

  def _restore_json(self, item: str, step: int | None) -> dict[str, Any]:
    step = self._step_or_latest(step)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**{item: ocp.args.JsonRestore()}))
    except Exception as error:
      raise CheckpointError(
          f"Could not read the {item} of the checkpoint at step {step} in {self.directory}: {error}."
      ) from error
    return restored[item]

  def restore_config(self, step: int | None = None) -> ml_collections.ConfigDict:
    """The config saved with the checkpoint at `step` (default latest)."""
    return ml_collections.ConfigDict(self._restore_json("config", step))

  def restore_metadata(self, step: int | None = None) -> dict[str, Any]:
    """The data-derived values saved with the checkpoint at `step` (default latest)."""
    return self._restore_json("metadata", step)

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for saves and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a pytree of arrays, for StandardRestore."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
