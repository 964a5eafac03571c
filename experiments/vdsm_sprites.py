r"""VDSM on the standard Sprites benchmark (built from the LPC layers in config.data.manual_dir).

  python -m experiments.run --config=experiments/vdsm_sprites.py --workdir=/tmp/vdsm_sprites
  python -m experiments.run --config=experiments/vdsm_sprites.py:quick --workdir=/tmp/vdsm_sprites_quick
  python -m experiments.run --config=experiments/vdsm_sprites.py:cpu --workdir=/tmp/vdsm_sprites_cpu

config.data.manual_dir defaults to ../shared/data/lpc_sprites, relative to where the command runs.
"""

from experiments import base, dsa_sprites
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
  base.validation_eval(config, dsa_sprites.VALIDATION_VIDEOS, every_steps=config.train.checkpoint_every, num_videos=450)
  if variant is None:
    return config
  if variant == "cpu":
    return cpu(config)
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of vdsm_sprites.py; use none, 'quick' or 'cpu'.")
  vdsm_quick(config)
  config.vdsm.dim_s = 12
  config.evals.validation.every_steps = config.train.checkpoint_every
  config.evals.validation.num_videos = 270
  return config


def cpu(config):
  """64x64 frames within 2 hours on 2 CPU cores: both stages, the experts and the schedules, narrower.

  Narrowed from supplementary Table 2: one 256-wide RNN layer instead of 3 x 512, combiner and
  transition 256, decoder channels 256-128-64-32 instead of 512-256-128-64, and an encoder
  ending in 128 features (3.0 s per pretraining step of 20 x 16 frames, 0.9 s per sequence
  step, `python -m benchmarks.train_step --cases=vdsm_cpu_pretrain,vdsm_cpu_sequence`); 30 + 40
  epochs of 50 steps instead of 300 + 200. The latent sizes, the 40 experts, the
  two stages and their schedules (lambda_z, lambda_s, tau annealed over the epochs) are the paper's.
  """
  base.vdsm_cpu(config)
  config.evals.validation.every_steps = config.train.checkpoint_every
  return config
