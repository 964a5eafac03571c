"""What a demanding user does wrong, and what the library says: each fault has a test here."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

import dsa_jax
from dsa_jax import checkpointing, runs, stopping, tasks, train, workdirs
from experiments import vdsm_pendulum
from tests.conftest import REPO, subprocess_env, wait_for_path
from tests.test_checkpointing import flip_64_middle_bytes
from tests.test_train import SAMPLE_FILES, TINY_OVERRIDES, leaves_equal, tiny_config
from tests.test_vdsm_quick import shortened

ENV = subprocess_env()


@pytest.mark.parametrize(
    "field, value, requirement",
    [
        ("train.max_checkpoints", 0, "an integer of at least 1"),
        ("train.num_steps", -5, "an integer of at least 1"),
        ("train.checkpoint_every", 0, "an integer of at least 1"),
        ("train.log_every", 0, "an integer of at least 1"),
        ("train.batch_size", 0, "an integer of at least 1"),
        ("train.learning_rate", float("nan"), "a finite number above 0"),
        ("sample.num_videos", 1, "at least 2"),
        ("sample.rollout_temperature", -0.5, "a finite number of at least 0"),
        ("train.cooldown_steps", -1, "an integer of at least 0"),
        ("train.cooldown_steps", 7, "at most config.train.num_steps=6"),
    ],
)
def test_out_of_range_fields_are_refused_naming_the_field_before_anything_is_written(data_dir, tmp_path, field, value, requirement):
  workdir = tmp_path / "run"
  with pytest.raises(tasks.ConfigError, match=rf"config.{field}={value!r} is out of range: it must be {requirement}"):
    train.train_and_evaluate(tiny_config(data_dir, **{field: value}), str(workdir))
  assert not workdir.exists()


HOLD_LOCK = """
import sys, time
from dsa_jax import workdirs
with workdirs.locked(sys.argv[1]):
  print("locked", flush=True)
  time.sleep(600)
"""


def test_a_second_process_in_the_same_workdir_is_refused_and_a_killed_holder_leaves_no_lock(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, workdir], cwd=REPO, env=ENV, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(workdirs.WorkdirLockedError, match=rf"{workdir} is in use by another training process \(pid {holder.pid} on "):
      train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": 2}), workdir)
    assert not os.path.isdir(checkpointing.checkpoint_dir(workdir))
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  assert os.path.isfile(os.path.join(workdir, workdirs.LOCK_FILE))  # stale: names a dead process
  state = train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": 2}), workdir)
  assert int(state.step) == 2


def _largest_state_file(step_folder: str) -> str:
  files = [os.path.join(root, name) for root, _, names in os.walk(os.path.join(step_folder, "state")) for name in names]
  return max(files, key=os.path.getsize)


def test_flipped_bytes_in_the_newest_checkpoint_resume_from_the_one_before_bit_identically(data_dir, tmp_path, capfd):
  uninterrupted = train.train_and_evaluate(tiny_config(data_dir), str(tmp_path / "a"))
  workdir = str(tmp_path / "b")
  train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": 4}), workdir)
  checkpoints = checkpointing.checkpoint_dir(workdir)
  flip_64_middle_bytes(_largest_state_file(os.path.join(checkpoints, "4")))
  capfd.readouterr()
  resumed = train.train_and_evaluate(tiny_config(data_dir), workdir)
  out, err = capfd.readouterr()
  assert "Checkpoint step 4 in" in err and "using step 2 instead" in err
  assert "Resuming from the checkpoint at step 2" in out
  moved = os.path.join(workdir, "damaged_checkpoints", "4")
  assert f"Moved the damaged checkpoint of step 4 to {moved}." in out and os.path.isdir(moved)
  assert leaves_equal(uninterrupted.params, resumed.params)


def test_a_damaged_checkpoint_ends_the_command_with_one_clean_message(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": 2}), workdir)
  flip_64_middle_bytes(_largest_state_file(os.path.join(checkpointing.checkpoint_dir(workdir), "2")))
  overrides = {**TINY_OVERRIDES, "train.num_steps": 4}
  command = [
      sys.executable, "-m", "experiments.run", "--config=experiments/dsa_pendulum.py", f"--workdir={workdir}",
      f"--config.data.data_dir={data_dir}", "--config.data.variant=small",
      *(f"--config.{key}={value}" for key, value in overrides.items()),
  ]
  result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f"CheckpointError: No intact checkpoint in {checkpointing.checkpoint_dir(workdir)} (step 2: sha256 mismatch")
  assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr
  assert len(result.stderr.strip().splitlines()) < 20, result.stderr


def test_sample_expands_the_home_folder_and_by_default_rewrites_training_s_own_samples(data_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": 2}), "~/run")
  assert os.path.isdir(checkpointing.checkpoint_dir(str(tmp_path / "run")))

  def sample(*flags):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.sample", "--workdir=~/run", *flags],
        cwd=str(tmp_path), env={**ENV, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]

  def contents(folder, name):
    with open(os.path.join(folder, name), "rb") as file:
      return file.read()

  sample("--out=~/samples")
  sample("--out=~/samples_seed_1", "--seed=1")
  trained, resampled, reseeded = runs.sample_dir(str(tmp_path / "run"), 2), tmp_path / "samples", tmp_path / "samples_seed_1"
  assert sorted(os.listdir(resampled)) == sorted(["evaluation.json", *SAMPLE_FILES])
  assert not os.path.exists(tmp_path / "~")
  for name in ("evaluation.json", "generation.png", "continuation.png"):
    assert contents(resampled, name) == contents(trained, name), name
  assert contents(reseeded, "generation.png") != contents(trained, "generation.png")


def test_resuming_on_frames_of_another_channel_count_is_refused_before_the_restore():
  config = tiny_config("/unused")
  with pytest.raises(checkpointing.CheckpointError, match=r"trained on frames of shape \[64, 64, 3\].*now gives \[64, 64, 1\]"):
    workdirs.check_resumable(config, {"image_shape": [64, 64, 3]}, config, {"image_shape": [64, 64, 1]}, "/run/checkpoints")


def test_a_vdsm_run_killed_before_its_first_sequence_checkpoint_restores_its_pretraining(data_dir, tmp_path, capsys):
  workdir = str(tmp_path / "run")
  config = shortened(vdsm_pendulum.get_config("quick"), data_dir)
  config.data.variant = "small"
  config.stage = "pretrain"
  train.train_and_evaluate(config, workdir)
  os.makedirs(checkpointing.checkpoint_dir(os.path.join(workdir, "sequence")))  # as a killed sequence stage leaves it
  capsys.readouterr()
  run = dsa_jax.restore(workdir)
  assert (run.stage, run.step, run.codec.dynamics_name) == ("pretrain", 3, "z")
  assert f"The sequence stage of {workdir} has no checkpoint yet; using its pretrain stage." in capsys.readouterr().err


RESTORE_ELSEWHERE = """
import sys
import dsa_jax
run = dsa_jax.restore(sys.argv[1], data_dir=sys.argv[2])
videos = dsa_jax.load_videos(run.config.data, "test", 4)
codes = run.codec.encode(videos)
print(run.step, run.config.data.data_dir, videos.shape, codes.static.shape, codes.dynamics.shape)
"""


def test_restore_in_a_fresh_process_reads_data_from_another_folder(data_dir, tmp_path):
  trained_with = str(tmp_path / "tfds_of_the_training_machine")
  shutil.copytree(data_dir, trained_with)
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(trained_with, **{"train.num_steps": 2}), workdir)
  shutil.rmtree(trained_with)
  result = subprocess.run(
      [sys.executable, "-c", RESTORE_ELSEWHERE, workdir, data_dir], cwd=str(tmp_path), env=ENV,
      capture_output=True, text=True, timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split("\n")[-2] == f"2 {data_dir} (4, 4, 64, 64, 3) (4, 7) (4, 4, 5)"
  with pytest.raises(TypeError, match=r"data fields \['data_dri'\]"):
    runs.restore(workdir, data_dri=data_dir)


def test_restore_reads_params_only_and_the_codec_of_the_run(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  state = train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": 2}), workdir)
  run = dsa_jax.restore(workdir)
  assert set(run.params) == set(state.params) and leaves_equal(run.params, state.params)
  assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(run.params))  # read onto the device
  assert (run.codec.static_name, run.codec.dynamics_name, run.codec.train_frames) == ("f", "z", 4)
  videos = dsa_jax.load_videos(run.config.data, "test", 2)
  assert np.all((0 <= videos) & (videos <= 1))


def test_sigterm_saves_the_step_it_stopped_at_and_the_same_command_resumes_bit_identically(data_dir, tmp_path):
  workdir = str(tmp_path / "stopped")
  slow_steps = ("--config.train.num_steps=100000", "--config.train.image_every=1", "--config.train.checkpoint_every=1000")
  command = [
      sys.executable, "-m", "experiments.run", "--config=tests/distributed_config.py", f"--config.data.data_dir={data_dir}",
      f"--workdir={workdir}", *slow_steps,
  ]
  process = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  wait_for_path(os.path.join(workdir, "metrics.jsonl"), process, 240)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=60)
  checkpoints = checkpointing.checkpoint_dir(workdir)
  stopped = re.fullmatch(
      rf"TrainingStopped: Stopped by SIGTERM after step (\d+) of 100000; its checkpoint is in {re.escape(checkpoints)}\. "
      r"Rerun the same command to resume\.",
      stderr.strip().splitlines()[-1],
  )
  assert process.returncode == 143 and stopped, stderr[-2000:]
  step = int(stopped[1])
  assert checkpointing.Checkpointer(checkpoints, 1000, read_only=True).all_steps() == [step]
  resumed = train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": step + 2}), workdir)
  uninterrupted = train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": step + 2}), str(tmp_path / "whole"))
  assert leaves_equal(uninterrupted.params, resumed.params) and leaves_equal(uninterrupted.opt_state, resumed.opt_state)


def test_a_stop_request_counts_steps_across_vdsm_stages_and_one_at_a_stage_end_stops_before_the_next(data_dir, tmp_path, monkeypatch):
  workdir = str(tmp_path / "run")
  config = shortened(vdsm_pendulum.get_config("quick"), data_dir)
  config.data.variant = "small"
  asked, stop_at = [], []

  @contextlib.contextmanager
  def requested_at_run_step():
    yield lambda run_step: asked.append(run_step) or run_step in stop_at

  monkeypatch.setattr(stopping, "on_sigterm", requested_at_run_step)
  stop_at.append(3)  # the pretraining's last step
  with pytest.raises(stopping.TrainingStopped, match=r"at the end of the vdsm_pretrain stage; .*resume with the next stage\."):
    train.train_and_evaluate(config, workdir)
  assert asked == [1, 2, 3] and not os.path.exists(os.path.join(workdir, "sequence"))
  asked.clear()
  stop_at.append(4)  # the sequence stage's first step
  with pytest.raises(stopping.TrainingStopped, match=r"after step 1 of 3; its checkpoint is in .*/sequence/checkpoints\."):
    train.train_and_evaluate(config, workdir)
  assert asked == [4]
  sequence_checkpoints = checkpointing.Checkpointer(checkpointing.checkpoint_dir(os.path.join(workdir, "sequence")), 2, read_only=True)
  assert sequence_checkpoints.all_steps() == [1]
