"""Exclusive advisory locks on a file (flock), released by the kernel when their holder ends, even by SIGKILL."""

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def exclusive(path: str, when_held_elsewhere: Callable[[], None]) -> Iterator[int]:
  """Holds an exclusive lock on path, yielding its descriptor; if another process holds it, calls when_held_elsewhere, then waits."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      when_held_elsewhere()  # may raise instead, to refuse rather than wait
      fcntl.flock(descriptor, fcntl.LOCK_EX)
    yield descriptor
  finally:
    os.close(descriptor)  # releases the lock
