r"""The Moving MNIST judge: both digits and both directions of motion, order-free, from real training videos.

  python -m experiments.train_judge --config=experiments/judge_moving_mnist.py --workdir=runs/judge_moving_mnist
  python -m experiments.train_judge --config=experiments/judge_moving_mnist.py:quick --workdir=runs/judge_mmnist_quick

The heads are the builder's order-free labels (data_pipelines/moving_mnist): digit_1 <= digit_2
(sorted digit classes, static) and direction_1 <= direction_2 (the sorted compass directions of
the initial velocities, dynamic). The speed is the same for every digit of VDSM's set, and start
positions are continuous, so the directions are the dynamic labels a classifier can be held to.
config.data.manual_dir defaults to ../shared/data/mnist, relative to where the command runs.
"""

from experiments import base

MOVING_MNIST_HEADS = (("digit_1", 10), ("digit_2", 10), ("direction_1", 4), ("direction_2", 4))
DYNAMIC_HEADS = ("direction_1", "direction_2")


def get_config(variant: str | None = None):
  """A judge for VDSM's two-digit 64x64 set; `quick`: a tiny judge of the 32x32 `small` set in about a minute."""
  config = base.judge_config("moving_mnist", MOVING_MNIST_HEADS, DYNAMIC_HEADS, num_frames=16, num_steps=3000)
  config.data.variant = "default"
  config.data.manual_dir = "../shared/data/mnist"
  config.data.validation_videos = 1000  # of the 49,500 training videos: the checkpoint is chosen on them
  config.judge.normalization = "group"  # frames are mostly black: a per-position LayerNorm amplifies faint strokes
  config.judge.counted_heads = ("digit_1", "digit_2")  # every frame counts the copies of each digit, wherever they are
  config.train.max_checkpoints = 6
  if variant is None:
    return config
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of judge_moving_mnist.py; use none or 'quick'.")
  config.data.variant = "small"
  return base.tiny_judge(config, num_steps=100, batch_size=16, validation_videos=16, checkpoint_every=50)
