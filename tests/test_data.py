"""The input pipeline: batch order from (seed, step), resume, and clear input errors."""

import os
import re
import shutil
import subprocess
import sys

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


def test_validation_videos_are_a_fixed_subset_held_out_of_train(data_dir):
  config = pendulum_config(data_dir)
  whole = data.load_source(config.data, "train")
  with pytest.raises(data.DataError, match="set config.data.validation_videos"):
    data.load_source(config.data, "validation")
  with config.unlocked():
    config.data.validation_videos = 10
  train, validation = data.load_source(config.data, "train"), data.load_source(config.data, "validation")
  assert (len(train), len(validation)) == (len(whole) - 10, 10)
  assert set(train.indices.tolist()).isdisjoint(validation.indices.tolist())
  assert sorted([*train.indices, *validation.indices]) == list(range(len(whole)))
  np.testing.assert_array_equal(data.load_source(config.data, "validation").indices, validation.indices)
  batch = data.read_batch(validation, np.array([3, 0]), num_frames=4)
  for row, index in enumerate(validation.indices[[3, 0]]):
    np.testing.assert_array_equal(batch["video"][row], whole[int(index)]["video"][:4])
  with config.unlocked():
    config.data.validation_videos = len(whole)
  with pytest.raises(data.DataError, match=f"validation_videos={len(whole)} must be above 0 and below"):
    data.load_source(config.data, "train")


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


PENDULUM_FOLDER = os.path.join("pendulum", "small", "1.0.0")
TRAIN_SHARD = "pendulum-train.array_record-00000-of-00001"


def copy_of_pendulum(data_dir: str, tmp_path) -> tuple[str, str]:
  """A copy of the session's built pendulum to damage: its data dir and its dataset folder."""
  copy = str(tmp_path / "tfds")
  shutil.copytree(data_dir, copy)
  return copy, os.path.join(copy, PENDULUM_FOLDER)


def assert_names_the_damage(error: data.DataError, folder: str, path: str, cause: type[Exception]) -> None:
  assert isinstance(error.__cause__, cause)
  assert str(error) == (
      f"The cached dataset pendulum/small/1.0.0 is damaged ({path}: {error.__cause__}). "
      f"Delete {folder} and rerun to rebuild it."
  )


def test_missing_tfds_data_dir_is_refused_not_created(tmp_path, monkeypatch):
  missing = tmp_path / "no" / "tfds"
  monkeypatch.setenv("TFDS_DATA_DIR", str(missing))
  default = os.path.expanduser("~/tensorflow_datasets")
  expected = (
      f"the environment variable TFDS_DATA_DIR={missing} does not exist. "
      f"Create it (mkdir -p {missing}) or unset it to use {default}."
  )
  with pytest.raises(data.DataError, match=f"^{re.escape(expected)}$"):
    data.load_source(pendulum_config(None).data, "train")
  assert not (tmp_path / "no").exists()


def test_data_dirs_expand_the_home_folder(data_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
  monkeypatch.chdir(tmp_path)  # an unexpanded "~/tfds" would be a folder named "~" here
  shutil.copytree(data_dir, tmp_path / "tfds")
  folder = str(tmp_path / "tfds" / PENDULUM_FOLDER)
  assert data.load_source(pendulum_config("~/tfds").data, "train").dataset_info.data_dir == folder
  monkeypatch.setenv("TFDS_DATA_DIR", "~/tfds")
  assert data.load_source(pendulum_config(None).data, "train").dataset_info.data_dir == folder
  missing = tmp_path / "nowhere"
  expected = (
      f"config.data.data_dir={missing} does not exist. Create it (mkdir -p {missing}) or "
      f"leave it unset to use $TFDS_DATA_DIR or {tmp_path / 'tensorflow_datasets'}."
  )
  with pytest.raises(data.DataError, match=f"^{re.escape(expected)}$"):
    data.load_source(pendulum_config("~/nowhere").data, "train")
  monkeypatch.delenv("TFDS_DATA_DIR")
  assert data.cache_dir(pendulum_config(None).data) == str(tmp_path / "tensorflow_datasets")
  assert not os.path.exists("~")


def test_dataset_full_name_is_the_folder_tfds_builds_into(tmp_path):
  for variant, full_name in ((None, "pendulum/default/1.0.0"), ("small", "pendulum/small/1.0.0")):
    config = pendulum_config(str(tmp_path), variant=variant).data
    assert data.dataset_full_name(config) == full_name
    assert os.fspath(data.make_builder(config).data_path) == os.path.join(tmp_path, full_name)


@pytest.mark.parametrize(
    "damage", [lambda path: os.truncate(path, os.path.getsize(path) // 2), os.remove], ids=["truncated", "deleted"]
)
def test_damaged_shard_names_the_file_and_the_folder_to_delete_then_rebuilds(data_dir, tmp_path, damage):
  copy, folder = copy_of_pendulum(data_dir, tmp_path)
  shard = os.path.join(folder, TRAIN_SHARD)
  damage(shard)
  config = pendulum_config(copy).data
  with pytest.raises(data.DataError) as raised:
    data.load_source(config, "train")
  assert_names_the_damage(raised.value, folder, shard, RuntimeError)
  shutil.rmtree(folder)
  rebuilt = data.load_source(config, "train")
  original = data.load_source(pendulum_config(data_dir).data, "train")
  everything = np.arange(56)
  assert len(rebuilt) == 56
  np.testing.assert_array_equal(data.read_batch(rebuilt, everything, 16)["video"], data.read_batch(original, everything, 16)["video"])


def test_corrupt_record_inside_a_shard_is_named_when_read(data_dir, tmp_path):
  copy, folder = copy_of_pendulum(data_dir, tmp_path)
  shard = os.path.join(folder, TRAIN_SHARD)
  with open(shard, "r+b") as file:  # the middle of the file: neither the first nor the last record
    file.seek(os.path.getsize(shard) // 2)
    file.write(b"\xff" * 200)
  source = data.load_source(pendulum_config(copy).data, "train")
  with pytest.raises(data.DataError) as raised:
    data.read_batch(source, np.arange(56), 16)
  assert_names_the_damage(raised.value, folder, shard, RuntimeError)
  iterator = data.BatchIterator(source, data.BatchSpec(batch_size=56, num_frames=16), seed=0)
  with pytest.raises(data.DataError) as raised:
    next(iterator)
  assert_names_the_damage(raised.value, folder, shard, RuntimeError)
  iterator.close()


@pytest.mark.parametrize(
    "filename, damage",
    [
        ("dataset_info.json", os.remove),
        ("dataset_info.json", lambda path: os.truncate(path, os.path.getsize(path) // 2)),
        ("features.json", os.remove),
    ],
    ids=["info_deleted", "info_truncated", "features_deleted"],
)
def test_missing_or_unreadable_metadata_names_the_file_and_the_folder_to_delete(data_dir, tmp_path, filename, damage):
  copy, folder = copy_of_pendulum(data_dir, tmp_path)
  path = os.path.join(folder, filename)
  damage(path)
  with pytest.raises(data.DataError) as raised:
    data.load_source(pendulum_config(copy).data, "train")
  assert_names_the_damage(raised.value, folder, path, (OSError, ValueError))


def test_processes_sharing_a_data_dir_build_the_dataset_once(tmp_path):
  script = (
      "import sys; from dsa_jax import data; from tests.conftest import pendulum_config; "
      "print('videos', len(data.load_source(pendulum_config(sys.argv[1]).data, 'train')))"
  )
  processes = [
      subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for _ in range(2)
  ]
  outputs = [process.communicate(timeout=300)[0] for process in processes]
  assert [process.returncode for process in processes] == [0, 0], outputs
  assert sum(output.count("Building dataset") for output in outputs) == 1, outputs
  assert len({output.strip().splitlines()[-1] for output in outputs}) == 1, outputs
