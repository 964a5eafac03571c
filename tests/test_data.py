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
  spec = data.BatchSpec(batch_size=5, num_frames=4)
  first = data.BatchIterator(source, spec, seed=3)
  again = data.BatchIterator(source, spec, seed=3)
  batches = [next(first) for _ in range(14)]  # crosses the epoch boundary (56 // 5 = 11)
  np.testing.assert_array_equal(next(again)["video"], batches[0]["video"])
  resumed = data.BatchIterator(source, spec, seed=3, start_step=12)
  for expected in batches[12:]:
    got = next(resumed)
    np.testing.assert_array_equal(got["video"], expected["video"])
    np.testing.assert_array_equal(got["colour"], expected["colour"])
  assert batches[0]["video"].shape == (5, 4, 64, 64, 3)
  for iterator in (first, again, resumed):
    iterator.close()


def test_random_crops_are_windows_of_the_clip_and_reproducible(data_dir):
  source = data.load_source(pendulum_config(data_dir).data, "train")
  spec = data.BatchSpec(batch_size=6, num_frames=5)
  batch = data.batch_at_step(source, spec, seed=1, step=2)
  members, crops = data.batch_plan(spec, 1, 2, len(source))
  starts = np.floor(crops[:, 0] * (16 - 5 + 1)).astype(int)
  assert len(set(starts.tolist())) > 1 and starts.min() >= 0 and starts.max() <= 11
  for row, (index, start) in enumerate(zip(members[:, 0], starts)):
    np.testing.assert_array_equal(batch["video"][row], source[int(index)]["video"][start : start + 5])
  np.testing.assert_array_equal(data.batch_at_step(source, spec, seed=1, step=2)["video"], batch["video"])
  fixed = data.batch_at_step(source, data.BatchSpec(6, 5, random_crop=False), seed=1, step=2)
  np.testing.assert_array_equal(fixed["video"][0], source[int(members[0, 0])]["video"][:5])


def test_identity_groups_share_the_identity_and_concatenate_in_time(data_dir):
  source = data.load_source(pendulum_config(data_dir).data, "train")
  identities = data.identity_labels(source, "pendulum")
  np.testing.assert_array_equal(identities, [source[i]["colour"] for i in range(len(source))])
  spec = data.BatchSpec(batch_size=7, num_frames=4, group_size=3)
  iterator = data.BatchIterator(source, spec, seed=0, identities=identities)
  for _ in range(3):
    batch = next(iterator)
    assert batch["video"].shape == (7, 12, 64, 64, 3) and batch["colour"].shape == (7, 3)
    np.testing.assert_array_equal(batch["colour"], batch["colour"][:, :1].repeat(3, axis=1))
    assert all(len(set(row)) == 3 for row in data.batch_plan(spec, 0, 0, len(source), identities)[0].tolist())
  iterator.close()
  with pytest.raises(data.DataError, match="identity labels"):
    data.batch_plan(spec, 0, 0, len(source))


def test_processes_read_disjoint_slices_of_the_global_batch(data_dir):
  source = data.load_source(pendulum_config(data_dir).data, "train")
  whole = data.BatchIterator(source, data.BatchSpec(6, 2), seed=0)
  halves = [data.BatchIterator(source, data.BatchSpec(3, 2), 0, process_index=i, process_count=2) for i in range(2)]
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


def test_downsample_is_the_rounded_block_mean():
  videos = np.random.default_rng(0).integers(0, 256, (3, 4, 64, 64, 3), dtype=np.uint8)
  for size in (8, 16, 32):
    blocks = videos.reshape(3, 4, size, 64 // size, size, 64 // size, 3)
    np.testing.assert_array_equal(data.downsample(videos, size), np.round(blocks.mean(axis=(-4, -2))).astype(np.uint8))
  with pytest.raises(data.DataError, match="must divide"):
    data.downsample(videos, 24)
  with pytest.raises(data.DataError, match="takes uint8 videos; got float32"):
    data.downsample(videos.astype(np.float32) / 255, 32)
