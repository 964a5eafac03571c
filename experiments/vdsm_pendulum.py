r"""VDSM on the swinging pendulum: identity = bob colour, action = swing speed.

  python -m experiments.run --config=experiments/vdsm_pendulum.py --workdir=/tmp/vdsm_pendulum
  python -m experiments.run --config=experiments/vdsm_pendulum.py:quick --workdir=/tmp/vdsm_pendulum_quick
  python -m experiments.run --config=experiments/vdsm_pendulum.py:small --workdir=/tmp/vdsm_pendulum_small
  python -m experiments.run --config=experiments/vdsm_pendulum.py --config.stage=sequence --workdir=...
"""

from experiments import base
from experiments.base import vdsm_quick


def get_config(variant: str | None = None):
  """The paper's Pendula settings (supplementary Tables 1-2).

  `quick`: both stages in minutes on 2 CPU cores (CI). `small`: 32x32 frames, 16 of them, and
  narrower layers, so that both stages train in well under an hour on 2 CPU cores.
  """
  config = base.get_config()
  config.model = "vdsm"
  config.data.name = "pendulum"
  config.evaluators = ("pendulum",)
  config.data.num_frames = 16
  config.vdsm.dim_s = 8
  config.vdsm_pretrain.learning_rate = 5e-4
  config.vdsm_pretrain.batch_size = 50
  config.vdsm_pretrain.num_epochs = 200
  config.vdsm_sequence.learning_rate = 1e-3
  config.vdsm_sequence.batch_size = 20
  config.vdsm_sequence.num_epochs = 100
  config.sample.num_frames = 60  # generations well beyond the 16 training frames
  config.train.log_every = 50
  config.train.image_every = 500
  config.train.checkpoint_every = 500
  if variant is None:
    return config
  if variant == "small":
    return small(config)
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of vdsm_pendulum.py; use none, 'quick' or 'small'.")
  vdsm_quick(config)
  config.vdsm.dim_z = 4
  config.vdsm.dim_d = 4
  config.vdsm_pretrain.num_epochs = 8
  config.vdsm_sequence.learning_rate = 2e-3
  config.vdsm_sequence.num_epochs = 8
  config.sample.num_frames = 32
  config.train.image_every = 400
  config.train.checkpoint_every = 200
  return config


def small(config):
  """The paper's schedules and priors on 32x32 frames with narrower layers and fewer epochs."""
  config.data.image_size = 32
  config.vdsm.dim_z = 16
  config.vdsm.dim_d = 16
  config.vdsm.rnn_size = 256
  config.vdsm.rnn_layers = 1
  config.vdsm.combiner_size = 256
  config.vdsm.transition_size = 256
  config.vdsm.identity_hidden = 64
  config.vdsm.encoder_channels = (16, 32, 64, 128)
  config.vdsm.decoder_channels = (128, 64, 32)
  config.vdsm_pretrain.learning_rate = 1e-3
  config.vdsm_pretrain.batch_size = 10
  config.vdsm_pretrain.num_epochs = 40
  config.vdsm_sequence.batch_size = 20
  config.vdsm_sequence.num_epochs = 40
  config.train.image_every = 500
  config.train.checkpoint_every = 500
  return config
