r"""DSA on the swinging pendulum (built by the project on first use).

  python -m experiments.run --config=experiments/dsa_pendulum.py --workdir=/tmp/dsa_pendulum
  python -m experiments.run --config=experiments/dsa_pendulum.py:quick --workdir=/tmp/dsa_pendulum_quick
"""

from experiments import base


def get_config(variant: str | None = None):
  """DSA at the notes' sizes; `quick`: a small model on 16x16 frames, ~2 minutes on 2 CPU cores."""
  config = base.dsa_paper_schedule(base.get_config())
  config.data.name = "pendulum"
  config.evaluators = ("pendulum",)
  config.data.num_frames = 16
  if variant is None:
    return config
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of dsa_pendulum.py; use none or 'quick'.")
  base.dsa_quick(config, dim_f=16, dim_z=2)  # dim_z 2: enough for the swing angle, too little to also hold the colour
  config.data.image_size = 16  # frames mean-pooled 4x: ~25 steps/s on 2 CPU cores
  config.loss.kl_warmup_steps = 1200
  config.train.num_steps = 3000  # at 2000 the swaps hung on the CPU's float rounding (README, its results)
  return config
