"""Checkpointer: checksum manifests, fallback past damaged steps, setting steps aside, disk-full errors."""

import errno
import hashlib
import json
import os
import re
import shutil

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dsa_jax import checkpointing

CONFIG = ml_collections.ConfigDict({"seed": 7, "train": {"num_steps": 6, "max_checkpoints": 3}})
METADATA = {"image_shape": [5, 7, 3]}
ORBAX_COMMIT_FILES = {"_CHECKPOINT_METADATA", "commit_success.txt"}


def state_at(step: int) -> dict:
  return {"params": {"w": jnp.arange(6.0) + step}, "step": step}


def save_steps(directory: str, steps: list[int], max_to_keep: int = 3) -> None:
  checkpointer = checkpointing.Checkpointer(directory, 2, max_to_keep)
  for step in steps:
    assert checkpointer.save(step, state_at(step), CONFIG, METADATA)
  checkpointer.close()


def files_under(folder: str) -> list[str]:
  """Paths relative to folder of every file under it, sorted."""
  return sorted(
      os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder) for name in names
  )


def largest_state_data_file(directory: str, step: int) -> str:
  step_folder = os.path.join(directory, str(step))
  data_files = [path for path in files_under(step_folder) if path.startswith("state/") and "/d/" in f"/{path}"]
  return max(data_files, key=lambda path: os.path.getsize(os.path.join(step_folder, path)))


def flip_64_middle_bytes(path: str) -> None:
  with open(path, "r+b") as file:
    content = bytearray(file.read())
    start = len(content) // 2 - 32
    content[start : start + 64] = bytes(byte ^ 0xFF for byte in content[start : start + 64])
    file.seek(0)
    file.write(content)


def damage(directory: str, step: int) -> str:
  """Flips 64 bytes in the middle of step's largest state data file; returns its path relative to the step."""
  relative = largest_state_data_file(directory, step)
  flip_64_middle_bytes(os.path.join(directory, str(step), relative))
  return relative


def damaged_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.startswith("Checkpoint step")]


@pytest.fixture
def directory(tmp_path) -> str:
  return str(tmp_path / "checkpoints")


@pytest.mark.parametrize("max_to_keep", [0, -2])
def test_max_to_keep_below_one_is_refused_naming_the_config_field(directory, max_to_keep):
  with pytest.raises(
      checkpointing.CheckpointError,
      match=re.escape(f"config.train.max_checkpoints is {max_to_keep}; it must be at least 1: it is how many checkpoints"),
  ):
    checkpointing.Checkpointer(directory, 2, max_to_keep)
  assert not os.path.exists(directory)


def test_max_to_keep_is_ignored_when_read_only(directory):
  save_steps(directory, [2])
  assert checkpointing.Checkpointer(directory, 1, max_to_keep=0, read_only=True).all_steps() == [2]


def test_max_to_keep_one_keeps_the_last_checkpoint(directory):
  save_steps(directory, [2, 4, 6], max_to_keep=1)
  checkpointer = checkpointing.Checkpointer(directory, 1, read_only=True)
  assert checkpointer.all_steps() == [6]
  assert checkpointer.intact_step() == 6
  np.testing.assert_array_equal(checkpointer.restore_params()["w"], np.arange(6.0) + 6)


def test_a_forced_step_off_the_cadence_is_kept_only_while_newest_and_evicts_no_cadence_step(directory):
  checkpointer = checkpointing.Checkpointer(directory, 2, max_to_keep=2)
  steps_after_each_save = []
  for step, forced in [(2, False), (4, False), (5, True), (6, False), (7, True), (8, False)]:
    assert checkpointer.save(step, state_at(step), CONFIG, METADATA, force=forced)
    checkpointer.wait()
    steps_after_each_save.append(checkpointer.all_steps())
  checkpointer.close()
  assert steps_after_each_save == [[2], [2, 4], [2, 4, 5], [4, 6], [4, 6, 7], [6, 8]]


def test_every_saved_step_has_a_manifest_of_its_files(directory):
  save_steps(directory, [2, 4, 6])
  assert sorted(os.listdir(directory)) == ["2", "4", "6"]
  for step in (2, 4, 6):
    step_folder = os.path.join(directory, str(step))
    with open(os.path.join(step_folder, checkpointing.MANIFEST_FILE)) as file:
      manifest = json.load(file)
    unlisted = {checkpointing.MANIFEST_FILE, *ORBAX_COMMIT_FILES}
    listed = [path for path in files_under(step_folder) if path not in unlisted]
    assert {"config/metadata", "metadata/metadata", "state/_METADATA"} <= set(listed)
    with_hashes = {}
    for path in listed:
      with open(os.path.join(step_folder, path), "rb") as file:
        with_hashes[path] = hashlib.sha256(file.read()).hexdigest()
    assert manifest == with_hashes


def test_the_manifest_is_in_the_step_folder_before_orbax_renames_it_into_place(directory, monkeypatch):
  written_into = []
  write_manifest = checkpointing._write_manifest

  def recording_write_manifest(folder):
    written_into.append((os.path.basename(folder), sorted(os.listdir(directory))))
    write_manifest(folder)

  monkeypatch.setattr(checkpointing, "_write_manifest", recording_write_manifest)
  save_steps(directory, [2])
  assert written_into == [("2.orbax-checkpoint-tmp", ["2.orbax-checkpoint-tmp"])]
  assert os.path.isfile(os.path.join(directory, "2", checkpointing.MANIFEST_FILE))


def test_an_intact_step_restores_exactly_what_was_saved(directory):
  save_steps(directory, [2, 4, 6])
  checkpointer = checkpointing.Checkpointer(directory, 1, read_only=True)
  assert checkpointer.intact_step(4) == 4
  state = checkpointer.restore_state(checkpointing.abstract_like(state_at(0)), 4)
  np.testing.assert_array_equal(state["params"]["w"], np.arange(6.0) + 4)
  assert state["step"] == 4
  assert checkpointer.restore_config(4).to_dict() == CONFIG.to_dict()
  assert checkpointer.restore_metadata(4) == METADATA


def test_a_damaged_newest_step_falls_back_to_the_one_before_and_deletes_nothing(directory, capsys):
  save_steps(directory, [2, 4, 6])
  relative = damage(directory, 6)
  checkpointer = checkpointing.Checkpointer(directory, 1, read_only=True)
  assert checkpointer.intact_step() == 4
  state = checkpointer.restore_state(checkpointing.abstract_like(state_at(0)))
  np.testing.assert_array_equal(state["params"]["w"], np.arange(6.0) + 4)
  assert state["step"] == 4
  np.testing.assert_array_equal(checkpointer.restore_params()["w"], np.arange(6.0) + 4)
  assert checkpointer.restore_metadata() == METADATA
  assert damaged_lines(capsys.readouterr().err) == [
      f"Checkpoint step 6 in {directory} is damaged (sha256 mismatch in {relative}); using step 4 instead."
  ]
  assert sorted(os.listdir(directory)) == ["2", "4", "6"]
  assert checkpointer.all_steps() == [2, 4, 6]


def test_a_damaged_step_asked_for_by_number_is_refused_naming_step_and_reason(directory):
  save_steps(directory, [2, 4, 6])
  relative = damage(directory, 6)
  checkpointer = checkpointing.Checkpointer(directory, 1, read_only=True)
  expected = re.escape(
      f"The checkpoint at step 6 in {directory} is damaged (sha256 mismatch in {relative}); move "
      f"{os.path.join(directory, '6')} aside to resume from the step before, or restore it from a backup."
  )
  with pytest.raises(checkpointing.CheckpointError, match=expected):
    checkpointer.intact_step(6)
  with pytest.raises(checkpointing.CheckpointError, match=expected):
    checkpointer.restore_config(6)


def test_a_step_without_manifest_is_not_intact(directory, capsys):
  save_steps(directory, [2, 4, 6])
  os.remove(os.path.join(directory, "6", checkpointing.MANIFEST_FILE))
  checkpointer = checkpointing.Checkpointer(directory, 1, read_only=True)
  assert checkpointer.intact_step() == 4
  assert damaged_lines(capsys.readouterr().err) == [
      f"Checkpoint step 6 in {directory} is damaged (no checksum manifest sha256.json); using step 4 instead."
  ]


def test_a_manifest_naming_a_missing_file_is_not_intact(directory):
  save_steps(directory, [2, 4])
  os.remove(os.path.join(directory, "4", "metadata", "metadata"))
  with pytest.raises(checkpointing.CheckpointError, match=re.escape("damaged (metadata/metadata is missing)")):
    checkpointing.Checkpointer(directory, 1, read_only=True).intact_step(4)


def test_no_intact_step_is_an_error_naming_the_directory_and_the_fix(directory):
  save_steps(directory, [2, 4, 6])
  relatives = {step: damage(directory, step) for step in (4, 6)}
  os.remove(os.path.join(directory, "2", checkpointing.MANIFEST_FILE))
  with pytest.raises(checkpointing.CheckpointError) as raised:
    checkpointing.Checkpointer(directory, 1, read_only=True).restore_config()
  assert str(raised.value) == (
      f"No intact checkpoint in {directory} (step 6: sha256 mismatch in {relatives[6]}; step 4: sha256 mismatch "
      f"in {relatives[4]}; step 2: no checksum manifest sha256.json). Start a new --workdir, or restore the "
      "checkpoints from a backup."
  )
  assert sorted(os.listdir(directory)) == ["2", "4", "6"]


def test_each_file_is_hashed_once_per_checkpointer(directory, monkeypatch):
  save_steps(directory, [2])
  with open(os.path.join(directory, "2", checkpointing.MANIFEST_FILE)) as file:
    num_files = len(json.load(file))
  hashes = []
  sha256 = hashlib.sha256
  monkeypatch.setattr(checkpointing.hashlib, "sha256", lambda *args: hashes.append(1) or sha256(*args))
  checkpointer = checkpointing.Checkpointer(directory, 1, read_only=True)
  checkpointer.restore_config()
  checkpointer.restore_metadata()
  checkpointer.restore_state(checkpointing.abstract_like(state_at(0)))
  checkpointer.restore_params(2)
  assert len(hashes) == num_files


def test_set_aside_moves_a_damaged_step_out_and_frees_its_step_number(directory, tmp_path):
  save_steps(directory, [2, 4, 6])
  relative = damage(directory, 6)
  checkpointer = checkpointing.Checkpointer(directory, 2)
  assert checkpointer.intact_step() == 4
  aside = checkpointer.set_aside(6)
  assert aside == str(tmp_path / "damaged_checkpoints" / "6")
  assert os.path.isfile(os.path.join(aside, relative))
  assert sorted(os.listdir(directory)) == ["2", "4"]
  assert checkpointer.all_steps() == [2, 4]
  assert checkpointer.save(6, state_at(60), CONFIG, METADATA)
  checkpointer.wait()
  assert checkpointer.intact_step() == 6
  assert checkpointer.set_aside(6) == str(tmp_path / "damaged_checkpoints" / "6-1")
  assert checkpointer.save(6, state_at(61), CONFIG, METADATA)
  checkpointer.close()
  reader = checkpointing.Checkpointer(directory, 1, read_only=True)
  assert reader.all_steps() == [2, 4, 6]
  np.testing.assert_array_equal(reader.restore_params()["w"], np.arange(6.0) + 61)


def test_a_save_that_cannot_fit_on_the_disk_is_refused_before_writing(directory, monkeypatch):
  disk_usage = shutil.disk_usage
  monkeypatch.setattr(checkpointing.shutil, "disk_usage", lambda path: disk_usage(path)._replace(free=1024))
  checkpointer = checkpointing.Checkpointer(directory, 2)
  with pytest.raises(checkpointing.CheckpointError) as raised:
    checkpointer.save(2, {"params": {"w": jnp.zeros(1024)}}, CONFIG, METADATA)
  assert str(raised.value) == (
      f"Not enough disk space to save the checkpoint at step 2 in {directory}: it needs ~1 MB, 0 MB are free. "
      "Free space or set --workdir on a larger disk; the checkpoints already written are intact."
  )
  checkpointer.close()
  assert os.listdir(directory) == []


def test_disk_full_in_the_orbax_save_is_a_checkpoint_error(directory, monkeypatch):
  checkpointer = checkpointing.Checkpointer(directory, 2)
  disk_full = OSError(errno.ENOSPC, "write failed")

  def save(*args, **kwargs):
    raise disk_full

  monkeypatch.setattr(checkpointer._manager, "save", save)
  expected = f"^Not enough disk space to save the checkpoint at step 2 in {re.escape(directory)}: "
  with pytest.raises(checkpointing.CheckpointError, match=expected) as raised:
    checkpointer.save(2, state_at(2), CONFIG, METADATA)
  assert raised.value.__cause__ is disk_full
  checkpointer.close()


def test_disk_full_in_an_async_save_is_a_checkpoint_error_and_the_next_run_cleans_up(directory, monkeypatch):
  def write_manifest(folder):
    raise ValueError("RESOURCE_EXHAUSTED: Failed writing: No space left on device [os_error_code='28']")

  monkeypatch.setattr(checkpointing, "_write_manifest", write_manifest)
  checkpointer = checkpointing.Checkpointer(directory, 2)
  assert checkpointer.save(2, state_at(2), CONFIG, METADATA)
  with pytest.raises(checkpointing.CheckpointError, match="^Not enough disk space to save the checkpoint at step 2 "):
    checkpointer.close()
  assert checkpointing.Checkpointer(directory, 1, read_only=True).all_steps() == []
  monkeypatch.undo()
  save_steps(directory, [4])
  assert os.listdir(directory) == ["4"]


def test_other_save_failures_name_the_step_and_directory(directory, monkeypatch):
  checkpointer = checkpointing.Checkpointer(directory, 2)
  failure = RuntimeError("tensorstore exploded\nsecond line")

  def save(*args, **kwargs):
    raise failure

  monkeypatch.setattr(checkpointer._manager, "save", save)
  with pytest.raises(checkpointing.CheckpointError) as raised:
    checkpointer.save(4, state_at(4), CONFIG, METADATA)
  assert str(raised.value) == (
      f"Could not save the checkpoint at step 4 in {directory}; the checkpoints already written are intact.\n"
      "RuntimeError: tensorstore exploded"
  )
  assert raised.value.__cause__ is failure
  checkpointer.close()
