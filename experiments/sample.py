r"""Writes a trained run's sample files (PNG/GIF) and, where its config names evaluators, evaluation.json.

  python -m experiments.sample --workdir=DIR [--step=N] [--out=DIR/samples/step_N]

Files: reconstructions, swap, swap_grid, generation and continuation (see dsa_jax.sample_files).
"""

import jax
from absl import app, flags, logging

from dsa_jax import runs, workdirs
from experiments import entry

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's workdir (or one stage's folder).")
flags.DEFINE_integer("step", None, "Checkpoint step; default the newest intact one.")
flags.DEFINE_string("out", None, "Output directory; default WORKDIR[/STAGE]/samples/step_N.")
flags.DEFINE_integer("seed", 0, "Seed of the sampling randomness.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  run = runs.restore(FLAGS.workdir, FLAGS.step)
  sample_config = run.config.sample
  videos = runs.load_videos(run.config.data, "test", max(sample_config.num_videos, sample_config.num_evaluation_videos))
  out_dir = workdirs.expand(FLAGS.out) if FLAGS.out else runs.sample_dir(run.directory, run.step)
  paths, scores = runs.write_results(
      run.codec, run.config, videos[: sample_config.num_videos], videos[: sample_config.num_evaluation_videos],
      jax.random.key(FLAGS.seed), out_dir,
  )
  for name, value in scores.items():
    print(f"{name}: {'n/a' if value is None else f'{value:.4g}'}")
  print("\n".join(paths))


if __name__ == "__main__":
  app.run(entry.guarded(main))
