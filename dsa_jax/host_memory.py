"""Host allocator settings for training on CPU.

XLA:CPU allocates a step's temporary buffers afresh on every call. glibc serves blocks above
its mmap threshold with fresh mmaps and returns them on free, so every step page-faults
gigabytes in again at the paper's sizes (a 336 MB elementwise op takes ~150 ms this way and
~13 ms into reused memory). Keeping freed memory in one heap lets later steps reuse it.
"""

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
LARGEST_INT = 2**31 - 1


def keep_freed_memory() -> bool:
  """Makes glibc reuse freed heap memory instead of unmapping it; call before JAX starts. False if not glibc."""
  if not sys.platform.startswith("linux"):
    return False
  try:
    libc = ctypes.CDLL("libc.so.6")
  except OSError:
    return False
  settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, LARGEST_INT), (M_ARENA_MAX, 1))
  return all(libc.mallopt(option, value) == 1 for option, value in settings)
