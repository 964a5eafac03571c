"""Checkpoints: orbax CheckpointManager with the train state and its config side by side.

Each checkpoint step holds `state` (StandardSave of the train state pytree), `config` (the
run's ConfigDict as JSON) and `metadata` (values derived from the data, such as the frame
shape), so a notebook can rebuild the model from a workdir alone.
Saves are atomic (orbax writes to `<step>.orbax-checkpoint-tmp` and renames it): a run killed
mid-save leaves the previous checkpoints intact. Each step also holds `sha256.json`, the sha256
of its files, written before that rename; restores check it and fall back to the newest step
whose files match, and saves refuse early when the disk cannot hold the state.
"""

import errno
import hashlib
import json
import math
import os
import shutil
import sys
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

MANIFEST_FILE = "sha256.json"
# Step-level files orbax still writes after the manifest, while it renames the folder.
_WRITTEN_AFTER_MANIFEST = frozenset({MANIFEST_FILE, "_CHECKPOINT_METADATA", ocp.path.atomicity.COMMIT_SUCCESS_FILE})
_HASH_CHUNK_BYTES = 1 << 20
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_SPACE_MARGIN = 1.1
_DAMAGED_DIR = "damaged_checkpoints"


class CheckpointError(RuntimeError):
  """A checkpoint is missing, unreadable, damaged or belongs to another config, or cannot be saved."""


def checkpoint_dir(workdir: str) -> str:
  """Where a run's checkpoints live inside its workdir."""
  return os.path.join(os.path.abspath(os.path.expanduser(workdir)), "checkpoints")


def _file_sha256(path: str) -> str:
  """The hex sha256 of a file, read in 1 MB chunks."""
  digest = hashlib.sha256()
  with open(path, "rb") as file:
    for chunk in iter(lambda: file.read(_HASH_CHUNK_BYTES), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _write_manifest(folder: str) -> None:
  """Writes folder/sha256.json: the sha256 of every file under folder, by relative path."""
  hashes = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      relative = os.path.relpath(path, folder)
      if relative not in _WRITTEN_AFTER_MANIFEST:
        hashes[relative] = _file_sha256(path)
  with open(os.path.join(folder, MANIFEST_FILE), "w") as file:
    json.dump(hashes, file, indent=1, sort_keys=True)


def _manifest_damage(folder: str) -> str | None:
  """What is wrong with folder's files against its manifest, or None when every listed file matches."""
  try:
    with open(os.path.join(folder, MANIFEST_FILE)) as file:
      expected = json.load(file)
  except FileNotFoundError:
    return f"no checksum manifest {MANIFEST_FILE}"
  except (OSError, ValueError) as error:
    return f"unreadable checksum manifest {MANIFEST_FILE}: {error}"
  for relative, digest in sorted(expected.items()):
    path = os.path.join(folder, relative)
    if not os.path.isfile(path):
      return f"{relative} is missing"
    if _file_sha256(path) != digest:
      return f"sha256 mismatch in {relative}"
  return None


def _is_disk_full(error: BaseException) -> bool:
  """Whether error or an error in its cause chain says the disk or the quota is full."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
      return True
    # tensorstore reports it as ValueError("RESOURCE_EXHAUSTED: ... No space left on device [os_error_code='28']").
    if any(os.strerror(code) in str(error) for code in _DISK_FULL_ERRNOS):
      return True
    error = error.__cause__ or error.__context__
  return False


def _summary(error: BaseException) -> str:
  """The error's type and first line, for the line under a CheckpointError's own message."""
  lines = str(error).strip().splitlines()
  return f"{type(error).__name__}: {lines[0] if lines else ''}"


class KeepSelected:
  """An orbax preservation policy that keeps the run's selected step (`selection.py`), whatever the others decide."""

  def __init__(self, step: int | None = None):
    self.step = step

  def should_preserve(self, checkpoints, *, context) -> list[bool]:
    """True for the checkpoint at the selected step."""
    del context
    return [checkpoint.step == self.step for checkpoint in checkpoints]


def _preservation_policy(
    save_every: int, max_to_keep: int, selected: KeepSelected
) -> ocp.checkpoint_managers.PreservationPolicy:
  """Keeps the newest `max_to_keep` steps on the `save_every` cadence, the newest step, and the selected one."""
  # A forced step off the cadence (written on SIGTERM) serves only to resume: it never evicts a
  # cadence step that a learning curve scores, and goes once a newer step is written.
  return ocp.checkpoint_managers.AnyPreservationPolicy([
      ocp.checkpoint_managers.LatestN(n=1),
      ocp.checkpoint_managers.EveryNSteps(interval_steps=save_every, max_to_keep=max_to_keep),
      selected,
  ])


class Checkpointer:
  """Saves every `save_every` steps (and when forced); restores the newest intact step by default.

  `max_to_keep` counts the steps on the cadence; the newest step is kept besides when it is off it,
  and so is `selected_step` (the checkpoint chosen on validation scores; `select` moves it).
  """

  def __init__(
      self, directory: str, save_every: int, max_to_keep: int = 3, read_only: bool = False,
      selected_step: int | None = None,
  ):
    if not read_only and max_to_keep < 1:
      raise CheckpointError(
          f"config.train.max_checkpoints is {max_to_keep}; it must be at least 1: it is how many checkpoints "
          "on the checkpoint_every cadence are kept."
      )
    self.directory = directory
    self._save_every = save_every
    self._read_only = read_only
    self._saving_step: int | None = None
    self._saving_bytes = 0
    self._damage_by_step: dict[int, str | None] = {}
    self._reported_damaged: set[int] = set()
    self._selected = KeepSelected(selected_step)
    self._manager = ocp.CheckpointManager(
        directory,
        options=ocp.CheckpointManagerOptions(
            preservation_policy=None if read_only else _preservation_policy(save_every, max_to_keep, self._selected),
            save_interval_steps=0 if read_only else 1,
            create=not read_only,
            read_only=read_only,
            cleanup_tmp_directories=not read_only,
            async_options=ocp.AsyncOptions(post_finalization_callback=self._write_saving_manifest),
        ),
        item_names=("state", "config", "metadata"),
    )

  def _step_folder(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def _write_saving_manifest(self) -> None:
    # orbax calls this in its save thread once every item is written, before it renames
    # <step>.orbax-checkpoint-tmp to <step> and only then deletes steps beyond max_to_keep: every
    # complete step has its manifest, so that collection never leaves only unverifiable steps.
    if jax.process_index() == 0:
      _write_manifest(f"{self._step_folder(self._saving_step)}{ocp.path.atomicity.TMP_DIR_SUFFIX}")

  def select(self, step: int) -> None:
    """Keeps the checkpoint at `step` (saved or about to be) from now on, instead of the one selected before."""
    self._selected.step = step

  def latest_step(self) -> int | None:
    """The newest complete checkpoint's step (intact or not), or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Steps of all complete checkpoints, oldest first."""
    return sorted(self._manager.all_steps())

  def _damage(self, step: int) -> str | None:
    if step not in self._damage_by_step:
      self._damage_by_step[step] = _manifest_damage(self._step_folder(step))
    return self._damage_by_step[step]

  def _no_checkpoint_error(self, step: int | None) -> CheckpointError:
    return CheckpointError(
        f"No checkpoint{'' if step is None else f' at step {step}'} in {self.directory} "
        f"(found steps {self.all_steps()}). Train first, or point --workdir at a run."
    )

  def intact_step(self, step: int | None = None) -> int:
    """`step` if its files match its manifest, or by default the newest such step (skipping damaged newer ones)."""
    if step is not None:
      if step not in self._manager.all_steps():
        raise self._no_checkpoint_error(step)
      damage = self._damage(step)
      if damage is not None:
        raise CheckpointError(
            f"The checkpoint at step {step} in {self.directory} is damaged ({damage}); move "
            f"{self._step_folder(step)} aside to resume from the step before, or restore it from a backup."
        )
      return step
    steps = self.all_steps()
    if not steps:
      raise self._no_checkpoint_error(None)
    damaged = {}
    for candidate in reversed(steps):
      damage = self._damage(candidate)
      if damage is None:
        for bad_step, reason in damaged.items():
          if bad_step not in self._reported_damaged:
            self._reported_damaged.add(bad_step)
            print(
                f"Checkpoint step {bad_step} in {self.directory} is damaged ({reason}); "
                f"using step {candidate} instead.",
                file=sys.stderr,
            )
        return candidate
      damaged[candidate] = damage
    found = "; ".join(f"step {bad_step}: {reason}" for bad_step, reason in damaged.items())
    raise CheckpointError(
        f"No intact checkpoint in {self.directory} ({found}). Start a new --workdir, or restore the "
        "checkpoints from a backup."
    )

  def set_aside(self, step: int) -> str:
    """Moves a damaged step's folder to ../damaged_checkpoints/<step> (never deleting it); returns its new path."""
    if self._read_only:
      raise CheckpointError(f"Cannot set aside step {step} of {self.directory}: the Checkpointer is read-only.")
    self.wait()
    if step not in self._manager.all_steps():
      raise self._no_checkpoint_error(step)
    aside_dir = os.path.join(os.path.dirname(os.path.abspath(self.directory)), _DAMAGED_DIR)
    os.makedirs(aside_dir, exist_ok=True)
    target = os.path.join(aside_dir, str(step))
    suffix = 0
    while os.path.exists(target):
      suffix += 1
      target = os.path.join(aside_dir, f"{step}-{suffix}")
    shutil.move(self._step_folder(step), target)
    self._manager.reload()
    self._damage_by_step.pop(step, None)
    self._reported_damaged.discard(step)
    return target

  def _disk_full_error(self, step: int, needed_bytes: float) -> CheckpointError:
    free_bytes = shutil.disk_usage(self.directory).free
    return CheckpointError(
        f"Not enough disk space to save the checkpoint at step {step} in {self.directory}: it needs "
        f"~{math.ceil(needed_bytes / 1e6)} MB, {math.floor(free_bytes / 1e6)} MB are free. Free space or set "
        "--workdir on a larger disk; the checkpoints already written are intact."
    )

  def _save_error(self, step: int, error: BaseException) -> CheckpointError:
    if _is_disk_full(error):
      return self._disk_full_error(step, self._saving_bytes)
    return CheckpointError(
        f"Could not save the checkpoint at step {step} in {self.directory}; the checkpoints already written "
        f"are intact.\n{_summary(error)}"
    )

  def _finish_saves(self) -> None:
    try:
      self._manager.wait_until_finished()
    except Exception as error:
      self._manager.reload()
      raise self._save_error(self._saving_step, error) from error

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
    self._finish_saves()
    if step in self._manager.all_steps():
      return False
    needed_bytes = _DISK_SPACE_MARGIN * sum(getattr(leaf, "nbytes", 0) for leaf in jax.tree.leaves(state))
    if needed_bytes > shutil.disk_usage(self.directory).free:
      raise self._disk_full_error(step, needed_bytes)
    self._saving_step, self._saving_bytes = step, needed_bytes
    self._damage_by_step.pop(step, None)
    try:
      return self._manager.save(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardSave(state),
              config=ocp.args.JsonSave(config.to_dict()),
              metadata=ocp.args.JsonSave(metadata),
          ),
          force=True,
      )
    except Exception as error:
      self._manager.reload()
      raise self._save_error(step, error) from error

  def _unreadable_error(self, what: str, step: int, error: BaseException) -> CheckpointError:
    return CheckpointError(
        f"Could not read {what} at step {step} in {self.directory}. If the run was changed (model sizes, "
        f"optimizer), use a new --workdir; if the files are damaged, move {self._step_folder(step)} aside to "
        f"resume from the one before.\n{_summary(error)}"
    )

  def restore_state(self, abstract_state: Any, step: int | None = None) -> Any:
    """The train state at `step` (default the newest intact), laid out like `abstract_state`."""
    step = self.intact_step(step)
    try:
      restored = self._manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
      )
    except Exception as error:
      raise self._unreadable_error("the checkpoint", step, error) from error
    return restored.state

  def restore_params(self, step: int | None = None, abstract_params: Any = None) -> Any:
    """The parameters of the train state at `step` (default the newest intact), without the optimizer state.

    With abstract_params (ShapeDtypeStructs with shardings) only those arrays are read, onto
    their devices; without, every array of the state is read and numpy params are returned.
    """
    step = self.intact_step(step)
    if abstract_params is None:
      args = ocp.args.StandardRestore()
    else:
      target = {"params": abstract_params}
      args = ocp.args.PyTreeRestore(
          item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target), partial_restore=True
      )
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(state=args))
    except Exception as error:
      raise self._unreadable_error("the parameters of the checkpoint", step, error) from error
    return restored.state["params"]

  def _restore_json(self, item: str, step: int | None) -> dict[str, Any]:
    step = self.intact_step(step)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**{item: ocp.args.JsonRestore()}))
    except Exception as error:
      raise self._unreadable_error(f"the {item} of the checkpoint", step, error) from error
    return restored[item]

  def restore_config(self, step: int | None = None) -> ml_collections.ConfigDict:
    """The config saved with the checkpoint at `step` (default the newest intact)."""
    return ml_collections.ConfigDict(self._restore_json("config", step))

  def restore_metadata(self, step: int | None = None) -> dict[str, Any]:
    """The data-derived values saved with the checkpoint at `step` (default the newest intact)."""
    return self._restore_json("metadata", step)

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are on disk; raises CheckpointError if one failed."""
    self._finish_saves()

  def close(self) -> None:
    """Waits for saves and releases the manager."""
    try:
      self._finish_saves()
    finally:
      self._manager.close()


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a pytree of arrays, for StandardRestore."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def has_checkpoints(directory: str) -> bool:
  """Whether a checkpoint directory holds at least one finished step folder."""
  return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))
