r"""Scores a trained run with a judge: the standard and reverse protocols, VDSM's Table 1, the study's Table 1,
the judge Frechet distance and the reconstruction MSE.

  python -m experiments.evaluate --workdir=RUN [--judge=JUDGE_DIR] [--rounds=5] [--save_videos] [--allow_weak_judge]

Writes RUN[/STAGE]/evaluation/step_N/: results.json, results.md, the sample figures, and with
--save_videos protocol_videos.npz (uint8 videos of both protocols with the labels they should carry).
With --code_source=train_density the protocols draw codes from a mixture fitted to training videos'
codes instead of the priors (is a model's prior where its posterior puts codes?), written to
RUN[/STAGE]/evaluation/step_N_train_density/ and not comparable with published rows.
"""

from absl import app, flags, logging

from dsa_jax.evaluation import report
from experiments import entry

FLAGS = flags.FLAGS
entry.define_scoring_flags(5, "Prior draws of the protocols (mean and std over them).")
flags.DEFINE_integer("step", None, "Checkpoint step; default the newest intact one.")
flags.DEFINE_bool("save_videos", False, "Also save the protocols' generated videos as .npz.")
flags.DEFINE_enum("code_source", "prior", report.CODE_SOURCES, "Where the protocols draw codes: the priors (published) or train_density.")
flags.DEFINE_integer("density_components", 32, "Components of the train_density mixture, fitted to --num_train_codes videos.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.ERROR)  # orbax logs every restore at INFO and read-only ones as warnings
  results = report.evaluate_run(
      FLAGS.workdir, FLAGS.judge, FLAGS.rounds, FLAGS.seed, FLAGS.allow_weak_judge, FLAGS.save_videos, step=FLAGS.step,
      num_test_videos=FLAGS.num_test_videos, num_train_codes=FLAGS.num_train_codes, code_source=FLAGS.code_source,
      density_components=FLAGS.density_components,
  )
  print(report.markdown_table(results))


if __name__ == "__main__":
  app.run(entry.guarded(main))
