"""MUG: the folder scan, clip cutting, the subject split and the TFDS builder on a fake tree."""

import os

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from data_pipelines.manual_data import ManualDataError
from data_pipelines.mug import fake
from data_pipelines.mug import mug

SUBJECTS = fake.subject_ids(6)


def build(data_dir, manual_dir) -> mug.Mug:
  """Builds the default MUG config as dsa_jax.data.load_source does."""
  builder = mug.Mug(data_dir=os.fspath(data_dir), file_format="array_record", config="default")
  download_config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir))
  builder.download_and_prepare(download_config=download_config)
  return builder


def stacked(source) -> dict[str, np.ndarray]:
  """Every example of a data source, each feature stacked along a new leading axis."""
  examples = [source[index] for index in range(len(source))]
  return {name: np.stack([example[name] for example in examples]) for name in examples[0]}


def resized(path: str) -> np.ndarray:
  """A fake 80x60 frame [64, 64, 3]: its centre 60x60 square, area-resized."""
  with Image.open(path) as image:
    assert image.size == (80, 60)
    square = image.convert("RGB").crop((10, 0, 70, 60))
  return np.asarray(square.resize((64, 64), Image.Resampling.BOX))


def frame_path(root: str, subject: int, expression: int, take: int, frame: int) -> str:
  """The fake tree's JPEG of a take's frame (0-based, in name order)."""
  expression_dir = os.path.join(root, "subjects3", f"{subject:03d}", mug.EXPRESSIONS[expression])
  return os.path.join(expression_dir, f"take{take:03d}", f"img_{frame + 1:04d}.jpg")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> str:
  return fake.write_fake_mug_tree(tmp_path_factory.mktemp("mug_manual"))


@pytest.fixture(scope="module")
def built(tmp_path_factory, tree) -> dict[str, dict[str, np.ndarray]]:
  builder = build(tmp_path_factory.mktemp("mug_tfds"), tree)
  return {split: stacked(builder.as_data_source(split=split)) for split in ("train", "test")}


def test_splits_hold_every_subject_in_exactly_one_split(built):
  train, test = set(built["train"]["subject"].tolist()), set(built["test"]["subject"].tolist())
  assert train | test == set(SUBJECTS) and not train & test
  assert len(test) == 1  # round(0.15 * 6)
  assert len(built["train"]["video"]) == 5 * 6 and len(built["test"]["video"]) == 6


def test_each_subject_has_one_clip_per_expression_and_skips_the_rest(built):
  for examples in built.values():
    for subject in set(examples["subject"].tolist()):
      expressions = examples["expression"][examples["subject"] == subject]
      assert sorted(expressions.tolist()) == list(range(6))
    assert examples["take"].tolist() == [0] * len(examples["take"])  # the short take001 is dropped
    assert examples["clip"].tolist() == [0] * len(examples["clip"])  # 34 frames -> 17 -> 1 clip


def test_shapes_and_dtypes(built):
  for examples in built.values():
    assert examples["video"].shape[1:] == (16, 64, 64, 3) and examples["video"].dtype == np.uint8
    for name in ("subject", "expression", "take", "clip"):
      assert examples[name].dtype == np.int64, name


def test_frames_are_every_second_jpeg_of_the_labelled_take(built, tree):
  for examples in built.values():
    labels = zip(examples["video"], examples["subject"], examples["expression"])
    for video, subject, expression in labels:
      np.testing.assert_array_equal(video[0], resized(frame_path(tree, subject, expression, 0, 0)))
  train = built["train"]
  video, subject, expression = train["video"][0], train["subject"][0], train["expression"][0]
  for index in range(16):
    kept = resized(frame_path(tree, subject, expression, 0, 2 * index))
    np.testing.assert_array_equal(video[index], kept)
    skipped = resized(frame_path(tree, subject, expression, 0, 2 * index + 1))
    assert np.abs(video[index].astype(int) - skipped).mean() > 5


def test_take_clips_sorts_subsamples_and_drops_the_rest():
  names = [f"img_{index:04d}.jpg" for index in range(1, 70)]
  clips = mug.take_clips(names[::-1], num_frames=16, subsample=2)
  assert clips == [tuple(names[0:32:2]), tuple(names[32:64:2])]
  assert mug.take_clips(names[:31], 16, 2) == [tuple(names[0:31:2])]
  assert mug.take_clips(names[:30], 16, 2) == []


def test_split_subjects_holds_out_fifteen_percent_deterministically():
  subjects = list(range(1, 105, 2))  # 52 ids
  train, test = mug.split_subjects(subjects, 0.15, seed=0)
  assert len(test) == 8 and train | test == set(subjects) and not train & test
  assert mug.split_subjects(subjects[::-1], 0.15, seed=0) == (train, test)
  assert mug.split_subjects(subjects, 0.15, seed=1)[1] != test
  assert [len(part) for part in mug.split_subjects([3, 9], 0.15, seed=0)] == [1, 1]
  with pytest.raises(ManualDataError, match="at least two subjects"):
    mug.split_subjects([3], 0.15, seed=0)


def test_manual_dir_may_be_the_subjects_folder_itself(tree):
  release = os.path.join(tree, "subjects3")
  assert mug.subjects_folder(tree) == release and mug.subjects_folder(release) == release
  clips = mug.find_clips(release, 16, 2)
  assert len(clips) == 36 and {clip.subject for clip in clips} == set(SUBJECTS)


def test_missing_or_empty_folder_raises_with_the_instructions(tmp_path):
  (tmp_path / "empty").mkdir()
  for manual_dir in (tmp_path / "absent", tmp_path / "empty"):
    with pytest.raises(ManualDataError, match="https://mug.ee.auth.gr/fed/") as raised:
      build(tmp_path / "tfds", manual_dir)
    assert str(manual_dir) in str(raised.value) and "subjects3/<subject id" in str(raised.value)


def test_a_tree_without_subjects_or_usable_takes_raises_a_clear_error(tmp_path):
  (tmp_path / "no_subjects" / "subjects3" / "readme").mkdir(parents=True)
  with pytest.raises(ManualDataError, match="No subject folders"):
    build(tmp_path / "tfds", tmp_path / "no_subjects")
  short = fake.write_fake_mug_tree(
      tmp_path / "short", num_subjects=2, frames_per_take=20, short_take_frames=0
  )
  expected = "2 subject folders and 12 takes .* no take has the 31 JPEG frames"
  with pytest.raises(ManualDataError, match=expected):
    build(tmp_path / "tfds", short)
  neutral_only = tmp_path / "neutral_only" / "subjects3" / "001" / "neutral" / "take000"
  neutral_only.mkdir(parents=True)
  with pytest.raises(ManualDataError, match="1 subject folders and 0 takes"):
    build(tmp_path / "tfds", tmp_path / "neutral_only")


def test_a_single_subject_cannot_be_split(tmp_path):
  one = fake.write_fake_mug_tree(tmp_path / "one", num_subjects=1, short_take_frames=0)
  with pytest.raises(ManualDataError, match="at least two subjects"):
    build(tmp_path / "tfds", one)


def test_an_unreadable_jpeg_is_named(tmp_path):
  path = tmp_path / "img_0001.jpg"
  path.write_bytes(b"not a jpeg")
  with pytest.raises(ManualDataError, match="img_0001.jpg"):
    mug.load_frame(str(path))
