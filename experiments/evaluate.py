r"""Scores a trained run with a judge: the standard and reverse protocols, VDSM's Table 1, the study's Table 1,
the judge Frechet distance and the reconstruction MSE.

  python -m experiments.evaluate --workdir=RUN [--judge=JUDGE_DIR] [--rounds=5] [--save_videos] [--allow_weak_judge]

Writes RUN[/STAGE]/evaluation/step_N/: results.json, results.md, the sample figures, and with
--save_videos protocol_videos.npz (uint8 videos of both protocols with the labels they should carry).
"""

from absl import app, flags, logging

from dsa_jax.evaluation import judges, report
from experiments import entry

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's workdir (or one stage's folder).")
flags.DEFINE_string("judge", None, "A judge folder (experiments.train_judge); default the one shipped for the run's dataset.")
flags.DEFINE_integer("rounds", 5, "Prior draws of the protocols (mean and std over them).")
flags.DEFINE_integer("step", None, "Checkpoint step; default the newest intact one.")
flags.DEFINE_integer("seed", 0, "Seed of the prior draws.")
flags.DEFINE_integer("num_test_videos", None, "Score only the first N test videos (default all, as published).")
flags.DEFINE_integer("num_train_codes", 2000, "Training videos whose codes fit the classifiers of VDSM's Table 1.")
flags.DEFINE_bool("save_videos", False, "Also save the protocols' generated videos as .npz.")
flags.DEFINE_bool("allow_weak_judge", False, "Score with a judge under 99% on a head (the results say so).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.ERROR)  # orbax logs every restore at INFO and read-only ones as warnings
  results = report.evaluate_run(
      FLAGS.workdir, FLAGS.judge, FLAGS.rounds, FLAGS.seed, FLAGS.allow_weak_judge, FLAGS.save_videos, step=FLAGS.step,
      num_test_videos=FLAGS.num_test_videos, num_train_codes=FLAGS.num_train_codes,
  )
  print(report.markdown_table(results))


if __name__ == "__main__":
  app.run(entry.guarded(main))
