"""Datasets and the input pipeline: TFDS builders read back with `as_data_source`.

The batch for a training step is a pure function of (seed, step): each epoch is a
permutation drawn from the seed and the epoch number, so resuming from a checkpoint
needs no iterator state. Batches are assembled on a background thread.
"""

import importlib
import os
import queue
import threading
from collections.abc import Iterator
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

Batch = dict[str, np.ndarray]

BUILDERS = {
    "pendulum": "data_pipelines.pendulum.pendulum:Pendulum",
}
VIDEO_KEY = "video"


class DataError(ValueError):
  """A dataset is missing, incomplete or does not match the config."""


def builder_class(name: str) -> type[tfds.core.DatasetBuilder]:
  """The TFDS builder class registered under `name`."""
  if name not in BUILDERS:
    raise DataError(f"Unknown dataset {name!r}; config.data.name must be one of {sorted(BUILDERS)}.")
  module_name, class_name = BUILDERS[name].split(":")
  return getattr(importlib.import_module(module_name), class_name)


def default_data_dir() -> str:
  """Where built datasets are cached when config.data.data_dir is unset."""
  return os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def make_builder(data_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """The dataset's builder with the configured data dir, variant and file format."""
  data_dir = data_config.data_dir
  if data_dir is not None and not os.path.isdir(os.path.expanduser(data_dir)):
    raise DataError(
        f"config.data.data_dir={data_dir!r} does not exist. Create it (mkdir -p {data_dir}) or "
        f"leave it unset to use {default_data_dir()}."
    )
  builder_kwargs: dict[str, Any] = {
      "data_dir": os.path.expanduser(data_dir) if data_dir else default_data_dir(),
      "file_format": "array_record",
      "config": data_config.variant,
  }
  return builder_class(data_config.name)(**builder_kwargs)


def load_source(data_config: ml_collections.ConfigDict, split: str):
  """A random-access source of one split, building (once, then cached) if needed."""
  builder = make_builder(data_config)
  if not builder.is_prepared():
    print(f"Building dataset {builder.info.full_name} into {builder.data_dir} (once; cached).")
    tfds.disable_progress_bar()
    manual_dir = os.path.expanduser(data_config.manual_dir) if data_config.manual_dir else None
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  if split not in builder.info.splits:
    raise DataError(f"Dataset {data_config.name} has splits {list(builder.info.splits)}, not {split!r}.")
  return builder.as_data_source(split=split)


def to_unit_interval(videos):
  """uint8 frames -> float32 in [0, 1] (works on numpy and jax arrays)."""
  return jnp.asarray(videos, jnp.float32) / 255.0


def check_video_batch(videos: np.ndarray, num_frames: int, image_shape: tuple[int, ...]) -> None:
  """Raises DataError naming the problem when videos are not [B, T, H, W, C] uint8 / finite floats."""
  expected = (num_frames, *image_shape)
  if videos.ndim != 5 or tuple(videos.shape[1:]) != expected:
    raise DataError(
        f"Videos have shape {tuple(videos.shape)}; the config expects [batch, {', '.join(map(str, expected))}]. "
        "Set config.data.num_frames / config.data.image_size to match the dataset."
    )
  if videos.dtype == np.uint8:
    return
  if not np.issubdtype(videos.dtype, np.floating):
    raise DataError(f"Videos must be uint8 or float in [0, 1]; got dtype {videos.dtype}.")
  if not np.all(np.isfinite(videos)):
    raise DataError("Videos contain NaN or Inf values; clean the input data.")
  if videos.min() < 0.0 or videos.max() > 1.0:
    raise DataError(
        f"Float videos must lie in [0, 1]; got [{videos.min():.3g}, {videos.max():.3g}]. "
        "Divide uint8 frames by 255."
    )


def epoch_permutation(seed: int, epoch: int, size: int) -> np.ndarray:
  """The example order of one epoch."""
  return np.random.default_rng([seed, epoch]).permutation(size)


def batch_indices(seed: int, step: int, batch_size: int, size: int) -> np.ndarray:
  """Dataset indices of the batch at a step: the step's slice of the epoch permutations."""
  if size < batch_size:
    raise DataError(f"The split has {size} examples, fewer than the batch size {batch_size}.")
  batches_per_epoch = size // batch_size  # the last partial batch of each epoch is dropped
  epoch, position = divmod(step, batches_per_epoch)
  return epoch_permutation(seed, epoch, size)[position * batch_size : (position + 1) * batch_size]


def downsample(videos: np.ndarray, image_size: int | None) -> np.ndarray:
  """Mean-pools uint8 videos [..., H, W, C] to image_size x image_size (None: unchanged)."""
  height, width = videos.shape[-3:-1]
  if image_size is None or image_size == height == width:
    return videos
  if height != width or height % image_size:
    raise DataError(
        f"config.data.image_size={image_size} must divide the frame size {height}x{width}; "
        f"use one of {[height // k for k in range(1, height + 1) if height % k == 0]}."
    )
  factor = height // image_size
  blocks = videos.reshape(*videos.shape[:-3], image_size, factor, image_size, factor, videos.shape[-1])
  return np.round(blocks.mean(axis=(-4, -2))).astype(np.uint8)


def batch_at_step(source, seed: int, step: int, batch_size: int, num_frames: int, image_size: int | None = None) -> Batch:
  """The training batch of a step, read directly (what BatchIterator yields at that step)."""
  return read_batch(source, batch_indices(seed, step, batch_size, len(source)), num_frames, image_size)


def read_batch(source, indices: np.ndarray, num_frames: int, image_size: int | None = None) -> Batch:
  """Reads examples into a batch: the first num_frames frames, at image_size (None: native)."""
  examples = source.__getitems__([int(i) for i in indices])
  batch = {key: np.stack([example[key] for example in examples]) for key in examples[0]}
  batch[VIDEO_KEY] = downsample(batch[VIDEO_KEY][:, :num_frames], image_size)
  return batch


class BatchIterator(Iterator[Batch]):
  """Training batches from `start_step` on, read ahead on a background thread."""

  def __init__(
      self,
      source,
      batch_size: int,
      num_frames: int,
      seed: int,
      start_step: int = 0,
      image_size: int | None = None,
      process_index: int = 0,
      process_count: int = 1,
      prefetch: int = 4,
  ):
    """`batch_size` is per process; each process reads its slice of the global batch."""
    self._source, self._batch_size, self._num_frames = source, batch_size, num_frames
    self._image_size = image_size
    self._process_index, self._process_count = process_index, process_count
    self._seed, self._step = seed, start_step
    self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._produce, daemon=True)
    self._thread.start()

  def _produce(self) -> None:
    step = self._step
    while not self._stop.is_set():
      try:
        global_size = self._batch_size * self._process_count
        indices = batch_indices(self._seed, step, global_size, len(self._source))
        mine = slice(self._process_index * self._batch_size, (self._process_index + 1) * self._batch_size)
        item = read_batch(self._source, indices[mine], self._num_frames, self._image_size)
      except Exception as error:  # handed to the consumer, which re-raises it
        item = error
      while not self._stop.is_set():
        try:
          self._queue.put(item, timeout=0.1)
          break
        except queue.Full:
          continue
      if isinstance(item, Exception):
        return
      step += 1

  def __next__(self) -> Batch:
    item = self._queue.get()
    if isinstance(item, Exception):
      raise item
    return item

  def close(self) -> None:
    """Stops the background thread."""
    self._stop.set()
    self._thread.join(timeout=5)


def first_examples(source, count: int, num_frames: int, image_size: int | None = None) -> Batch:
  """The first `count` examples of a split, as a batch (for fixed visualisation sets)."""
  return read_batch(source, np.arange(min(count, len(source))), num_frames, image_size)

