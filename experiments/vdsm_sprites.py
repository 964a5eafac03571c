r"""VDSM on the standard Sprites benchmark (built from the LPC layers in config.data.manual_dir).

  python -m experiments.run --config=experiments/vdsm_sprites.py --workdir=/tmp/vdsm_sprites
  python -m experiments.run --config=experiments/vdsm_sprites.py:quick --workdir=/tmp/vdsm_sprites_quick

config.data.manual_dir defaults to ../shared/data/lpc_sprites, relative to where the command runs.
"""

from experiments import base


def get_config(variant: str | None = None):
  """Supplementary Tables 1-2 for Sprites (the base VDSM defaults); `quick`: both stages in minutes on 2 CPU cores."""
  config = base.get_config()
  config.model = "vdsm"
  config.data.name = "sprites"
  config.data.manual_dir = "../shared/data/lpc_sprites"
  config.data.num_frames = 8
  config.vdsm.group_size = 2  # two motions of one character: 16 frames per pretraining element
  config.train.log_every = 50
  config.train.image_every = 500
  config.train.checkpoint_every = 500
  config.sample.num_frames = 40
  if variant is None:
    return config
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of vdsm_sprites.py; use none or 'quick'.")
  config.data.image_size = 16
  config.vdsm.dim_z = 8
  config.vdsm.dim_s = 12
  config.vdsm.dim_d = 8
  config.vdsm.rnn_size = 64
  config.vdsm.rnn_layers = 1
  config.vdsm.combiner_size = 64
  config.vdsm.transition_size = 64
  config.vdsm.identity_hidden = 32
  config.vdsm.encoder_channels = (16, 32, 64)
  config.vdsm.decoder_channels = (64, 32)
  config.vdsm_pretrain.learning_rate = 2e-3
  config.vdsm_pretrain.batch_size = 16
  config.vdsm_pretrain.num_epochs = 6
  config.vdsm_sequence.batch_size = 16
  config.vdsm_sequence.num_epochs = 6
  config.sample.num_frames = 16
  config.train.log_every = 100
  config.train.image_every = 300
  config.train.checkpoint_every = 150
  return config
