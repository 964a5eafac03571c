"""The input pipeline: batch order from (seed, step), resume, and clear input errors."""

import numpy as np
import pytest

from dsa_jax import data
from tests.conftest import pendulum_config


def test_batch_indices_are_epoch_permutations():
  size, batch = 10, 3
  epoch = np.concatenate([data.batch_indices(0, step, batch, size) for step in range(3)])
  assert len(set(epoch.tolist())) == 9  # 3 full batches per epoch, no repeats
  np.testing.assert_array_equal(epoch, data.epoch_permutation(0, 0, size)[:9])
  np.testing.assert_array_equal(data.batch_indices(0, 3, batch, size), data.epoch_permutation(0, 1, size)[:3])
  assert not np.array_equal(data.batch_indices(1, 0, batch, size), data.batch_indices(0, 0, batch, size))


def test_iterator_is_deterministic_and_resumes_at_any_step(data_dir):
  source = data.load_source(pendulum_config(data_dir).data, "train")
  first = data.BatchIterator(source, batch_size=5, num_frames=4, seed=3)
  again = data.BatchIterator(source, batch_size=5, num_frames=4, seed=3)
  batches = [next(first) for _ in range(14)]  # crosses the epoch boundary (56 // 5 = 11)
  np.testing.assert_array_equal(next(again)["video"], batches[0]["video"])
  resumed = data.BatchIterator(source, batch_size=5, num_frames=4, seed=3, start_step=12)
  for expected in batches[12:]:
    got = next(resumed)
    np.testing.assert_array_equal(got["video"], expected["video"])
    np.testing.assert_array_equal(got["colour"], expected["colour"])
  assert batches[0]["video"].shape == (5, 4, 64, 64, 3)
  for iterator in (first, again, resumed):
    iterator.close()


def test_processes_read_disjoint_slices_of_the_global_batch(data_dir):
  source = data.load_source(pendulum_config(data_dir).data, "train")
  whole = data.BatchIterator(source, batch_size=6, num_frames=2, seed=0)
  halves = [data.BatchIterator(source, 3, 2, 0, process_index=i, process_count=2) for i in range(2)]
  expected = next(whole)["video"]
  np.testing.assert_array_equal(np.concatenate([next(h)["video"] for h in halves]), expected)
  for iterator in (whole, *halves):
    iterator.close()


@pytest.mark.parametrize(
    "videos, message",
    [
        (np.zeros((2, 4, 64, 64), np.uint8), "shape"),
        (np.zeros((2, 4, 32, 32, 3), np.uint8), "shape"),
        (np.zeros((2, 4, 64, 64, 3), np.int32), "dtype"),
        (np.full((2, 4, 64, 64, 3), np.nan, np.float32), "NaN"),
        (np.full((2, 4, 64, 64, 3), 255.0, np.float32), r"\[0, 1\]"),
    ],
)
def test_bad_videos_give_clear_errors(videos, message):
  with pytest.raises(data.DataError, match=message):
    data.check_video_batch(videos, 4, (64, 64, 3))
  data.check_video_batch(np.zeros((2, 4, 64, 64, 3), np.uint8), 4, (64, 64, 3))


def test_missing_data_dir_names_the_fix(tmp_path):
  config = pendulum_config(str(tmp_path / "no" / "such" / "dir"))
  with pytest.raises(data.DataError, match="does not exist.*mkdir -p"):
    data.load_source(config.data, "train")


def test_unknown_dataset_lists_the_known_ones(tmp_path):
  config = pendulum_config(str(tmp_path))
  config.data.name = "pendulumm"
  with pytest.raises(data.DataError, match="pendulum"):
    data.load_source(config.data, "train")


def test_batch_larger_than_split_is_rejected():
  with pytest.raises(data.DataError, match="fewer than the batch size"):
    data.batch_indices(0, 0, 8, 5)
