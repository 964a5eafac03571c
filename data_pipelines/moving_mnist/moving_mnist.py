"""Moving MNIST: MNIST digits gliding at constant speed and bouncing off the frame's borders.

VDSM §4's set: 64x64 single-channel frames, 16 per video, one or two 28x28 MNIST digits combined
by a per-pixel max. Each digit starts at a uniform random top-left position (x, y) in
[0, 36]^2 and moves with a constant speed in a uniform random direction. When a step would take
it past a border, its position is reflected back inside and that velocity component flips, so
the digit always stays wholly inside the frame. Positions are real; a digit is drawn at its
rounded position.

Train videos take their digits from MNIST's train split, test videos from its test split.
Labels: the digit classes, one identity class for the combination (d, or 10 * d1 + d2), the
start positions and velocities (pixels, pixels per frame, as (x, y)) and the MNIST indices.
For judges, which cannot tell which digit is "first", each also comes as order-free classes:
`digit_1 <= digit_2` (the sorted digit classes) and `direction_1 <= direction_2` (the sorted
compass directions of the initial velocities, DIRECTIONS), so swapping the digits' identities
keeps the direction labels and swapping their motions keeps the digit labels.
Everything is deterministic from the builder config's seed. The four MNIST IDX files are read
from `manual_dir` (see MANUAL_DOWNLOAD_INSTRUCTIONS).
"""

import dataclasses
import gzip
import os
import zlib

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
import tensorflow_datasets as tfds

from data_pipelines.manual_data import ManualDataError, manual_folder, require_files

IMAGE_SIZE = 64
DIGIT_SIZE = 28
MAX_POSITION = IMAGE_SIZE - DIGIT_SIZE  # a top-left coordinate lies in [0, MAX_POSITION]
NUM_CLASSES = 10
IMAGES_MAGIC = 2051  # IDX: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # IDX: unsigned bytes, 1 dimension
SPLITS = ("train", "test")
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
RENDER_CHUNK = 1024
DIRECTIONS = ("right", "down", "left", "up")  # image axes: x to the right, y down

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Moving MNIST is rendered from the MNIST database (LeCun, Cortes & Burges), read from manual_dir.
Put its four gzipped IDX files, unchanged, directly in manual_dir:
  train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
  t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz
They are distributed at http://yann.lecun.com/exdb/mnist/ (mirrored at
https://ossci-datasets.s3.amazonaws.com/mnist/). This repository's copy lives in
../shared/data/mnist (PROVENANCE.txt and SHA256SUMS beside it): set config.data.manual_dir to it.
"""


@dataclasses.dataclass
class MovingMnistConfig(tfds.core.BuilderConfig):
  """Video length, digits per video, videos per split, digit speed range and the seed."""

  num_frames: int = 16
  num_digits: int = 2
  num_train: int = 49_500
  num_test: int = 5_500
  speed_range: tuple[float, float] = (3.6, 3.6)  # pixels per frame; 3.6 = a tenth of the range
  seed: int = 0


def read_idx(path: str | os.PathLike, magic: int) -> np.ndarray:
  """The uint8 array held in a gzipped IDX file; ManualDataError if it is not a valid one."""
  path = os.fspath(path)

  def invalid(problem: str) -> ManualDataError:
    return ManualDataError(f"The MNIST file {path} {problem}.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")

  try:
    with gzip.open(path, "rb") as stream:
      content = stream.read()
  except FileNotFoundError as error:
    raise invalid("does not exist") from error
  except (OSError, EOFError, zlib.error) as error:
    raise invalid(f"is corrupt or truncated (not a complete gzip stream: {error})") from error
  if len(content) < 4:
    raise invalid(f"is truncated: {len(content)} bytes, shorter than the IDX magic number")
  found_magic = int.from_bytes(content[:4], "big")
  if found_magic != magic:
    raise invalid(f"has the wrong magic number {found_magic}, not {magic}: is it the right file?")
  header_size = 4 + 4 * (magic & 0xFF)
  if len(content) < header_size:
    raise invalid(f"is truncated: {len(content)} bytes, shorter than its {header_size}-byte header")
  shape = tuple(int(size) for size in np.frombuffer(content, ">u4", count=magic & 0xFF, offset=4))
  expected, found = int(np.prod(shape)), len(content) - header_size
  if found < expected:
    raise invalid(f"is truncated: its header promises {shape} = {expected} bytes, it holds {found}")
  if found > expected:
    raise invalid(f"is corrupt: {found - expected} bytes follow its {shape} = {expected} bytes")
  return np.frombuffer(content, np.uint8, offset=header_size).reshape(shape)


def load_mnist(manual_dir: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Images [N, 28, 28] uint8 and labels [N] uint8 of one MNIST split, checked."""
  images_name, labels_name = MNIST_FILES[split]
  images = read_idx(os.path.join(manual_dir, images_name), IMAGES_MAGIC)
  labels = read_idx(os.path.join(manual_dir, labels_name), LABELS_MAGIC)
  if images.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE):
    raise ManualDataError(
        f"{images_name} in {manual_dir} holds images of shape {images.shape[1:]}, not 28x28.\n"
        f"{MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )
  if labels.shape[0] != images.shape[0] or (labels.size and labels.max() >= NUM_CLASSES):
    raise ManualDataError(
        f"{labels_name} in {manual_dir} does not match {images_name}: {labels.shape[0]} labels "
        f"(max {labels.max(initial=0)}) for {images.shape[0]} images.\n"
        f"{MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )
  return images, labels


def video_parameters(
    config: MovingMnistConfig, split: str, num_sources: int
) -> dict[str, np.ndarray]:
  """MNIST indices, start positions and velocities of every video of a split, from the seed."""
  if config.num_digits not in (1, 2):
    raise ValueError(f"num_digits must be 1 or 2, not {config.num_digits}.")
  if not 0 <= config.speed_range[0] <= config.speed_range[1] <= MAX_POSITION:
    raise ValueError(f"speed_range {config.speed_range} is not 0 <= low <= high <= {MAX_POSITION}.")
  rng = np.random.default_rng([config.seed, SPLITS.index(split)])
  count = config.num_train if split == "train" else config.num_test
  shape = (count, config.num_digits)
  source_index = rng.integers(0, num_sources, size=shape)  # [N, D]
  start = rng.uniform(0.0, MAX_POSITION, size=shape + (2,))  # [N, D, 2]
  angle = rng.uniform(0.0, 2.0 * np.pi, size=shape)  # [N, D]
  speed = rng.uniform(*config.speed_range, size=shape)  # [N, D]
  velocity = speed[..., None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)  # [N, D, 2]
  return {
      "source_index": source_index,
      "start": start.astype(np.float32),
      "velocity": velocity.astype(np.float32),
  }


def trajectories(start: np.ndarray, velocity: np.ndarray, num_frames: int) -> np.ndarray:
  """Positions [..., T, 2] from start [..., 2] and velocity [..., 2], reflected into [0, 36]."""
  position, step = start.astype(np.float64), velocity.astype(np.float64)
  positions = np.empty(start.shape[:-1] + (num_frames, 2), np.float64)
  for frame in range(num_frames):
    positions[..., frame, :] = position
    position = position + step
    below, above = position < 0.0, position > MAX_POSITION
    position = np.where(below, -position, np.where(above, 2.0 * MAX_POSITION - position, position))
    step = np.where(below | above, -step, step)
  return positions


def render(digits: np.ndarray, positions: np.ndarray) -> np.ndarray:
  """Frames [N, T, 64, 64, 1] uint8 of digits [N, D, 28, 28] at positions [N, D, T, 2] (x, y)."""
  count, num_digits, num_frames = positions.shape[:3]
  corners = np.rint(positions).astype(np.int64)  # [N, D, T, 2]
  frames = np.zeros((count, num_frames, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
  patches = sliding_window_view(  # [N, T, 37, 37, 28, 28], a writeable view of frames
      frames, (DIGIT_SIZE, DIGIT_SIZE), axis=(2, 3), writeable=True
  )
  videos, times = np.arange(count)[:, None], np.arange(num_frames)[None, :]  # [N, 1], [1, T]
  for digit in range(num_digits):
    x, y = corners[:, digit, :, 0], corners[:, digit, :, 1]  # [N, T]
    patches[videos, times, y, x] = np.maximum(patches[videos, times, y, x], digits[:, digit, None])
  return frames[..., None]


def identity_class(digit_classes: np.ndarray) -> np.ndarray:
  """One class id [N] per digit combination [N, D]: d for one digit, 10 * d1 + d2 for two."""
  powers = NUM_CLASSES ** np.arange(digit_classes.shape[-1] - 1, -1, -1)
  return (digit_classes * powers).sum(axis=-1)


def direction_class(velocity: np.ndarray) -> np.ndarray:
  """The nearest of DIRECTIONS [...] (0 right, 1 down, 2 left, 3 up) to velocities [..., 2] (x, y)."""
  angle = np.arctan2(velocity[..., 1], velocity[..., 0])  # y grows downwards
  return np.rint(angle / (np.pi / 2)).astype(np.int64) % len(DIRECTIONS)


def direction_flip_probabilities(
    start: np.ndarray, velocity: np.ndarray, num_frames: int, window: float = 0.06, cells: int = 11, angles: int = 81
) -> np.ndarray:
  """How often an ideal observer of the rounded positions errs on each digit's direction class [N, D].

  A digit's pixels fix only its rounded top-left corners. Every start within the rounding cell of
  its first corner and every angle within `window` radians of its nearest class boundary (on a
  cells x cells by `angles` grid, at the digit's own speed) that renders the same corners in all
  num_frames frames is consistent with what the pixels show; the observer picks the side of the
  boundary holding most of them and errs with the other side's share. Digits further than
  `window` from a boundary are taken as unambiguous. Occlusion by the other digit is ignored, so
  this bounds any judge's error from below.
  """
  start, velocity = np.asarray(start, np.float64), np.asarray(velocity, np.float64)
  angle = np.arctan2(velocity[..., 1], velocity[..., 0])  # [N, D]
  boundary = (np.floor(angle / (np.pi / 2)) + 0.5) * (np.pi / 2)  # the class boundary nearest to the angle
  flip = np.zeros(angle.shape)
  near = np.argwhere(np.abs(angle - boundary) < window)  # [n, 2] (video, digit)
  offsets = (np.arange(cells) + 0.5) / cells - 0.5  # midpoints of the rounding cell
  cell_x, cell_y = np.meshgrid(offsets, offsets, indexing="ij")
  shifts = np.linspace(-window, window, angles)
  shifts = shifts[shifts != 0.0]  # [A]: never on the boundary itself
  for video, digit in near:
    seen = np.rint(trajectories(start[video, digit], velocity[video, digit], num_frames))  # [T, 2]
    speed = np.hypot(*velocity[video, digit])
    candidate_start = seen[0] + np.stack([cell_x.ravel(), cell_y.ravel()], axis=-1)  # [C, 2]
    candidate_angle = boundary[video, digit] + shifts  # [A]
    candidate_velocity = speed * np.stack([np.cos(candidate_angle), np.sin(candidate_angle)], axis=-1)  # [A, 2]
    starts = np.broadcast_to(candidate_start[:, None], (len(candidate_start), len(shifts), 2))  # [C, A, 2]
    velocities = np.broadcast_to(candidate_velocity[None], starts.shape)  # [C, A, 2]
    consistent = (np.rint(trajectories(starts, velocities, num_frames)) == seen).all(axis=(-1, -2))  # [C, A]
    above = consistent[:, shifts > 0].sum()
    below = consistent[:, shifts < 0].sum()
    if above + below:
      flip[video, digit] = min(above, below) / (above + below)
  return flip


def ideal_direction_accuracy(velocity: np.ndarray, flip: np.ndarray) -> dict[str, float]:
  """Expected accuracy of each order-free direction head {direction_i} when each digit's class flips
  across its nearest boundary independently with probability flip [N, D] (from direction_flip_probabilities)."""
  true_class = direction_class(velocity)  # [N, D]
  angle = np.arctan2(velocity[..., 1], velocity[..., 0])
  across = np.where(angle / (np.pi / 2) - np.rint(angle / (np.pi / 2)) > 0, 1, -1)  # the neighbour over the nearest boundary
  flipped_class = (true_class + across) % len(DIRECTIONS)
  truth = np.sort(true_class, axis=-1)
  num_digits = true_class.shape[-1]
  correct = np.zeros((true_class.shape[0], num_digits))
  for pattern in np.ndindex(*(2,) * num_digits):  # which digits flip
    flips = np.array(pattern, bool)  # [D]
    chance = np.prod(np.where(flips, flip, 1.0 - flip), axis=-1)  # [N]
    seen = np.sort(np.where(flips, flipped_class, true_class), axis=-1)  # [N, D]
    correct += chance[:, None] * (seen == truth)
  return {f"direction_{i + 1}": float(correct[:, i].mean()) for i in range(num_digits)}


def order_free_labels(digit_classes: np.ndarray, velocity: np.ndarray) -> dict[str, np.ndarray]:
  """{digit_i, direction_i: [N]} for i = 1..D: the sorted digit classes [N, D] and sorted directions of velocity [N, D, 2]."""
  digits = np.sort(digit_classes, axis=-1)
  directions = np.sort(direction_class(velocity), axis=-1)
  labels = {}
  for i in range(digit_classes.shape[-1]):
    labels[f"digit_{i + 1}"] = digits[..., i]
    labels[f"direction_{i + 1}"] = directions[..., i]
  return labels


class MovingMnist(tfds.core.GeneratorBasedBuilder):
  """Bouncing MNIST digits with digit-class (identity) and trajectory (dynamics) labels."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Initial release.", "1.1.0": "Order-free digit_i and direction_i labels for judges."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      MovingMnistConfig(
          name="default",
          description="VDSM's set: 55,000 two-digit 16-frame videos, 10% held out (49,500/5,500).",
      ),
      MovingMnistConfig(
          name="one_digit",
          description="One digit per video, 49,500/5,500 16-frame videos.",
          num_digits=1,
      ),
      MovingMnistConfig(
          name="small",
          description="64/32 two-digit 16-frame videos: for tests and quick runs.",
          num_train=64,
          num_test=32,
      ),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    num_digits = config.num_digits
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(
                shape=(config.num_frames, IMAGE_SIZE, IMAGE_SIZE, 1),
                dtype=np.uint8,
                encoding=tfds.features.Encoding.ZLIB,
            ),
            "digits": tfds.features.Tensor(shape=(num_digits,), dtype=np.int64),
            "identity": tfds.features.Scalar(dtype=np.int64),
            "start": tfds.features.Tensor(shape=(num_digits, 2), dtype=np.float32),
            "velocity": tfds.features.Tensor(shape=(num_digits, 2), dtype=np.float32),
            "source_index": tfds.features.Tensor(shape=(num_digits,), dtype=np.int64),
            **{
                f"{label}_{i + 1}": tfds.features.Scalar(dtype=np.int64)
                for label in ("digit", "direction") for i in range(num_digits)
            },
        }),
    )

  def _split_generators(self, dl_manager):
    manual_dir = require_files(
        manual_folder(dl_manager, MANUAL_DOWNLOAD_INSTRUCTIONS),
        [name for split in SPLITS for name in MNIST_FILES[split]],
        MANUAL_DOWNLOAD_INSTRUCTIONS,
    )
    return {
        split: self._generate_examples(split, *load_mnist(manual_dir, split)) for split in SPLITS
    }

  def _generate_examples(self, split: str, images: np.ndarray, labels: np.ndarray):
    config = self.builder_config
    parameters = video_parameters(config, split, images.shape[0])
    count = parameters["source_index"].shape[0]
    for first in range(0, count, RENDER_CHUNK):
      rows = {name: values[first : first + RENDER_CHUNK] for name, values in parameters.items()}
      positions = trajectories(rows["start"], rows["velocity"], config.num_frames)  # [n, D, T, 2]
      videos = render(images[rows["source_index"]], positions)  # [n, T, 64, 64, 1]
      digit_classes = labels[rows["source_index"]].astype(np.int64)  # [n, D]
      identities = identity_class(digit_classes)  # [n]
      order_free = order_free_labels(digit_classes, rows["velocity"])  # {name: [n]}
      for offset, video in enumerate(videos):
        yield first + offset, {
            "video": video,
            "digits": digit_classes[offset],
            "identity": int(identities[offset]),
            "start": rows["start"][offset],
            "velocity": rows["velocity"][offset],
            "source_index": rows["source_index"][offset].astype(np.int64),
            **{name: int(values[offset]) for name, values in order_free.items()},
        }
