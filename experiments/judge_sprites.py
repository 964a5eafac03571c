r"""The Sprites judge: action (9) and body, bottom, top, hair (6 each) from real training videos.

  python -m experiments.train_judge --config=experiments/judge_sprites.py --workdir=runs/judge_sprites
  python -m experiments.train_judge --config=experiments/judge_sprites.py:quick --workdir=runs/judge_sprites_quick

config.data.manual_dir defaults to ../shared/data/lpc_sprites, relative to where the command runs.
"""

from experiments import base

SPRITES_HEADS = (("action", 9), ("body", 6), ("bottom", 6), ("top", 6), ("hair", 6))


def get_config(variant: str | None = None):
  """A judge for 64x64 Sprites; `quick`: a tiny judge of 32x32 frames (the :quick runs' size) in about a minute."""
  config = base.get_config()
  config.model = "judge"
  config.data.name = "sprites"
  config.data.manual_dir = "../shared/data/lpc_sprites"
  config.data.num_frames = 8
  config.judge.heads = SPRITES_HEADS
  config.train.num_steps = 1500  # the final checkpoint is the judge (100% on every test head: no selection needed)
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  config.train.log_every = 50
  config.train.checkpoint_every = 500
  if variant is None:
    return config
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of judge_sprites.py; use none or 'quick'.")
  config.data.image_size = 32
  config.judge.channels = (8, 16, 16)
  config.judge.feature_size = 32
  config.judge.lstm_size = 16
  config.data.validation_videos = 100  # the checkpoint is chosen on 100 of the training videos
  config.train.num_steps = 300
  config.train.batch_size = 16
  config.train.log_every = 50
  config.train.checkpoint_every = 100
  return config
