r"""Plots a VDSM config's annealing schedules (both stages) to a PNG, to check against
supplementary Figs. 1-2.

  python -m experiments.plot_schedules --config=experiments/vdsm_sprites.py --out=runs/schedules.png
"""

from absl import app, flags
from ml_collections import config_flags

from dsa_jax import schedules

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "A VDSM config file.", lock_config=True)
flags.DEFINE_string("out", "schedules.png", "Where to write the PNG.")
flags.mark_flags_as_required(["config"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  print(schedules.plot(FLAGS.config, FLAGS.out))


if __name__ == "__main__":
  app.run(main)
