r"""Trains a judge and writes it beside its checkpoints: `params.msgpack` and `judge.json` (validation and test accuracy per head, sha256).

  python -m experiments.train_judge --config=experiments/judge_sprites.py[:quick] --workdir=DIR
"""

import time

from absl import app, flags, logging
from ml_collections import config_flags

import dsa_jax
from dsa_jax import tasks, train
from dsa_jax.evaluation import judges
from experiments import entry

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Judge config file, path[:variant].", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for the judge's checkpoints and files.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.ERROR)  # orbax logs every save at INFO and read-only restores as warnings
  if FLAGS.config.model != "judge":
    raise tasks.ConfigError(f"--config must be a judge config (config.model='judge'); got {FLAGS.config.model!r}.")
  started = time.perf_counter()
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  seconds = time.perf_counter() - started
  info = judges.export(FLAGS.workdir, train_seconds=seconds)
  if info["validation_accuracy"]:
    print(f"Chose the checkpoint of step {info['train_steps']} on {info['validation_videos']} validation videos.")
  print(f"Judge test accuracy: {', '.join(f'{name} {value:.4f}' for name, value in info['test_accuracy'].items())}")
  print(f"Wrote {judges.PARAMS_FILE} (sha256 {info['params_sha256']}) and {judges.INFO_FILE} in {dsa_jax.runs.run_dir(FLAGS.workdir)}.")


if __name__ == "__main__":
  app.run(entry.guarded(main))
