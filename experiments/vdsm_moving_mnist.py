r"""VDSM on Moving MNIST (built from the MNIST IDX files in config.data.manual_dir).

  python -m experiments.run --config=experiments/vdsm_moving_mnist.py --workdir=/tmp/vdsm_mmnist
  python -m experiments.run --config=experiments/vdsm_moving_mnist.py:quick --workdir=/tmp/vdsm_mmnist_quick
  python -m experiments.run --config=experiments/vdsm_moving_mnist.py:cpu --workdir=/tmp/vdsm_mmnist_cpu

config.data.manual_dir defaults to ../shared/data/mnist, relative to where the command runs.
"""

from experiments import base
from experiments.base import vdsm_quick


def get_config(variant: str | None = None):
  """Supplementary Tables 1-2 for MMNIST; `quick`: both stages in minutes on 2 CPU cores; `cpu`: 64x64 within 2 hours."""
  config = base.get_config()
  config.model = "vdsm"
  config.data.name = "moving_mnist"
  config.data.manual_dir = "../shared/data/mnist"
  config.data.num_frames = 16
  config.vdsm.dim_s = 12
  config.vdsm_pretrain.learning_rate = 1e-3
  config.vdsm_pretrain.batch_size = 20
  config.vdsm_pretrain.num_epochs = 300
  config.vdsm_sequence.learning_rate = 1e-3
  config.vdsm_sequence.batch_size = 30
  config.vdsm_sequence.num_epochs = 200
  config.train.log_every = 50
  config.train.image_every = 500
  config.train.checkpoint_every = 500
  config.sample.num_frames = 40
  if variant is None:
    return config
  if variant == "cpu":
    return cpu(config)
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of vdsm_moving_mnist.py; use none, 'quick' or 'cpu'.")
  config.data.variant = "small"
  vdsm_quick(config)
  return config


def cpu(config):
  """64x64 frames within 2 hours on 2 CPU cores: the narrowed VDSM of `vdsm_sprites.py:cpu` on 16-frame Moving MNIST.

  Narrowed from supplementary Table 2 as `vdsm_sprites.py:cpu` is (one 256-wide RNN layer, combiner
  and transition 256, decoder channels 256-128-64-32, an encoder ending in 128 features), and
  30 + 20 epochs of 50 steps instead of 300 + 200. Pretraining reads one 16-frame video per batch
  element instead of two of the same digit pair (half the frames: about 1.8 s per step here), and
  the sequence stage stops at 20 epochs because on Sprites it was flat from its first checkpoint on.
  The 12 experts, latent sizes, learning rates, batch sizes and both stages' schedules are the paper's.
  """
  base.vdsm_cpu(config)
  config.vdsm.group_size = 1
  config.vdsm_sequence.num_epochs = 20
  return config
