r"""Trains a model: `python -m experiments.run --config=experiments/<model>_<data>.py[:variant] --workdir=DIR`.

Rerunning the same command resumes from the newest intact checkpoint in DIR. Any config field
can be overridden, e.g. `--config.train.num_steps=1000` (VDSM: `--config.vdsm_pretrain.num_epochs=10`).
"""

from absl import app, flags, logging
from ml_collections import config_flags

from dsa_jax import train
from experiments import entry

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, path[:variant].", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard summaries and samples.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(entry.guarded(main))
