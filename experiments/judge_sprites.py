r"""The Sprites judge: action (9) and body, bottom, top, hair (6 each) from real training videos.

  python -m experiments.train_judge --config=experiments/judge_sprites.py --workdir=runs/judge_sprites
  python -m experiments.train_judge --config=experiments/judge_sprites.py:quick --workdir=runs/judge_sprites_quick

config.data.manual_dir defaults to ../shared/data/lpc_sprites, relative to where the command runs.
"""

from experiments import base

SPRITES_HEADS = (("action", 9), ("body", 6), ("bottom", 6), ("top", 6), ("hair", 6))


def get_config(variant: str | None = None):
  """A judge for 64x64 Sprites; `quick`: a tiny judge of 32x32 frames (the :quick runs' size) in about a minute."""
  # 1500 steps, final checkpoint: the shipped judge (100% on every test head, no selection needed)
  config = base.judge_config("sprites", SPRITES_HEADS, ("action",), num_frames=8, num_steps=1500)
  config.data.manual_dir = "../shared/data/lpc_sprites"
  if variant is None:
    return config
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of judge_sprites.py; use none or 'quick'.")
  return base.tiny_judge(config, num_steps=300, batch_size=16, validation_videos=100, checkpoint_every=100)
