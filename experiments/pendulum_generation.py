r"""Where a pendulum run's generations lose their colour: the fraction of decodings with a training
colour at full intensity in every frame, by where the static and dynamic codes come from, at each
horizon and rollout temperature (`dsa_jax.evaluation.pendulum.full_intensity_by_code_source`).

  python -m experiments.pendulum_generation --workdir=RUN [--num_frames=16,60] [--rollout_temperatures=1,0]

Prints a markdown table and writes it, with the numbers as JSON, to
RUN[/STAGE]/samples/step_N/generation_by_code_source.{md,json}.
"""

import dataclasses
import json
import os

import jax
from absl import app, flags, logging

from dsa_jax import runs, visualize
from dsa_jax.evaluation import pendulum
from experiments import entry

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A pendulum training run's workdir (or one stage's folder).")
flags.DEFINE_integer("step", None, "Checkpoint step; default the newest intact one.")
flags.DEFINE_list("num_frames", ["16", "60"], "Horizons to decode to.")
flags.DEFINE_list("rollout_temperatures", ["1", "0"], "Noise scales of the per-frame prior past the training length.")
flags.DEFINE_integer("num_videos", 256, "Decodings per code source.")
flags.DEFINE_integer("num_training_videos", 512, "Training videos whose posterior means are the codes and the densities' data.")
flags.DEFINE_integer("seed", 0, "Seed of the draws.")
flags.mark_flags_as_required(["workdir"])


def parsed(values: list[str], kind, name: str, least: float) -> list:
  """values as numbers of kind, each at least `least`; a UsageError naming the flag otherwise."""
  try:
    numbers = [kind(value) for value in values]
  except ValueError:
    raise app.UsageError(f"--{name} takes comma-separated numbers; got {','.join(values)!r}.") from None
  if not numbers or min(numbers) < least:
    raise app.UsageError(f"--{name} takes numbers of at least {least:g}; got {','.join(values)!r}.")
  return numbers


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  horizons = parsed(FLAGS.num_frames, int, "num_frames", 1)
  temperatures = parsed(FLAGS.rollout_temperatures, float, "rollout_temperatures", 0.0)
  logging.set_verbosity(logging.ERROR)  # orbax logs every restore at INFO and read-only ones as warnings
  run = runs.restore(FLAGS.workdir, FLAGS.step)
  if run.config.data.name != "pendulum":
    raise app.UsageError(f"{FLAGS.workdir} was trained on {run.config.data.name!r}; this command scores pendulum runs.")
  training_videos = runs.load_videos(run.config.data, "train", FLAGS.num_training_videos)
  columns = {}  # "60 frames, rollout temperature 0" -> {source: fraction}
  for frames in horizons:
    rolls_out = frames > run.codec.train_frames  # the temperature only acts past the training length
    for temperature in temperatures if rolls_out else temperatures[:1]:
      codec = dataclasses.replace(run.codec, rollout_temperature=temperature)
      label = f"{frames} frames" + (f", rollout temperature {temperature:g}" if rolls_out else "")
      columns[label] = pendulum.full_intensity_by_code_source(
          codec, training_videos, jax.random.key(FLAGS.seed), FLAGS.num_videos, frames
      )
  sources = list(next(iter(columns.values())))
  lines = [
      "| static, dynamic code source | " + " | ".join(columns) + " |",
      "|---" * (len(columns) + 1) + "|",
      *(f"| {source} | " + " | ".join(f"{column[source]:.1%}" for column in columns.values()) + " |" for source in sources),
  ]
  table = "\n".join(lines)
  print(table)
  out_dir = runs.sample_dir(run.directory, run.step)
  for name, content in (("md", table + "\n"), ("json", json.dumps(columns, indent=2))):
    print(visualize.write_atomically(os.path.join(out_dir, f"generation_by_code_source.{name}"), content.encode()))


if __name__ == "__main__":
  app.run(entry.guarded(main))
