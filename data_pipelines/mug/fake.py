"""A tiny fake MUG release for tests and quick runs: deterministic random JPEGs in MUG's layout.

Each frame is a smooth random colour field (an upsampled 5x4 grid of random colours) that
differs from subject to subject, expression to expression and frame to frame.
"""

import os

import numpy as np
from PIL import Image

from data_pipelines.mug import mug

SKIPPED_FOLDERS = ("neutral", "notes")


def fake_frame(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
  """A smooth random RGB image of size (width, height)."""
  grid = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)  # [rows, columns, RGB]
  return Image.fromarray(grid).resize(size, Image.Resampling.BILINEAR)


def write_take(take_dir: str, rng: np.random.Generator, num_frames: int, size: tuple[int, int]):
  """Writes img_0001.jpg ... img_<num_frames>.jpg into take_dir."""
  os.makedirs(take_dir, exist_ok=True)
  for frame in range(num_frames):
    fake_frame(rng, size).save(os.path.join(take_dir, f"img_{frame + 1:04d}.jpg"), quality=95)


def subject_ids(num_subjects: int) -> list[int]:
  """The fake subjects' ids: 1, 4, 7, ... (not consecutive, like MUG's)."""
  return [1 + 3 * index for index in range(num_subjects)]


def write_fake_mug_tree(
    root: str | os.PathLike,
    num_subjects: int = 6,
    takes_per_expression: int = 1,
    frames_per_take: int = 34,
    short_take_frames: int = 9,
    size: tuple[int, int] = (80, 60),
    seed: int = 0,
) -> str:
  """Writes root/subjects3/<subject>/<expression>/take<NNN>/img_<NNNN>.jpg; returns root.

  Every subject gets takes_per_expression takes of frames_per_take frames for each of the 6
  expressions, plus folders MUG's builder must skip (neutral, notes). If short_take_frames > 0,
  the first subject's first expression also gets one more take of that many frames, too short
  for a clip at the default settings.
  """
  root = os.fspath(root)
  release = os.path.join(root, mug.RELEASE_FOLDER)
  for subject in subject_ids(num_subjects):
    subject_dir = os.path.join(release, f"{subject:03d}")
    for index, expression in enumerate(mug.EXPRESSIONS + SKIPPED_FOLDERS):
      for take in range(takes_per_expression):
        rng = np.random.default_rng([seed, subject, index, take])
        take_dir = os.path.join(subject_dir, expression, f"take{take:03d}")
        write_take(take_dir, rng, frames_per_take, size)
  if short_take_frames > 0:
    rng = np.random.default_rng([seed, 0, 0, takes_per_expression])
    take_dir = os.path.join(
        release, f"{subject_ids(1)[0]:03d}", mug.EXPRESSIONS[0], f"take{takes_per_expression:03d}"
    )
    write_take(take_dir, rng, short_take_frames, size)
  return root
