"""The Sprites, Moving MNIST and MUG configs: locked, clear about missing data, and they train."""

import os
import subprocess
import sys

import pytest

from data_pipelines.manual_data import ManualDataError
from data_pipelines.mug import fake
from dsa_jax import checkpointing, data, metric_writer, runs, train
from dsa_jax import tasks
from experiments import dsa_moving_mnist, dsa_mug, dsa_sprites, vdsm_moving_mnist, vdsm_sprites
from tests.conftest import REPO
from tests.test_sprites import built  # noqa: F401 - the session's Sprites build, a fixture
from tests.test_train import SAMPLE_FILES

CONFIGS = {"dsa_sprites.py": dsa_sprites, "dsa_moving_mnist.py": dsa_moving_mnist}


@pytest.mark.parametrize("variant", [None, "quick"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_loads_and_is_locked(name, variant):
  config = CONFIGS[name].get_config(variant)
  assert config.data.manual_dir.startswith("../shared/data/")
  with pytest.raises(AttributeError, match="manual_dri"):
    config.data.manual_dri = "/tmp"
  with pytest.raises(AttributeError, match="num_stpes"):
    config.train.num_stpes = 3


def test_cpu_configs_train_64x64_sprites_with_their_narrowed_models():
  dsa_config = dsa_sprites.get_config("cpu")
  architecture = tasks.dsa_model_config(dsa_config, (64, 64, 3))
  assert architecture.channels_per_resolution == (32, 32, 64, 128, 256)
  assert (architecture.dim_f, architecture.dim_z, architecture.prior) == (256, 32, "stable")
  assert dsa_config.data.image_size is None and dsa_config.train.max_checkpoints * dsa_config.train.checkpoint_every >= dsa_config.train.num_steps
  vdsm_config = vdsm_sprites.get_config("cpu")
  vdsm_architecture = tasks.vdsm_model_config(vdsm_config, (64, 64, 3))
  assert (vdsm_architecture.dim_s, vdsm_architecture.rnn_size, vdsm_architecture.decoder_channels) == (40, 256, (256, 128, 64, 32))
  assert vdsm_config.data.image_size is None
  assert (vdsm_config.vdsm.group_size, vdsm_config.vdsm_pretrain.num_epochs, vdsm_config.vdsm_sequence.num_epochs) == (2, 30, 40)


def test_the_moving_mnist_cpu_config_is_the_sprites_cpu_vdsm_with_its_own_experts_one_clip_per_element_and_20_sequence_epochs():
  mnist, sprites = vdsm_moving_mnist.get_config("cpu"), vdsm_sprites.get_config("cpu")
  mnist_architecture = tasks.vdsm_model_config(mnist, (64, 64, 1))
  sprites_architecture = tasks.vdsm_model_config(sprites, (64, 64, 3))
  for field in ("rnn_size", "rnn_layers", "combiner_size", "transition_size", "encoder_channels", "decoder_channels"):
    assert getattr(mnist_architecture, field) == getattr(sprites_architecture, field), field
  assert (mnist_architecture.dim_s, mnist.data.num_frames, mnist.data.image_size) == (12, 16, None)
  assert (mnist.vdsm.group_size, mnist.vdsm_pretrain.num_epochs, mnist.vdsm_sequence.num_epochs) == (1, 30, 20)
  assert mnist.train.max_checkpoints * mnist.train.checkpoint_every >= mnist.vdsm_sequence.num_epochs * mnist.vdsm_sequence.steps_per_epoch
  with pytest.raises(ValueError, match="'cpu'"):
    vdsm_moving_mnist.get_config("gpu")


def test_full_configs_use_the_papers_clip_lengths_and_batch():
  sprites, mnist, mug = dsa_sprites.get_config(), dsa_moving_mnist.get_config(), dsa_mug.get_config()
  assert (sprites.data.num_frames, sprites.train.batch_size, sprites.data.image_size) == (8, 20, None)
  assert (mnist.data.num_frames, mnist.train.batch_size, mnist.data.variant) == (16, 20, "default")
  assert (mug.data.num_frames, mug.train.batch_size, mug.data.variant, mug.data.image_size) == (16, 20, "default", None)
  architecture = tasks.dsa_model_config(mug, (64, 64, 3))
  assert (architecture.dim_f, architecture.dim_z, architecture.num_channels, architecture.prior) == (256, 32, 256, "stable")


@pytest.mark.parametrize("variant", [None, "quick"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_missing_manual_dir_raises_manual_data_error_naming_it(name, variant, tmp_path):
  config = CONFIGS[name].get_config(variant)
  config.data.data_dir = str(tmp_path)
  config.data.manual_dir = str(tmp_path / "not_here")
  with pytest.raises(ManualDataError, match="not_here") as raised:
    data.load_source(config.data, "train")
  assert "manual_dir" in str(raised.value)


@pytest.mark.parametrize(
    "name, instructions",
    [("dsa_sprites.py", "YingzhenLi/Sprites"), ("dsa_moving_mnist.py", "exdb/mnist"), ("dsa_mug.py", "mug.ee.auth.gr")],
)
def test_command_line_with_a_missing_manual_dir_prints_the_instructions(name, instructions, tmp_path):
  result = subprocess.run(
      [
          sys.executable, "-m", "experiments.run", f"--config=experiments/{name}:quick",
          f"--workdir={tmp_path / 'run'}", f"--config.data.data_dir={tmp_path}",
          "--config.data.manual_dir=/nonexistent",
      ],
      cwd=REPO, capture_output=True, text=True, timeout=120,
  )
  assert result.returncode != 0
  error = result.stderr.splitlines()
  message = "\n".join(error[next(i for i, line in enumerate(error) if "ManualDataError: " in line) :])
  assert "/nonexistent" in message and instructions in message, message


def train_briefly(config, workdir: str):
  """Four steps of batch 2 of a `:quick` DSA config, then its checkpoint, samples and metrics are checked."""
  config.train.num_steps = 4
  config.train.batch_size = 2
  config.train.log_every = 2
  config.sample.num_videos = 4
  config.sample.num_evaluation_videos = 4
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 4
  checkpointer = checkpointing.Checkpointer(checkpointing.checkpoint_dir(workdir), 1, read_only=True)
  assert checkpointer.all_steps() == [4]
  assert sorted(os.listdir(runs.sample_dir(workdir, 4))) == SAMPLE_FILES
  assert sorted(metric_writer.read_metrics(workdir)) == [2, 4]


def test_quick_sprites_run_writes_a_checkpoint_and_samples(built, tmp_path):  # noqa: F811
  config = dsa_sprites.get_config("quick")
  config.data.data_dir = os.path.dirname(os.path.dirname(os.path.dirname(built.data_dir)))
  train_briefly(config, str(tmp_path / "run"))


def test_quick_mug_run_trains_on_the_fake_tree(tmp_path):
  config = dsa_mug.get_config("quick")
  config.data.manual_dir = fake.write_fake_mug_tree(tmp_path / "mug")
  config.data.data_dir = str(tmp_path)
  train_briefly(config, str(tmp_path / "run"))
  assert runs.restore(str(tmp_path / "run")).image_shape == (32, 32, 3)
