r"""Scores every kept checkpoint of a run with a judge and plots the learning curve.

  python -m experiments.learning_curve --workdir=RUN [--rounds=1] [--judge=JUDGE_DIR] [--copy_to=docs/curves/NAME]

Each checkpoint's evaluation is experiments.evaluate's: one already in RUN[/STAGE]/evaluation/step_N/
with the same settings is reused; others are kept in RUN[/STAGE]/evaluation/learning_curve/step_N/,
so experiments.evaluate's results are never overwritten. Writes RUN[/STAGE]/evaluation/learning_curve.json and
.png: standard-protocol Acc and IS and the reverse protocol's accuracies against step and wall time.
"""

import os
import shutil

from absl import app, flags, logging

from dsa_jax import runs
from dsa_jax.evaluation import curves
from experiments import entry

FLAGS = flags.FLAGS
entry.define_scoring_flags(1, "Prior draws of the protocols at each checkpoint.")
flags.DEFINE_string("copy_to", None, "Also copy the curve's JSON and PNG to COPY_TO.json and COPY_TO.png.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.ERROR)
  curve = curves.learning_curve(
      FLAGS.workdir, FLAGS.judge, FLAGS.rounds, FLAGS.seed, FLAGS.allow_weak_judge, FLAGS.num_test_videos, FLAGS.num_train_codes
  )
  written = os.path.join(runs.run_dir(FLAGS.workdir), "evaluation")
  if FLAGS.copy_to:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.copy_to)), exist_ok=True)
    for name, suffix in ((curves.CURVE_FILE, ".json"), (curves.FIGURE_FILE, ".png")):
      shutil.copyfile(os.path.join(written, name), FLAGS.copy_to + suffix)
  print(curves.table(curve))


if __name__ == "__main__":
  app.run(entry.guarded(main))
