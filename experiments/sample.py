r"""Writes a trained run's sample files (PNG/GIF): DSA reconstructions, swaps and prior
samples; VDSM reconstructions, generations, continuations and action-transfer grids.

  python -m experiments.sample --workdir=DIR [--step=N] [--out=DIR/samples/step_N]
"""

import jax
from absl import app, flags, logging

from dsa_jax import tasks, train

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's workdir.")
flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
flags.DEFINE_string("out", None, "Output directory; default WORKDIR/samples/step_N.")
flags.DEFINE_integer("seed", 0, "Seed of the sampling randomness.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  run = train.restore_run(FLAGS.workdir, FLAGS.step)
  sample_config = run.config.sample
  videos = tasks.load_videos(run.config.data, "test", max(sample_config.num_videos, sample_config.num_evaluation_videos))
  out_dir = FLAGS.out or tasks.sample_dir(train.run_dir(FLAGS.workdir), run.step)
  paths, scores = tasks.write_results(
      run.task, run.params, videos[: sample_config.num_videos], videos[: sample_config.num_evaluation_videos],
      jax.random.key(FLAGS.seed), out_dir,
  )
  for name, value in scores.items():
    print(f"{name}: {value:.4g}")
  print("\n".join(paths))


if __name__ == "__main__":
  app.run(main)
