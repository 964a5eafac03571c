r"""Writes a trained run's sample files (PNG/GIF) and, where its config names evaluators, evaluation.json.

  python -m experiments.sample --workdir=DIR [--step=N] [--out=DIR/samples/step_N] [--rollout_temperature=T] [--seed=S]

Files: reconstructions, swap, swap_grid, generation and continuation (see dsa_jax.sample_files).
With --rollout_temperature (and no --out) they go to DIR/samples/step_N_rollout_temperature_T.
"""

import dataclasses

import jax
from absl import app, flags, logging

from dsa_jax import runs, workdirs
from dsa_jax.evaluation import evaluators
from experiments import entry

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's workdir (or one stage's folder).")
flags.DEFINE_integer("step", None, "Checkpoint step; default the newest intact one.")
flags.DEFINE_string("out", None, "Output directory; default WORKDIR[/STAGE]/samples/step_N.")
flags.DEFINE_integer(
    "seed", None, "Seed of the sampling randomness; default the run's own sample key, so that the files equal training's."
)
flags.DEFINE_float(
    "rollout_temperature", None,
    "Noise scale of the per-frame prior (0: its means); default the run's config.sample.rollout_temperature.",
    lower_bound=0.0,
)
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  run = runs.restore(FLAGS.workdir, FLAGS.step)
  sample_config = run.config.sample
  videos = runs.load_videos(run.config.data, "test", sample_config.num_videos)
  codec = run.codec
  out_dir = workdirs.expand(FLAGS.out) if FLAGS.out else runs.sample_dir(run.directory, run.step)
  if FLAGS.rollout_temperature is not None:
    codec = dataclasses.replace(codec, rollout_temperature=FLAGS.rollout_temperature)
    if not FLAGS.out:
      out_dir += f"_rollout_temperature_{FLAGS.rollout_temperature:g}"  # keeps the run's own samples
  paths, scores = evaluators.end_of_run(
      codec, run.config, videos, runs.run_keys(run.config.seed)[2] if FLAGS.seed is None else jax.random.key(FLAGS.seed), out_dir,
  )
  for name, value in scores.items():
    print(f"{name}: {'n/a' if value is None else f'{value:.4g}'}")
  print("\n".join(paths))


if __name__ == "__main__":
  app.run(entry.guarded(main))
