r"""DSA on the swinging pendulum (built by the project on first use).

  python -m experiments.run --config=experiments/dsa_pendulum.py --workdir=/tmp/dsa_pendulum
  python -m experiments.run --config=experiments/dsa_pendulum.py:quick --workdir=/tmp/dsa_pendulum_quick
"""

from experiments import base


def get_config(variant: str | None = None):
  """DSA at the notes' sizes; `quick` is a small model that trains in minutes on 2 CPU cores."""
  config = base.get_config()
  config.data.name = "pendulum"
  config.data.num_frames = 16
  if variant is None:
    return config
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of dsa_pendulum.py; use none or 'quick'.")
  config.data.num_frames = 8
  config.dsa.dim_f = 16
  config.dsa.dim_z = 4
  config.dsa.dim_h = 64
  config.dsa.dim_hidden = 128
  config.dsa.num_channels = 16
  config.train.num_steps = 400
  config.train.batch_size = 16
  config.train.learning_rate = 1e-3
  config.train.log_every = 25
  config.train.image_every = 100
  config.train.checkpoint_every = 100
  return config
