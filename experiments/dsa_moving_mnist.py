r"""DSA on Moving MNIST, rendered from the MNIST files on first use.

  python -m experiments.run --config=experiments/dsa_moving_mnist.py --workdir=/tmp/dsa_mmnist
  python -m experiments.run --config=experiments/dsa_moving_mnist.py:quick --workdir=/tmp/dsa_mmnist_quick

The full config reads the `default` set (49,500 / 5,500 two-digit 16-frame videos); `quick` the
`one_digit` set. config.data.manual_dir defaults to ../shared/data/mnist, relative to the
directory the command runs in (the repository root); elsewhere pass
--config.data.manual_dir=/path/to/mnist.
"""

from experiments import base


def get_config(variant: str | None = None):
  """DSA at the notes' sizes on whole 16-frame clips; `quick`: small, one digit, 32x32, ~3 min on 2 CPUs."""
  config = base.dsa_paper_schedule(base.get_config())
  config.data.name = "moving_mnist"
  config.data.variant = "default"
  config.data.manual_dir = "../shared/data/mnist"
  config.data.num_frames = 16
  if variant is None:
    return config
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of dsa_moving_mnist.py; use none or 'quick'.")
  config.data.variant = "one_digit"
  return base.dsa_quick(config, dim_f=16, dim_z=4)
