"""Moving MNIST: the IDX reader, bouncing trajectories, rendering and the TFDS builder."""

import dataclasses
import gzip
import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines.manual_data import ManualDataError
from data_pipelines.moving_mnist import moving_mnist
from tests.conftest import SHARED_DATA

MNIST_DIR = os.path.abspath(os.path.join(SHARED_DATA, "mnist"))
needs_mnist = pytest.mark.skipif(
    not os.path.isdir(MNIST_DIR), reason=f"the MNIST IDX files are not in {MNIST_DIR} (shared data)"
)
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_PIXEL_MEAN = 0.1306604762738429  # of pixels / 255, from PROVENANCE.txt


def build(data_dir, manual_dir, config: str = "small") -> moving_mnist.MovingMnist:
  """Builds a Moving MNIST config as dsa_jax.data.load_source does."""
  builder = moving_mnist.MovingMnist(
      data_dir=os.fspath(data_dir), file_format="array_record", config=config
  )
  download_config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir))
  builder.download_and_prepare(download_config=download_config)
  return builder


def stacked(source) -> dict[str, np.ndarray]:
  """Every example of a data source, each feature stacked along a new leading axis."""
  examples = [source[index] for index in range(len(source))]
  return {name: np.stack([example[name] for example in examples]) for name in examples[0]}


def unfolded(start: np.ndarray, velocity: np.ndarray, num_frames: int) -> np.ndarray:
  """Positions [..., T, 2] without walls: s + t v."""
  times = np.arange(num_frames)[:, None]  # [T, 1]
  return start[..., None, :].astype(np.float64) + times * velocity[..., None, :].astype(np.float64)


def reflected(start: np.ndarray, velocity: np.ndarray, num_frames: int) -> np.ndarray:
  """Positions [..., T, 2] by the closed-form triangle wave 36 - |(s + t v) mod 72 - 36|."""
  wall = moving_mnist.MAX_POSITION
  return wall - np.abs(np.mod(unfolded(start, velocity, num_frames), 2 * wall) - wall)


def idx_bytes(magic: int, shape: tuple[int, ...], data: bytes) -> bytes:
  """An IDX file's content: magic number, dimensions (big-endian uint32) and data."""
  return magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in shape) + data


@pytest.fixture(scope="module")
def mnist() -> dict[str, tuple[np.ndarray, np.ndarray]]:
  if not os.path.isdir(MNIST_DIR):
    pytest.skip(f"the MNIST IDX files are not in {MNIST_DIR} (shared data)")
  return {split: moving_mnist.load_mnist(MNIST_DIR, split) for split in moving_mnist.SPLITS}


@pytest.fixture(scope="module")
def small(tmp_path_factory, mnist) -> dict[str, dict[str, np.ndarray]]:
  del mnist  # only for its skip
  builder = build(tmp_path_factory.mktemp("moving_mnist"), MNIST_DIR)
  return {split: stacked(builder.as_data_source(split=split)) for split in moving_mnist.SPLITS}


@needs_mnist
def test_idx_reader_reads_the_real_mnist_files(mnist):
  (train_images, train_labels), (test_images, test_labels) = mnist["train"], mnist["test"]
  assert train_images.shape == (60000, 28, 28) and train_images.dtype == np.uint8
  assert test_images.shape == (10000, 28, 28) and test_labels.shape == (10000,)
  assert np.bincount(train_labels).tolist() == TRAIN_LABEL_COUNTS
  assert np.bincount(test_labels).tolist() == TEST_LABEL_COUNTS
  assert train_labels[:5].tolist() == [5, 0, 4, 1, 9]
  assert int(train_images[0].sum(dtype=np.int64)) == 27525
  assert abs(train_images.mean(dtype=np.float64) / 255 - TRAIN_PIXEL_MEAN) < 1e-12


def test_idx_reader_round_trips_a_small_file(tmp_path):
  images = np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
  path = tmp_path / "images.gz"
  path.write_bytes(gzip.compress(idx_bytes(2051, (2, 28, 28), images.tobytes())))
  np.testing.assert_array_equal(moving_mnist.read_idx(path, moving_mnist.IMAGES_MAGIC), images)


@pytest.mark.parametrize(
    "content, problem",
    [
        (gzip.compress(idx_bytes(2051, (2, 28, 28), bytes(2 * 28 * 28 - 5))), "truncated"),
        (gzip.compress(idx_bytes(2051, (2, 28, 28), bytes(2 * 28 * 28)))[:-9], "or truncated"),
        (gzip.compress(idx_bytes(2051, (2, 28, 28), bytes(2 * 28 * 28 + 3))), "corrupt"),
        (gzip.compress(idx_bytes(2049, (2,), bytes(2))), "wrong magic number 2049"),
        (gzip.compress(idx_bytes(2051, (2, 28), b"")[:10]), "truncated"),
        (idx_bytes(2051, (1, 28, 28), bytes(28 * 28)), "corrupt or truncated"),
    ],
    ids=["short_data", "cut_gzip", "trailing_bytes", "wrong_magic", "short_header", "not_gzip"],
)
def test_idx_reader_names_the_file_and_the_problem(tmp_path, content, problem):
  path = tmp_path / "train-images-idx3-ubyte.gz"
  path.write_bytes(content)
  with pytest.raises(ManualDataError, match=problem) as raised:
    moving_mnist.read_idx(path, moving_mnist.IMAGES_MAGIC)
  assert str(path) in str(raised.value)


def test_missing_or_empty_folder_raises_manual_data_error(tmp_path):
  for manual_dir in (tmp_path / "absent", tmp_path / "empty"):
    if manual_dir.name == "empty":
      manual_dir.mkdir()
    with pytest.raises(ManualDataError, match="../shared/data/mnist") as raised:
      build(tmp_path / "tfds", manual_dir)
    assert str(manual_dir) in str(raised.value)


def test_incomplete_folder_names_the_missing_files(tmp_path):
  manual_dir = tmp_path / "mnist"
  manual_dir.mkdir()
  labels = gzip.compress(idx_bytes(2049, (1,), b"\x03"))
  (manual_dir / "train-labels-idx1-ubyte.gz").write_bytes(labels)
  with pytest.raises(ManualDataError, match="lacks train-images-idx3-ubyte.gz, t10k-images"):
    build(tmp_path / "tfds", manual_dir)


@needs_mnist
def test_a_corrupt_file_in_the_folder_is_named(tmp_path):
  manual_dir = tmp_path / "mnist"
  shutil.copytree(MNIST_DIR, manual_dir)
  images = manual_dir / "t10k-images-idx3-ubyte.gz"
  images.write_bytes(images.read_bytes()[:100_000])
  with pytest.raises(ManualDataError, match="t10k-images-idx3-ubyte.gz is corrupt or truncated"):
    build(tmp_path / "tfds", manual_dir)


def test_trajectories_bounce_like_the_closed_form_reflection():
  rng = np.random.default_rng(0)
  start = rng.uniform(0, 36, size=(50, 2, 2))  # [N, D, 2]
  velocity = rng.uniform(-36, 36, size=(50, 2, 2))  # [N, D, 2]
  positions = moving_mnist.trajectories(start, velocity, 40)  # [N, D, T, 2]
  np.testing.assert_allclose(positions, reflected(start, velocity, 40), atol=1e-9)
  assert positions.min() >= 0 and positions.max() <= 36


def test_digits_move_at_constant_speed_between_bounces():
  rng = np.random.default_rng(1)
  start = rng.uniform(0, 36, size=(50, 2, 2))  # [N, D, 2]
  velocity = rng.uniform(-5, 5, size=(50, 2, 2))  # [N, D, 2]
  positions = moving_mnist.trajectories(start, velocity, 40)  # [N, D, T, 2]
  cells = np.floor(unfolded(start, velocity, 40) / 36)  # [N, D, T, 2]
  no_bounce = np.all(np.diff(cells, axis=-2) == 0, axis=-1)  # [N, D, T - 1]
  steps = np.linalg.norm(np.diff(positions, axis=-2), axis=-1)  # [N, D, T - 1]
  speeds = np.broadcast_to(np.linalg.norm(velocity, axis=-1)[..., None], steps.shape)
  assert 0.5 < no_bounce.mean() < 1
  np.testing.assert_allclose(steps[no_bounce], speeds[no_bounce], rtol=1e-12)
  assert np.all(steps <= speeds + 1e-12)


@needs_mnist
def test_render_draws_each_digit_at_its_rounded_position_combined_by_max(mnist):
  images = mnist["train"][0][[0, 1]]  # [2, 28, 28]
  positions = np.array([[[[3.4, 30.6]]], [[[36.0, 0.0]]]])  # [N=2, D=1, T=1, 2] as (x, y)
  frames = moving_mnist.render(images[:, None], positions)  # [2, 1, 64, 64, 1]
  assert frames.shape == (2, 1, 64, 64, 1) and frames.dtype == np.uint8
  np.testing.assert_array_equal(frames[0, 0, 31:59, 3:31, 0], images[0])
  np.testing.assert_array_equal(frames[1, 0, 0:28, 36:64, 0], images[1])
  assert frames[0].sum(dtype=np.int64) == images[0].sum(dtype=np.int64)
  positions = np.array([[[[10.0, 10.0]], [[20.0, 15.0]]]])  # [N=1, D=2, T=1, 2]
  both = moving_mnist.render(images[None], positions)[0, 0, ..., 0]  # [64, 64]
  expected = np.zeros((64, 64), np.uint8)
  expected[10:38, 10:38] = images[0]
  expected[15:43, 20:48] = np.maximum(expected[15:43, 20:48], images[1])
  np.testing.assert_array_equal(both, expected)


@needs_mnist
def test_small_build_has_the_configured_splits_shapes_and_labels(small):
  assert (len(small["train"]["video"]), len(small["test"]["video"])) == (64, 32)
  for split in moving_mnist.SPLITS:
    examples = small[split]
    assert examples["video"].shape[1:] == (16, 64, 64, 1) and examples["video"].dtype == np.uint8
    assert examples["digits"].shape[1:] == (2,) and examples["digits"].dtype == np.int64
    assert examples["identity"].dtype == np.int64 and examples["source_index"].dtype == np.int64
    assert examples["start"].shape[1:] == (2, 2) and examples["start"].dtype == np.float32
    assert examples["velocity"].shape[1:] == (2, 2) and examples["velocity"].dtype == np.float32
    assert examples["digits"].min() >= 0 and examples["digits"].max() <= 9
    digits = examples["digits"]  # [N, 2]
    np.testing.assert_array_equal(examples["identity"], 10 * digits[:, 0] + digits[:, 1])
    assert examples["start"].min() >= 0 and examples["start"].max() <= 36
    np.testing.assert_allclose(np.linalg.norm(examples["velocity"], axis=-1), 3.6, rtol=1e-6)
    positions = moving_mnist.trajectories(examples["start"], examples["velocity"], 16)
    assert positions.min() >= 0 and positions.max() <= 36
    np.testing.assert_array_equal(np.stack([examples["digit_1"], examples["digit_2"]], -1), np.sort(digits, axis=-1))
    assert np.all(examples["direction_1"] <= examples["direction_2"]) and examples["direction_2"].max() <= 3


def test_directions_are_the_nearest_compass_point_in_image_axes():
  velocity = np.array([[3.6, 0.1], [0.2, 3.0], [-3.0, 0.5], [0.1, -3.6], [3.0, -2.9], [3.0, 3.1]])
  np.testing.assert_array_equal(moving_mnist.direction_class(velocity), [0, 1, 2, 3, 0, 1])


def test_an_ideal_observer_errs_only_on_digits_whose_pixels_straddle_a_direction_boundary():
  speed, boundary = 3.6, np.pi / 4  # between right (0) and down (1): y grows downwards
  angles = np.array([[boundary - 0.3, boundary + 1e-5]])  # [1, D]: far below, and on the boundary to the pixel
  velocity = speed * np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # [1, 2, 2]
  start = np.full((1, 2, 2), 10.0)
  flip = moving_mnist.direction_flip_probabilities(start, velocity, 16)
  assert flip[0, 0] == 0.0 and 0.25 < flip[0, 1] <= 0.5
  assert moving_mnist.ideal_direction_accuracy(velocity, np.zeros((1, 2))) == {"direction_1": 1.0, "direction_2": 1.0}
  # true classes (0, 1); the second flips to 0 with probability 0.4: sorted (0, 0) keeps direction_1, loses direction_2
  accuracy = moving_mnist.ideal_direction_accuracy(velocity, np.array([[0.0, 0.4]]))
  assert accuracy == pytest.approx({"direction_1": 1.0, "direction_2": 0.6})


def test_order_free_labels_do_not_depend_on_which_digit_is_first():
  digits = np.array([[7, 3], [3, 7], [5, 5]])
  velocity = np.array([[[0.0, -1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, -1.0]], [[-1.0, 0.0], [-1.0, 0.1]]])
  labels = moving_mnist.order_free_labels(digits, velocity)
  np.testing.assert_array_equal(labels["digit_1"], [3, 3, 5])
  np.testing.assert_array_equal(labels["digit_2"], [7, 7, 5])
  np.testing.assert_array_equal(labels["direction_1"], [0, 0, 2])
  np.testing.assert_array_equal(labels["direction_2"], [3, 3, 2])


@needs_mnist
def test_train_videos_use_train_digits_and_test_videos_test_digits(small, mnist):
  assert small["test"]["source_index"].max() < 10000 <= small["train"]["source_index"].max() < 60000
  for split in moving_mnist.SPLITS:
    labels = mnist[split][1]
    np.testing.assert_array_equal(small[split]["digits"], labels[small[split]["source_index"]])


@needs_mnist
def test_videos_show_the_source_digits_on_their_reflected_paths(small, mnist):
  for split in moving_mnist.SPLITS:
    examples, images = small[split], mnist[split][0]
    positions = reflected(examples["start"], examples["velocity"], 16)  # [N, 2, T, 2]
    corners = np.rint(positions).astype(int)
    for index, video in enumerate(examples["video"][..., 0]):
      expected = np.zeros_like(video)  # [T, 64, 64]
      for digit, source in enumerate(examples["source_index"][index]):
        for frame, (x, y) in enumerate(corners[index, digit]):
          patch = expected[frame, y : y + 28, x : x + 28]
          patch[...] = np.maximum(patch, images[source])
      np.testing.assert_array_equal(video, expected, err_msg=f"{split} video {index}")


@needs_mnist
def test_first_frame_shows_each_digit_at_its_start(small, mnist):
  examples, images = small["train"], mnist["train"][0]
  exact = 0
  for index, first_frame in enumerate(examples["video"][:, 0, ..., 0]):
    corners = np.rint(examples["start"][index]).astype(int)  # [2, 2] as (x, y)
    apart = np.any(np.abs(corners[0] - corners[1]) >= 28)
    for (x, y), source in zip(corners, examples["source_index"][index]):
      crop = first_frame[y : y + 28, x : x + 28]
      assert np.all(crop >= images[source])
      if apart:
        np.testing.assert_array_equal(crop, images[source])
        exact += 1
  assert exact >= 10


@needs_mnist
def test_build_is_deterministic_from_the_seed(small, tmp_path):
  rebuilt = build(tmp_path, MNIST_DIR).as_data_source(split="train")
  for name, values in rebuilt[0].items():
    np.testing.assert_array_equal(values, small["train"][name][0])
  config = moving_mnist.MovingMnist.builder_configs["small"]
  starts = moving_mnist.video_parameters(config, "train", 60000)["start"]  # [64, 2, 2]
  by_first = lambda values: values[np.argsort(values[:, 0, 0])]
  np.testing.assert_array_equal(by_first(small["train"]["start"]), by_first(starts))
  other_config = dataclasses.replace(config, seed=1)
  other = moving_mnist.video_parameters(other_config, "train", 60000)["start"]
  assert not np.allclose(other, starts)
