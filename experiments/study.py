r"""Runs the study's ELBO-bias experiment and writes its curves (JSON), tables (Markdown) and plots (PNG).

  python -m experiments.study --config=experiments/elbo_bias.py[:quick] --workdir=DIR
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

from dsa_jax.study import report
from experiments import entry

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Study config file, path[:variant].", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for the study's files.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.ERROR)  # jax logs the platforms it did not find at INFO
  results = report.run(FLAGS.config, FLAGS.workdir)
  above = report.check_lower_bound(results)
  if above:
    print(f"Warning: an ELBO above the exact log-likelihood (the fit or the oracle is wrong): {above}")
  print(open(os.path.join(os.path.expanduser(FLAGS.workdir), report.TABLE_FILE)).read())
  print(f"Wrote {report.RESULTS_FILE}, {report.TABLE_FILE} and the plots in {FLAGS.workdir}.")


if __name__ == "__main__":
  app.run(entry.guarded(main))
