"""Checks for datasets read from a folder the user provides (`manual_dir`)."""

import os
from collections.abc import Iterable


class ManualDataError(FileNotFoundError):
  """A user-provided data folder is missing, incomplete or unreadable."""


def require_files(manual_dir: str | os.PathLike | None, relative_paths: Iterable[str], instructions: str) -> str:
  """Returns manual_dir as a str if it holds every relative path; else raises ManualDataError."""
  if manual_dir is None or not os.path.isdir(os.fspath(manual_dir)):
    raise ManualDataError(f"The data folder {manual_dir!s} does not exist.\n{instructions}")
  manual_dir = os.fspath(manual_dir)
  missing = [path for path in relative_paths if not os.path.exists(os.path.join(manual_dir, path))]
  if missing:
    shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    raise ManualDataError(f"The data folder {manual_dir} lacks {shown}.\n{instructions}")
  return manual_dir


def manual_folder(dl_manager, instructions: str) -> str:
  """dl_manager.manual_dir as a str; ManualDataError (not TFDS's AssertionError) if unusable."""
  try:
    return os.fspath(dl_manager.manual_dir)
  except AssertionError as error:
    raise ManualDataError(f"{str(error).splitlines()[0]}\n{instructions}") from error
