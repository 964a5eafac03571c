"""Stopping a run on SIGTERM (a scheduler's preemption notice, or `kill PID`): save the step's checkpoint, then exit.

In a multi-process run JAX's preemption service catches the signal on whichever process gets it
and the processes agree on the step at which all of them save (`reached_preemption_sync_point`);
in one process a signal handler does the same for the loop that installed it.
"""

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

import jax
from jax.experimental import multihost_utils

STOPPED_EXIT_STATUS = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM


class TrainingStopped(RuntimeError):
  """SIGTERM stopped training after its checkpoint was saved; rerunning the same command resumes."""


def never(step: int) -> bool:
  """A stop request that never comes (training outside the main thread, or without a SIGTERM watch)."""
  del step
  return False


@contextlib.contextmanager
def on_sigterm() -> Iterator[Callable[[int], bool]]:
  """Yields reached(step): True at the step (call it at every step) where, after a SIGTERM, every process saves and stops."""
  if jax.distributed.is_initialized():
    yield multihost_utils.reached_preemption_sync_point
    return
  if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
    yield never
    return
  received = threading.Event()
  previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.set())
  try:
    yield lambda step: received.is_set()
  finally:
    signal.signal(signal.SIGTERM, previous)
