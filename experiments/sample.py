r"""Writes reconstructions, swaps and prior samples of a trained run as PNG/GIF files.

  python -m experiments.sample --workdir=DIR [--step=N] [--out=DIR/samples/step_N]
"""

import jax
from absl import app, flags, logging

from dsa_jax import data, tasks, train

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
  test = data.load_source(run.config.data, "test")
  videos = data.first_examples(test, run.config.sample.num_videos, run.config.data.num_frames)
  out_dir = FLAGS.out or tasks.sample_dir(FLAGS.workdir, run.step)
  paths = run.task.write_samples(
      run.params, tasks.float_videos(videos[data.VIDEO_KEY]), jax.random.key(FLAGS.seed), out_dir
  )
  print("\n".join(paths))


if __name__ == "__main__":
  app.run(main)
