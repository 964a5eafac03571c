"""What every command does with a user's mistake: one clear message as the last lines, exit status 1."""

import os
import sys
from collections.abc import Callable

from data_pipelines.manual_data import ManualDataError
from dsa_jax import checkpointing, data, distributed, tasks, train, workdirs
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
    except USER_ERRORS as error:
      sys.stdout.flush()
      print(f"\n{type(error).__name__}: {error}", file=sys.stderr, flush=True)
      os._exit(1)  # skips interpreter shutdown, where orbax's background threads print pages of asyncio errors

  return run
