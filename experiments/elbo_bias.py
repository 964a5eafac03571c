r"""The study's ELBO-bias experiment (its Figs. 3-4) on the linear-Gaussian model, and joint learning.

  python -m experiments.study --config=experiments/elbo_bias.py --workdir=runs/elbo_bias
  python -m experiments.study --config=experiments/elbo_bias.py:quick --workdir=runs/elbo_bias_quick

For each swept parameter and true value the other two stay at `truth`; data are drawn from the
true theta, and at each of `grid_size` candidate values (the true value times a geometric grid
from grid_low to grid_high) an encoder of every posterior family is fitted with the decoder
fixed there. Joint learning fits theta with the encoder (from `joint.start`), and the
maximum-likelihood theta by the exact log-likelihood, for each data size and seed.
"""

from ml_collections import config_dict

from dsa_jax.study import elbo_bias


def get_config(variant: str | None = None):
  """The study's five true values over 25 grid points and 3 data seeds; `quick`: 2 of them, 9 points, 1 seed, in seconds."""
  config = config_dict.ConfigDict()
  config.truth = config_dict.ConfigDict({"sf": 1.0, "sz": 1.0, "sx": 0.5})  # the values not being swept
  config.sweeps = config_dict.ConfigDict({"sx": (0.3, 0.5, 1.0), "sz": (0.5, 1.0)})  # true values, as in Figs. 3-4
  config.families = elbo_bias.FAMILIES
  config.num_steps = 3  # T
  config.dim = 2  # D
  config.num_sequences = 500
  config.data_seeds = 3
  config.grid_size = 25
  config.grid_low = 0.4
  config.grid_high = 4.0
  config.fit = config_dict.ConfigDict({"num_steps": 3000, "learning_rate": 0.2})  # Adam, cosine decay
  config.joint = config_dict.ConfigDict({
      "settings": (("sx", 0.3), ("sx", 0.5), ("sx", 1.0), ("sz", 0.5), ("sz", 1.0)),  # true theta = truth with this value
      "sizes": (100, 1000, 5000),
      "seeds": 3,
      "start": (1.0, 1.0, 1.0),
      "num_steps": 3000,
  })
  if variant is None:
    return config
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of elbo_bias.py; use none or 'quick'.")
  config.sweeps = config_dict.ConfigDict({"sx": (0.3,), "sz": (0.5,)})
  config.num_sequences = 200
  config.data_seeds = 1
  config.grid_size = 9
  config.fit.num_steps = 2000
  config.joint.settings = (("sx", 0.5),)
  config.joint.sizes = (100, 1000)
  config.joint.seeds = 1
  config.joint.num_steps = 2000
  return config
