"""MUG facial expressions: subjects performing 6 basic expressions, read from a local copy.

The MUG Facial Expression Database (Aifanti, Papachristou & Delopoulos, 2010; 52 subjects in
VDSM §4) is licence-gated and never downloaded. `manual_dir` holds the release as distributed:

  manual_dir/subjects3/<subject>/<expression>/take<NNN>/img_<NNNN>.jpg
  e.g.     subjects3/001/happiness/take000/img_0001.jpg

or is the `subjects3` folder itself. A subject folder is named by its numeric id (001, 002, ...).
The expressions used are anger, disgust, fear, happiness, sadness and surprise; other folders
(neutral, anything unknown) and folders not named take<digits> are skipped.

Each take's frames are sorted by file name and every second one is kept (x2 subsampling); each
kept frame is centre-cropped to a square and resized to 64x64 RGB uint8 by area averaging (no
face alignment beyond the crop). The subsampled take is cut into non-overlapping clips of
num_frames frames, first to last: clip k holds the take's sorted frames 2 (k T + i), i < T. The
leftover frames at the end, and takes too short for a single clip, are dropped.
A fraction (15%, at least one subject) of the subjects that have clips is held out for test,
drawn from the config seed; every clip of a subject lies in one split.
"""

import dataclasses
import os
import re
from typing import NamedTuple

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from data_pipelines.manual_data import ManualDataError, manual_folder

IMAGE_SIZE = 64
EXPRESSIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
RELEASE_FOLDER = "subjects3"
SUBJECT_PATTERN = re.compile(r"\d+")
TAKE_PATTERN = re.compile(r"take(\d+)", re.IGNORECASE)
FRAME_SUFFIXES = (".jpg", ".jpeg")

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
The MUG Facial Expression Database is licence-gated and is never downloaded by this builder.
Request it at https://mug.ee.auth.gr/fed/ (sign and send the licence agreement it links to),
unpack the release and set config.data.manual_dir to the folder that holds `subjects3`
(or to `subjects3` itself). Expected layout:
  subjects3/<subject id, e.g. 001>/<expression>/take<NNN>/img_<NNNN>.jpg
with expression folders anger, disgust, fear, happiness, sadness, surprise
(neutral and any other folder are skipped).
"""


@dataclasses.dataclass
class MugConfig(tfds.core.BuilderConfig):
  """Clip length, frame subsampling, fraction of subjects held out for test and the seed."""

  num_frames: int = 16
  subsample: int = 2
  test_fraction: float = 0.15
  seed: int = 0


class Clip(NamedTuple):
  """One clip: where it comes from and the paths of its frames, in order."""

  subject: int
  expression: str
  take: int
  clip: int
  paths: tuple[str, ...]


def subjects_folder(manual_dir: str | os.PathLike) -> str:
  """The folder holding the subject folders: manual_dir/subjects3 if present, else manual_dir."""
  release = os.path.join(manual_dir, RELEASE_FOLDER)
  return release if os.path.isdir(release) else os.fspath(manual_dir)


def subfolders(folder: str) -> list[str]:
  """Names of the folders directly inside `folder`, sorted."""
  return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def take_clips(frame_paths: list[str], num_frames: int, subsample: int) -> list[tuple[str, ...]]:
  """Non-overlapping clips of num_frames paths from every `subsample`-th sorted frame."""
  kept = sorted(frame_paths)[::subsample]
  starts = range(0, len(kept) - num_frames + 1, num_frames)
  return [tuple(kept[first : first + num_frames]) for first in starts]


def find_clips(root: str, num_frames: int, subsample: int) -> list[Clip]:
  """Every clip under the subject folders in `root`; ManualDataError if there is none."""
  subjects = [name for name in subfolders(root) if SUBJECT_PATTERN.fullmatch(name)]
  if not subjects:
    raise ManualDataError(
        f"No subject folders (numeric names such as 001) in {root} or {root}/{RELEASE_FOLDER}.\n"
        f"{MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )
  clips, num_takes = [], 0
  for subject in subjects:
    subject_dir = os.path.join(root, subject)
    for expression in subfolders(subject_dir):
      if expression.lower() not in EXPRESSIONS:
        continue
      expression_dir = os.path.join(subject_dir, expression)
      for take in subfolders(expression_dir):
        match = TAKE_PATTERN.fullmatch(take)
        if not match:
          continue
        num_takes += 1
        take_dir = os.path.join(expression_dir, take)
        frames = [
            os.path.join(take_dir, name)
            for name in os.listdir(take_dir)
            if name.lower().endswith(FRAME_SUFFIXES)
        ]
        for index, paths in enumerate(take_clips(frames, num_frames, subsample)):
          clips.append(Clip(int(subject), expression.lower(), int(match.group(1)), index, paths))
  if not clips:
    needed = (num_frames - 1) * subsample + 1
    raise ManualDataError(
        f"Found {len(subjects)} subject folders and {num_takes} takes of the expressions "
        f"{', '.join(EXPRESSIONS)} in {root}, but no take has the {needed} JPEG frames one "
        f"{num_frames}-frame clip needs.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )
  return clips


def split_subjects(
    subjects: list[int], test_fraction: float, seed: int
) -> tuple[set[int], set[int]]:
  """Train and test subject ids: round(test_fraction * n) (at least 1, at most n - 1) in test."""
  if len(subjects) < 2:
    raise ManualDataError(
        f"MUG needs clips of at least two subjects to hold one out for test; found {subjects}.\n"
        f"{MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )
  num_test = min(len(subjects) - 1, max(1, round(test_fraction * len(subjects))))
  order = np.random.default_rng(seed).permutation(sorted(subjects))
  return {int(s) for s in order[num_test:]}, {int(s) for s in order[:num_test]}


def load_frame(path: str) -> np.ndarray:
  """A frame [64, 64, 3] uint8: the JPEG centre-cropped to a square and area-resized."""
  try:
    with Image.open(path) as source:
      source.draft("RGB", (2 * IMAGE_SIZE, 2 * IMAGE_SIZE))
      image = source.convert("RGB")
  except (OSError, ValueError) as error:
    raise ManualDataError(f"Cannot read the MUG frame {path}: {error}") from error
  width, height = image.size
  side = min(width, height)
  left, top = (width - side) // 2, (height - side) // 2
  square = image.crop((left, top, left + side, top + side))
  return np.asarray(square.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX), np.uint8)


class Mug(tfds.core.GeneratorBasedBuilder):
  """MUG expression clips with subject (identity) and expression (action) labels."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  HELD_OUT_BY = "subject"  # train and test share no subject; so do train and validation (dsa_jax.data)
  BUILDER_CONFIGS = [
      MugConfig(
          name="default", description="16-frame clips at half frame rate, 15% of subjects in test."
      ),
      MugConfig(
          name="clips20", description="20-frame clips (VDSM's MUG sequence length), otherwise as default.",
          num_frames=20,
      ),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(
                shape=(self.builder_config.num_frames, IMAGE_SIZE, IMAGE_SIZE, 3),
                dtype=np.uint8,
                encoding=tfds.features.Encoding.ZLIB,
            ),
            "subject": tfds.features.Scalar(dtype=np.int64),
            "expression": tfds.features.ClassLabel(names=EXPRESSIONS),
            "take": tfds.features.Scalar(dtype=np.int64),
            "clip": tfds.features.Scalar(dtype=np.int64),
        }),
        homepage="https://mug.ee.auth.gr/fed/",
    )

  def _split_generators(self, dl_manager):
    config = self.builder_config
    root = subjects_folder(manual_folder(dl_manager, MANUAL_DOWNLOAD_INSTRUCTIONS))
    clips = find_clips(root, config.num_frames, config.subsample)
    subjects = sorted({clip.subject for clip in clips})
    train, test = split_subjects(subjects, config.test_fraction, config.seed)
    return {
        "train": self._generate_examples([clip for clip in clips if clip.subject in train]),
        "test": self._generate_examples([clip for clip in clips if clip.subject in test]),
    }

  def _generate_examples(self, clips: list[Clip]):
    for clip in clips:
      key = f"{clip.subject:03d}/{clip.expression}/take{clip.take:03d}/clip{clip.clip}"
      yield key, {
          "video": np.stack([load_frame(path) for path in clip.paths]),  # [T, 64, 64, 3]
          "subject": clip.subject,
          "expression": clip.expression,
          "take": clip.take,
          "clip": clip.clip,
      }
