r"""A run's learning curve: by default the validation scores it logged during training (config.evals).

  python -m experiments.learning_curve --workdir=RUN [--copy_to=docs/curves/NAME]

Writes RUN[/STAGE]/evaluation/validation_curve.json and .png (the selected step marked). With
--source=test it instead scores every kept checkpoint on the test split, a diagnostic that must not
choose a checkpoint:

  python -m experiments.learning_curve --workdir=RUN --source=test [--rounds=1] [--judge=JUDGE_DIR]

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
flags.DEFINE_enum("source", "validation", ("validation", "test"), "The logged validation scores, or every checkpoint scored on test.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.ERROR)
  if FLAGS.source == "validation":
    curve = curves.validation_curve(FLAGS.workdir)
    files, text = (curves.VALIDATION_CURVE_FILE, curves.VALIDATION_FIGURE_FILE), curves.validation_table(curve)
  else:
    curve = curves.learning_curve(
        FLAGS.workdir, FLAGS.judge, FLAGS.rounds, FLAGS.seed, FLAGS.allow_weak_judge, FLAGS.num_test_videos,
        FLAGS.num_train_codes,
    )
    files, text = (curves.CURVE_FILE, curves.FIGURE_FILE), curves.table(curve)
  written = os.path.join(runs.run_dir(FLAGS.workdir), "evaluation")
  if FLAGS.copy_to:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.copy_to)), exist_ok=True)
    for name, suffix in zip(files, (".json", ".png")):
      shutil.copyfile(os.path.join(written, name), FLAGS.copy_to + suffix)
  print(text)


if __name__ == "__main__":
  app.run(entry.guarded(main))
