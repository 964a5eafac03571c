r"""DSA on Sprites, composited from the LPC layer sheets on first use (about 20 s).

  python -m experiments.run --config=experiments/dsa_sprites.py --workdir=/tmp/dsa_sprites
  python -m experiments.run --config=experiments/dsa_sprites.py:quick --workdir=/tmp/dsa_sprites_quick
  python -m experiments.run --config=experiments/dsa_sprites.py:cpu --workdir=/tmp/dsa_sprites_cpu

config.data.manual_dir defaults to ../shared/data/lpc_sprites, relative to the directory the
command runs in (the repository root); elsewhere pass
--config.data.manual_dir=/path/to/lpc_sprites.
"""

from experiments import base

VALIDATION_VIDEOS = 900  # 100 of the 1000 training characters, all 9 motions of each: chosen on, never trained on


def get_config(variant: str | None = None):
  """DSA at the notes' sizes (20 x 8 frames); `quick`: a small model on 32x32 frames, ~4 min on 2 CPUs."""
  config = base.dsa_paper_schedule(base.get_config())
  config.data.name = "sprites"
  config.data.manual_dir = "../shared/data/lpc_sprites"
  config.data.num_frames = 8
  config.train.batch_size = 20
  base.validation_eval(config, VALIDATION_VIDEOS, every_steps=config.train.checkpoint_every, num_videos=450)
  if variant is None:
    return config
  if variant == "cpu":
    return cpu(config)
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of dsa_sprites.py; use none, 'quick' or 'cpu'.")
  base.dsa_quick(config, dim_f=32, dim_z=8)
  config.evals.validation.every_steps = config.train.checkpoint_every
  config.evals.validation.num_videos = 270
  return config


def cpu(config):
  """64x64 frames within 2 hours on 2 CPU cores: the notes' latents and priors, narrow convs at high resolution.

  Narrowed from the notes: conv widths 32, 32, 64, 128, 256 at 64, 32, 16, 8, 4 pixels instead of
  256 at each (the notes' 29 s step is mostly its 256-wide 64x64 and 32x32 convolutions; this one
  takes 1.0-1.3 s, `python -m benchmarks.train_step --cases=dsa_cpu`), and 5600 steps at 1e-3 instead
  of 50k at 2e-4 (about 1.2 s per step in training, so 5600 steps fill the 2 hours). Latent sizes,
  RNN widths, posteriors and the stable prior are the notes'.
  """
  config.dsa.channels_per_resolution = (32, 32, 64, 128, 256)
  config.dsa.posterior_init_log_scale = -4.0
  config.loss.kl_warmup_steps = 800
  config.train.num_steps = 5600
  config.train.learning_rate = 1e-3
  config.train.image_every = 800
  config.train.checkpoint_every = 800
  config.evals.validation.every_steps = 800
  config.train.max_checkpoints = config.train.num_steps // config.train.checkpoint_every  # all, for the learning curve
  return config
