"""Both VDSM stages of every :quick config, end to end (few steps), and resuming `both`."""

import json
import os

import numpy as np
import pytest

from data_pipelines.manual_data import ManualDataError
from data_pipelines.mug import fake
import dsa_jax
from dsa_jax import checkpointing, data, metric_writer, runs, train
from experiments import vdsm_moving_mnist, vdsm_mug, vdsm_pendulum
from tests.conftest import SHARED_DATA
from tests.test_train import tensorboard_images

from tests.test_train import SAMPLE_FILES


def shortened(config, data_dir: str, steps: int = 3):
  """A quick config cut to `steps` steps per stage, reading data from data_dir."""
  config.data.data_dir = data_dir
  for stage in (config.vdsm_pretrain, config.vdsm_sequence):
    stage.num_epochs, stage.steps_per_epoch, stage.batch_size = 1, steps, 4
  config.train.log_every = 1
  config.train.checkpoint_every = 2
  config.sample.num_videos = 4
  config.sample.num_evaluation_videos = 4
  return config


def assert_both_stages_ran(workdir: str, steps: int = 3):
  for stage in ("pretrain", "sequence"):
    directory = os.path.join(workdir, stage)
    checkpointer = checkpointing.Checkpointer(checkpointing.checkpoint_dir(directory), 1, read_only=True)
    assert checkpointer.latest_step() == steps and checkpointer.restore_metadata()["stage"] == stage
    written = sorted(name for name in os.listdir(runs.sample_dir(directory, steps)) if name != "evaluation.json")
    assert written == SAMPLE_FILES
    metrics = metric_writer.read_metrics(directory)
    assert sorted(metrics) == list(range(1, steps + 1)) and all(np.isfinite(m["loss"]) for m in metrics.values())
  summaries = tensorboard_images(os.path.join(workdir, "sequence", "tensorboard"))
  assert {"images/generation", "videos/generation_videos", "videos/reconstruction_videos"} <= set(summaries)


def test_pendulum_quick_runs_both_stages_and_resumes_where_it_stopped(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  config = shortened(vdsm_pendulum.get_config("quick"), data_dir)
  config.data.variant = "small"
  config.stage = "pretrain"
  train.train_and_evaluate(config, workdir)  # as if `both` had stopped after pretraining
  config.stage = "both"
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 3
  assert_both_stages_ran(workdir)
  pretrain_steps = metric_writer.read_metrics(os.path.join(workdir, "pretrain"))
  assert sorted(pretrain_steps) == [1, 2, 3]  # not retrained
  with open(os.path.join(runs.sample_dir(os.path.join(workdir, "sequence"), 3), "evaluation.json")) as file:
    scores = json.load(file)
  assert set(scores) >= {
      "colour_follows_identity_source", "speed_follows_action_source", "generations_from_fitted_density_at_full_intensity"
  }
  restored = dsa_jax.restore(workdir)
  assert restored.stage == "sequence" and restored.step == 3 and restored.codec.dynamics_name == "d"
  pretrained = dsa_jax.restore(os.path.join(workdir, "pretrain"))
  assert pretrained.stage == "pretrain" and pretrained.codec.dynamics_name == "z"
  pretrained = pretrained.params
  np.testing.assert_array_equal(restored.params["decoder"]["kernel_1"], pretrained["decoder"]["kernel_1"])
  assert not np.array_equal(restored.params["combiner"]["loc"]["kernel"], pretrained["combiner"]["loc"]["kernel"])


def test_sequence_stage_without_a_pretraining_run_says_what_to_do(data_dir, tmp_path):
  config = shortened(vdsm_pendulum.get_config("quick"), data_dir)
  config.data.variant = "small"
  config.stage = "sequence"
  with pytest.raises(checkpointing.CheckpointError, match="stage=pretrain first.*init_from"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def test_moving_mnist_quick_runs_both_stages(tmp_path):
  if not os.path.isdir(os.path.join(SHARED_DATA, "mnist")):
    pytest.skip(f"MNIST IDX files not found at {SHARED_DATA}/mnist")
  config = shortened(vdsm_moving_mnist.get_config("quick"), str(tmp_path))
  config.data.manual_dir = os.path.join(SHARED_DATA, "mnist")
  train.train_and_evaluate(config, str(tmp_path / "run"))
  assert_both_stages_ran(str(tmp_path / "run"))


def test_mug_quick_runs_on_the_fake_tree_and_asks_for_the_folder_without_it(tmp_path):
  config = shortened(vdsm_mug.get_config("quick"), str(tmp_path))
  with pytest.raises(ManualDataError, match="mug.ee.auth.gr"):
    data.load_source(config.data, "train")
  fake.write_fake_mug_tree(str(tmp_path / "mug"))
  config.data.manual_dir = str(tmp_path / "mug")
  train.train_and_evaluate(config, str(tmp_path / "run"))
  assert_both_stages_ran(str(tmp_path / "run"))
