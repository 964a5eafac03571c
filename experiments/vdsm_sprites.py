r"""VDSM on the standard Sprites benchmark (built from the LPC layers in config.data.manual_dir).

  python -m experiments.run --config=experiments/vdsm_sprites.py --workdir=/tmp/vdsm_sprites
  python -m experiments.run --config=experiments/vdsm_sprites.py:quick --workdir=/tmp/vdsm_sprites_quick

config.data.manual_dir defaults to ../shared/data/lpc_sprites, relative to where the command runs.
"""

from experiments import base
from experiments.base import vdsm_quick


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
  vdsm_quick(config)
  config.vdsm.dim_s = 12
  return config
