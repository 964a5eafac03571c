"""The Sprites dataset: compositing against PIL, the standard split, labels and checksums."""

import hashlib
import os
import shutil

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

from data_pipelines.manual_data import ManualDataError
from data_pipelines.sprites import sprites
from dsa_jax import data
from tests.conftest import SHARED_DATA, shared_data_dir

LAYERS_DIR = os.path.join(SHARED_DATA, "lpc_sprites")
NO_LAYERS = f"no LPC sprite layers at {os.path.normpath(LAYERS_DIR)} (see sprites.py)"
needs_layers = pytest.mark.skipif(not os.path.isdir(LAYERS_DIR), reason=NO_LAYERS)

# The README's recipe, written out independently of sprites.py: motions in label order
# walk, spellcast, slash x front, left, right.
RECIPE_ROWS = (10, 9, 11, 2, 1, 3, 14, 13, 15)
RECIPE_COLUMNS = (
    ((8, 1, 2, 3, 4, 5, 6, 7),) * 3
    + ((0, 1, 2, 3, 4, 5, 4, 6),) * 3
    + ((0, 1, 2, 3, 4, 5, 4, 0),) * 3
)
RECIPE_FILES = ("body/{}.png", "bottomwear/{}.png", "topwear/{}.png", "hair/{}.png")

FIRST_TEST_IDS = [884, 1285, 252, 297, 947, 713, 1063, 643]
FIRST_TRAIN_IDS = [1116, 1135, 17, 469, 1293]
FRAME_SHA256 = {  # (character, action, frame) -> sha256 of the frame's uint8 bytes
    (0, 0, 0): "e3420fe11bcc296310685675fa1b77c3b8a5fda22f9c6350a7d46e9bc7ed2889",
    (1295, 8, 0): "218243647ef27d3d5f960c1e4572f71e2f6411db7c8e8bc9aa3a04a19c7f1669",
    (884, 4, 0): "3bb9e7e4f0849ccc187ddf4c21816e63dd36f7cdc853a44935abb947d8658242",
}
TEST_SPLIT_SHA256 = (  # every test video, ordered by (character, action)
    "8ef704fb8d7ec072325e0e64b1b2f5c3c6d521ee63ea5bf235a069604a527c38"
)


def sha256(array: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def pil_character_sheet(character: int) -> np.ndarray:
  """RGB [1344, 832, 3] of the README recipe, composited by PIL over whole sheets."""
  canvas = PIL.Image.new("RGBA", (832, 1344), (0, 0, 0, 255))
  files = [pattern.format(v) for pattern, v in zip(RECIPE_FILES, sprites.attributes_of(character))]
  for relative_path in files + ["shoes/1.png"]:
    with PIL.Image.open(os.path.join(LAYERS_DIR, relative_path)) as layer:
      canvas = PIL.Image.alpha_composite(canvas, layer.convert("RGBA"))
  return np.asarray(canvas.convert("RGB"))


def recipe_cell(sheet: np.ndarray, row: int, column: int) -> np.ndarray:
  return sheet[row * 64 : (row + 1) * 64, column * 64 : (column + 1) * 64]


def build(data_dir, manual_dir) -> tfds.core.DatasetBuilder:
  """The Sprites builder, prepared as dsa_jax.data.load_source prepares it."""
  builder = sprites.Sprites(data_dir=str(data_dir), file_format="array_record")
  manual_dir = None if manual_dir is None else str(manual_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


@pytest.fixture(scope="module")
def layers() -> sprites.Layers:
  if not os.path.isdir(LAYERS_DIR):
    pytest.skip(NO_LAYERS)
  return sprites.load_layers(LAYERS_DIR)


@pytest.fixture(scope="session")
def built() -> tfds.core.DatasetBuilder:
  """The full standard dataset, built once per session."""
  if not os.path.isdir(LAYERS_DIR):
    pytest.skip(NO_LAYERS)
  tfds.disable_progress_bar()
  directory = shared_data_dir("sprites")
  with data.building(sprites.Sprites(data_dir=directory).data_dir):  # the other worker may be building it
    return build(directory, LAYERS_DIR)


@pytest.fixture(scope="module")
def splits(built) -> dict[str, dict[str, np.ndarray]]:
  """Every example of both splits, as arrays per feature ([N, 8, 64, 64, 3] for the video)."""
  read = {}
  for split in ("train", "test"):
    source = built.as_data_source(split=split)
    examples = source.__getitems__(list(range(len(source))))
    read[split] = {key: np.stack([example[key] for example in examples]) for key in examples[0]}
  return read


def test_alpha_over_equals_pil_for_every_source_alpha_and_canvas_value():
  alpha, canvas_value = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")  # [256, 256]
  offsets = np.arange(0, 256, 3)  # channel c of block k holds source value 3k + c: all 256 values
  source = (offsets[:, None, None, None] + np.arange(3)) % 256  # [86, 1, 1, 3]
  shape = (offsets.size, 256, 256)
  colour = np.broadcast_to(source, (*shape, 3))
  layer = np.concatenate([colour, np.broadcast_to(alpha[..., None], (*shape, 1))], axis=-1)
  layer = layer.astype(np.uint8).reshape(-1, 256, 4)  # [86 * 256, 256, 4]
  canvas = np.broadcast_to(canvas_value[..., None], (*shape, 3)).astype(np.uint8)
  canvas = canvas.reshape(-1, 256, 3)  # [86 * 256, 256, 3]
  opaque = np.concatenate([canvas, np.full_like(canvas[..., :1], 255)], axis=-1)
  composite = PIL.Image.alpha_composite(
      PIL.Image.fromarray(opaque, "RGBA"), PIL.Image.fromarray(layer, "RGBA")
  )
  expected = np.asarray(composite)  # [86 * 256, 256, 4]
  assert np.all(expected[..., 3] == 255)
  np.testing.assert_array_equal(sprites.alpha_over(canvas, layer), expected[..., :3])


@needs_layers
@pytest.mark.parametrize("character", [0, 1295, 884, 437])
def test_character_equals_pil_composite_of_the_readme_recipe(layers, character):
  sheet = pil_character_sheet(character)
  expected = np.stack([
      np.stack([recipe_cell(sheet, row, column) for column in columns])
      for row, columns in zip(RECIPE_ROWS, RECIPE_COLUMNS)
  ])  # [9, 8, 64, 64, 3]
  np.testing.assert_array_equal(sprites.character_video(layers, character), expected)


@needs_layers
def test_frame_order_follows_the_readme(layers):
  sheet = pil_character_sheet(0)
  video = sprites.character_video(layers, 0)  # [9, 8, 64, 64, 3]
  walk_front, spellcast_front, slash_right = (
      sprites.MOTION_NAMES.index(name) for name in ("walk_front", "spellcast_front", "slash_right")
  )
  np.testing.assert_array_equal(video[walk_front, 0], recipe_cell(sheet, 10, 8))  # last column 1st
  np.testing.assert_array_equal(video[walk_front, 1], recipe_cell(sheet, 10, 1))
  np.testing.assert_array_equal(video[spellcast_front, 6], video[spellcast_front, 4])
  np.testing.assert_array_equal(video[spellcast_front, 7], recipe_cell(sheet, 2, 6))
  np.testing.assert_array_equal(video[slash_right, 7], recipe_cell(sheet, 15, 0))
  assert not np.array_equal(video[walk_front, 0], video[walk_front, 4])  # it moves


@needs_layers
def test_shared_compositing_equals_one_character_at_a_time(layers):
  characters = [13, 12, 17, 900, 899]
  produced = dict(sprites.character_videos(layers, characters))
  assert list(produced) == sorted(characters)
  for character in characters:
    np.testing.assert_array_equal(produced[character], sprites.character_video(layers, character))


def test_split_is_the_standard_seed_423_permutation():
  state = np.random.get_state()
  try:
    np.random.seed(423)
    permutation = np.random.permutation(1296)
  finally:
    np.random.set_state(state)
  train, test = sprites.split_character_ids()
  np.testing.assert_array_equal(train, permutation[:1000])
  np.testing.assert_array_equal(test, permutation[1000:])
  assert test[:8].tolist() == FIRST_TEST_IDS and train[:5].tolist() == FIRST_TRAIN_IDS


def test_character_ids_are_base_6_digits():
  assert sprites.attributes_of(0) == (0, 0, 0, 0) and sprites.attributes_of(1295) == (5, 5, 5, 5)
  assert sprites.attributes_of(5 * 216 + 2 * 36 + 3 * 6 + 1) == (5, 2, 3, 1)
  assert all(sprites.character_id(*sprites.attributes_of(c)) == c for c in range(1296))


@needs_layers
def test_frame_checksums(layers):
  for (character, action, frame), digest in FRAME_SHA256.items():
    frames = sprites.character_video(layers, character)[action]  # [8, 64, 64, 3]
    assert sha256(frames[frame]) == digest, (character, action, frame)


def test_built_splits_sizes_and_names(built):
  sizes = {name: split.num_examples for name, split in built.info.splits.items()}
  assert sizes == {"train": 9000, "test": 2664}
  features = built.info.features
  action_names = features["action"].names
  assert action_names[:4] == ["walk_front", "walk_left", "walk_right", "spellcast_front"]
  assert features["body"].names[0] == "light" and features["hair"].names[5] == "jewfro_purple"


def test_built_split_characters_and_labels(splits):
  _, test_ids = sprites.split_character_ids()
  assert set(splits["test"]["character"].tolist()) == set(test_ids.tolist())
  assert set(FIRST_TEST_IDS) <= set(splits["test"]["character"].tolist())
  assert not set(splits["train"]["character"].tolist()) & set(test_ids.tolist())
  for split, characters in (("train", 1000), ("test", 296)):
    labels = splits[split]
    assert labels["video"].shape == (9 * characters, 8, 64, 64, 3)
    assert labels["video"].dtype == np.uint8
    assert np.bincount(labels["action"], minlength=9).tolist() == [characters] * 9
    assert np.bincount(labels["character"]).max() == 9
    for position, name in enumerate(("body", "bottom", "top", "hair")):
      assert labels[name].min() == 0 and labels[name].max() == 5
      np.testing.assert_array_equal(labels[name], labels["character"] // 6 ** (3 - position) % 6)


def test_built_videos_match_the_compositor_and_checksums(splits, layers):
  test = splits["test"]
  order = np.lexsort((test["action"], test["character"]))
  assert sha256(test["video"][order]) == TEST_SPLIT_SHA256
  for (character, action, frame), digest in FRAME_SHA256.items():
    split = splits["test" if character in test["character"] else "train"]
    (index,) = np.flatnonzero((split["character"] == character) & (split["action"] == action))
    assert sha256(split["video"][index, frame]) == digest
    motions = sprites.character_video(layers, character)  # [9, 8, 64, 64, 3]
    np.testing.assert_array_equal(split["video"][index], motions[action])


def test_missing_folder_raises_manual_data_error(tmp_path):
  absent = tmp_path / "no_sprites_here"
  with pytest.raises(ManualDataError, match="no_sprites_here"):
    build(tmp_path / "tfds", absent)
  with pytest.raises(ManualDataError, match="does not exist"):
    build(tmp_path / "tfds_default", None)
  (tmp_path / "empty").mkdir()
  with pytest.raises(ManualDataError, match="lacks body/0.png"):
    build(tmp_path / "tfds_empty", tmp_path / "empty")


def copy_layers(destination) -> None:
  for relative_path in sprites.LAYER_FILES:
    os.makedirs(destination / os.path.dirname(relative_path), exist_ok=True)
    shutil.copyfile(os.path.join(LAYERS_DIR, relative_path), destination / relative_path)


@needs_layers
def test_folder_without_one_layer_raises_manual_data_error(tmp_path):
  copy_layers(tmp_path / "layers")
  os.remove(tmp_path / "layers" / "hair" / "3.png")
  with pytest.raises(ManualDataError, match="lacks hair/3.png") as error:
    build(tmp_path / "tfds", tmp_path / "layers")
  assert "YingzhenLi/Sprites" in str(error.value)


@needs_layers
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_layer_raises_manual_data_error(tmp_path, damage):
  copy_layers(tmp_path / "layers")
  sheet = tmp_path / "layers" / "topwear" / "2.png"
  content = sheet.read_bytes()
  sheet.write_bytes(b"not a png" * 100 if damage == "garbage" else content[: len(content) // 2])
  with pytest.raises(ManualDataError, match="topwear/2.png"):
    build(tmp_path / "tfds", tmp_path / "layers")
