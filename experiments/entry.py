"""What the commands share: a user's mistake as one clear message in the last lines (exit status 1), a SIGTERM stop
likewise (exit status 143), and the scoring flags."""

import os
import sys
from collections.abc import Callable

from absl import flags

from data_pipelines.manual_data import ManualDataError
from dsa_jax import checkpointing, data, distributed, stopping, tasks, train, workdirs
from dsa_jax.evaluation import judges

USER_ERRORS = (
    checkpointing.CheckpointError, data.DataError, ManualDataError, tasks.ConfigError,
    workdirs.WorkdirLockedError, train.NonFiniteLossError, judges.JudgeError, distributed.DistributedError,
)


def guarded(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  """main, printing a user error's message alone and exiting at once (no traceback, no shutdown noise)."""

  def run(argv: list[str]) -> None:
    try:
      main(argv)
    except (*USER_ERRORS, stopping.TrainingStopped) as error:
      sys.stdout.flush()
      print(f"\n{type(error).__name__}: {error}", file=sys.stderr, flush=True)
      stopped = isinstance(error, stopping.TrainingStopped)
      os._exit(stopping.STOPPED_EXIT_STATUS if stopped else 1)  # skips interpreter shutdown, where orbax's threads print pages of asyncio errors

  return run


def parse_seeds(values: list[str]) -> list[int]:
  """--seeds as distinct non-negative integers, in the order given."""
  if not all(value.strip().isdigit() for value in values) or not values:
    raise tasks.ConfigError(
        f"--seeds={','.join(values)} must be non-negative integers separated by commas, e.g. --seeds=0,1,2."
    )
  seeds = [int(value) for value in values]
  if len(set(seeds)) != len(seeds):
    raise tasks.ConfigError(f"--seeds={','.join(values)} repeats a seed; give each seed once.")
  return seeds


def define_scoring_flags(rounds: int, rounds_help: str) -> None:
  """The flags of experiments.evaluate and experiments.learning_curve: the run, the judge and the protocols' settings."""
  flags.DEFINE_string("workdir", None, "A training run's workdir (or one stage's folder).")
  flags.DEFINE_string(
      "judge", None,
      "A judge folder (experiments.train_judge) or cdsvae:PATH (C-DSVAE's sprite_judge.tar); "
      "default the one shipped for the run's dataset.",
  )
  flags.DEFINE_integer("rounds", rounds, rounds_help)
  flags.DEFINE_integer("seed", 0, "Seed of the prior draws.")
  flags.DEFINE_integer("num_test_videos", None, "Score only the first N test videos (default all, as published).")
  flags.DEFINE_integer("num_train_codes", 2000, "Training videos whose codes fit the classifiers of VDSM's Table 1.")
  flags.DEFINE_bool("allow_weak_judge", False, "Score with a judge under 99% on a head (the results say so).")
  flags.mark_flags_as_required(["workdir"])
