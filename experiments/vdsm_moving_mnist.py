r"""VDSM on Moving MNIST (built from the MNIST IDX files in config.data.manual_dir).

  python -m experiments.run --config=experiments/vdsm_moving_mnist.py --workdir=/tmp/vdsm_mmnist
  python -m experiments.run --config=experiments/vdsm_moving_mnist.py:quick --workdir=/tmp/vdsm_mmnist_quick

config.data.manual_dir defaults to ../shared/data/mnist, relative to where the command runs.
"""

from experiments import base
from experiments.base import vdsm_quick


def get_config(variant: str | None = None):
  """Supplementary Tables 1-2 for MMNIST; `quick`: both stages in minutes on 2 CPU cores."""
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
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of vdsm_moving_mnist.py; use none or 'quick'.")
  config.data.variant = "small"
  vdsm_quick(config)
  return config
