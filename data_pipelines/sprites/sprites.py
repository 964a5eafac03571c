"""Sprites: the standard LPC-character video benchmark of Li & Mandt (ICML 2018, DSA).

1296 characters (body, bottom, top, hair: 6 variants each) x 9 motions (walk, spellcast,
slash x front, left, right), 8 frames of 64x64 RGB each. A character is its four layers,
then golden boots, alpha-composited over opaque black, exactly as PIL's
`Image.alpha_composite` does it. The characters are split 1000 train / 296 test by the
legacy numpy RNG seeded 423, so there are 9000 train and 2664 test sequences; all 9
motions of a character fall in the same split.

Frames are stored as uint8 RGB. (The reference loader divides by 256, not 255, to get
floats; that scaling belongs to the input pipeline, not to the stored data.)
The art is dual-licensed CC-BY-SA 3.0 / GPL 3.0: credit the LPC artists when publishing.
"""

import itertools
import os
from typing import NamedTuple

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

from data_pipelines.manual_data import ManualDataError, require_files

IMAGE_SIZE = 64
NUM_FRAMES = 8
NUM_VARIANTS = 6
NUM_CHARACTERS = NUM_VARIANTS**4
NUM_TRAIN_CHARACTERS = 1000
SPLIT_SEED = 423
SHEET_ROWS, SHEET_COLUMNS = 21, 13

ATTRIBUTES = {  # class names, in file order 0..5 of each layer folder
    "body": ("light", "tanned2", "darkelf", "darkelf2", "dark", "dark2"),
    "bottom": (
        "white_pants", "golden_greaves", "red_pants", "metal_pants", "teal_pants", "formal_pants",
    ),
    "top": (
        "maroon_longsleeve", "teal_longsleeve", "white_longsleeve", "plate_chest", "leather_chest",
        "formal_shirt_tie",
    ),
    "hair": (
        "messy2_green2", "longknot_blue2", "messy1_light_blonde", "bangs_white", "plain_ruby_red",
        "jewfro_purple",
    ),
}
LAYER_FOLDERS = {"body": "body", "bottom": "bottomwear", "top": "topwear", "hair": "hair"}
SHOES_FILE = os.path.join("shoes", "1.png")
LAYER_FILES = tuple(
    os.path.join(folder, f"{variant}.png")
    for folder in LAYER_FOLDERS.values()
    for variant in range(NUM_VARIANTS)
) + (SHOES_FILE,)

ACTIONS = ("walk", "spellcast", "slash")
DIRECTIONS = ("front", "left", "right")
MOTIONS = tuple((action, direction) for action in ACTIONS for direction in DIRECTIONS)
MOTION_NAMES = tuple(f"{action}_{direction}" for action, direction in MOTIONS)  # label 3a + d
MOTION_ROWS = {  # sheet row of each direction; rows 8-11 walk, 0-3 spellcast, 12-15 slash
    "walk": {"front": 10, "left": 9, "right": 11},
    "spellcast": {"front": 2, "left": 1, "right": 3},
    "slash": {"front": 14, "left": 13, "right": 15},
}
FRAME_COLUMNS = {  # sheet column of each of the 8 frames
    "walk": (8, 1, 2, 3, 4, 5, 6, 7),
    "spellcast": (0, 1, 2, 3, 4, 5, 4, 6),
    "slash": (0, 1, 2, 3, 4, 5, 4, 0),
}

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Sprites is composited from Liberated Pixel Cup (LPC) sprite sheets: 832x1344 PNG files
(13 x 21 cells of 64x64), dual-licensed CC-BY-SA 3.0 / GPL 3.0.
Put these 25 files in one folder and set config.data.manual_dir to it (in this project's
checkout the folder is ../shared/data/lpc_sprites, relative to the repository root):
  body/0.png .. body/5.png, bottomwear/0.png .. bottomwear/5.png,
  topwear/0.png .. topwear/5.png, hair/0.png .. hair/5.png, shoes/1.png
Get them from the top-level folders of the same names in https://github.com/YingzhenLi/Sprites
(commit 3ce4048), or from https://github.com/jrconway3/Universal-LPC-spritesheet, renamed:
  body/0..5       body/male/{light,tanned2,darkelf,darkelf2,dark,dark2}.png
  bottomwear/0..5 legs/pants/male/white_pants_male.png, legs/armor/male/golden_greaves_male.png,
                  legs/pants/male/red_pants_male.png, legs/armor/male/metal_pants_male.png,
                  legs/pants/male/teal_pants_male.png, formal_male_no_th-sh/pants.png
  topwear/0..5    torso/shirts/longsleeve/male/{maroon,teal,white}_longsleeve.png,
                  torso/plate/chest_male.png, torso/leather/chest_male.png,
                  formal_male_no_th-sh/shirt.png with tie.png alpha-composited over it
  hair/0..5       hair/male/messy2/green2.png, hair/male/longknot/blue2.png,
                  hair/male/messy1/light-blonde.png, hair/male/bangs/white.png,
                  hair/male/plain/ruby-red.png, hair/male/jewfro/purple.png
  shoes/1         feet/armor/male/golden_boots_male.png
"""


class Layers(NamedTuple):
  """The motion cells of every layer sheet, RGBA uint8 frames in motion-label order."""

  body: np.ndarray  # [6, 9, 8, 64, 64, 4]
  bottom: np.ndarray  # [6, 9, 8, 64, 64, 4]
  top: np.ndarray  # [6, 9, 8, 64, 64, 4]
  hair: np.ndarray  # [6, 9, 8, 64, 64, 4]
  shoes: np.ndarray  # [9, 8, 64, 64, 4]


def attributes_of(character: int) -> tuple[int, int, int, int]:
  """(body, bottom, top, hair) of a character id: its base-6 digits."""
  body, rest = divmod(character, NUM_VARIANTS**3)
  bottom, rest = divmod(rest, NUM_VARIANTS**2)
  top, hair = divmod(rest, NUM_VARIANTS)
  return body, bottom, top, hair


def character_id(body: int, bottom: int, top: int, hair: int) -> int:
  """The character id of four attribute variants: body*216 + bottom*36 + top*6 + hair."""
  return ((body * NUM_VARIANTS + bottom) * NUM_VARIANTS + top) * NUM_VARIANTS + hair


def split_character_ids() -> tuple[np.ndarray, np.ndarray]:
  """Train ids [1000] and test ids [296]: the standard permutation of the legacy RNG seeded 423."""
  # RandomState(seed) is the stream np.random.seed(seed) gives the global RNG, without touching it.
  permutation = np.random.RandomState(SPLIT_SEED).permutation(NUM_CHARACTERS)
  return permutation[:NUM_TRAIN_CHARACTERS], permutation[NUM_TRAIN_CHARACTERS:]


def read_sheet(path: str) -> np.ndarray:
  """A layer sheet as RGBA uint8 [1344, 832, 4]; ManualDataError names an unreadable file."""
  try:
    with PIL.Image.open(path) as image:
      rgba = np.asarray(image.convert("RGBA"))
  except (OSError, ValueError, SyntaxError) as error:
    raise ManualDataError(
        f"Cannot read the sprite sheet {path} ({error}). Replace it with an intact copy.\n"
        f"{MANUAL_DOWNLOAD_INSTRUCTIONS}"
    ) from error
  expected = (SHEET_ROWS * IMAGE_SIZE, SHEET_COLUMNS * IMAGE_SIZE, 4)
  if rgba.shape != expected:
    raise ManualDataError(
        f"The sprite sheet {path} is {rgba.shape[1]}x{rgba.shape[0]} pixels, not "
        f"{expected[1]}x{expected[0]}.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )
  return rgba


def motion_cells(sheet: np.ndarray) -> np.ndarray:
  """The 9 motions' frames [9, 8, 64, 64, C] of a sheet [1344, 832, C], in label order."""
  cells = sheet.reshape(SHEET_ROWS, IMAGE_SIZE, SHEET_COLUMNS, IMAGE_SIZE, -1).swapaxes(1, 2)
  rows = np.array([MOTION_ROWS[action][direction] for action, direction in MOTIONS])  # [9]
  columns = np.array([FRAME_COLUMNS[action] for action, _ in MOTIONS])  # [9, 8]
  return cells[rows[:, None], columns]  # [9, 8, 64, 64, C]


def load_layers(manual_dir: str) -> Layers:
  """Decodes the 25 layer sheets of manual_dir once, keeping only their motion cells."""

  def cells(relative_path):
    return motion_cells(read_sheet(os.path.join(manual_dir, relative_path)))

  variants = {
      name: np.stack([cells(os.path.join(folder, f"{v}.png")) for v in range(NUM_VARIANTS)])
      for name, folder in LAYER_FOLDERS.items()
  }
  return Layers(**variants, shoes=cells(SHOES_FILE))


def alpha_over(canvas: np.ndarray, layer: np.ndarray) -> np.ndarray:
  """RGBA layer [..., 4] over opaque RGB canvas [..., 3] -> uint8 [..., 3], as PIL composites."""
  alpha = layer[..., 3:].astype(np.uint32)
  weighted = layer[..., :3] * alpha + canvas * (255 - alpha)
  # PIL's alpha_composite onto an opaque destination reduces to this rounded division by 255
  # (its fixed-point path gives the same integers for every source, alpha and destination).
  return ((weighted + 127) // 255).astype(np.uint8)


def paint(canvas: np.ndarray, layer: np.ndarray) -> None:
  """Composites an RGBA layer [..., 4] over an opaque RGB canvas [..., 3] in place."""
  pixels = np.reshape(canvas, (-1, 3), copy=False)  # [P, 3], a view: writes land in canvas
  rgba = layer.reshape(-1, 4)  # [P, 4]
  covered = np.flatnonzero(rgba[:, 3])  # transparent pixels leave the canvas as it is
  pixels[covered] = alpha_over(pixels[covered], rgba[covered])


def dress(layers: Layers, body: int, bottom: int, top: int) -> np.ndarray:
  """Frames [9, 8, 64, 64, 3] of body, bottom and top over opaque black (no hair, boots)."""
  canvas = np.zeros((*layers.shoes.shape[:-1], 3), np.uint8)
  for layer in (layers.body[body], layers.bottom[bottom], layers.top[top]):
    paint(canvas, layer)
  return canvas


def finish(layers: Layers, dressed: np.ndarray, hair: int) -> np.ndarray:
  """Frames [9, 8, 64, 64, 3] of a dressed character with its hair and the boots on top."""
  canvas = dressed.copy()
  paint(canvas, layers.hair[hair])
  paint(canvas, layers.shoes)
  return canvas


def character_video(layers: Layers, character: int) -> np.ndarray:
  """All 9 motions [9, 8, 64, 64, 3] uint8 of one character."""
  body, bottom, top, hair = attributes_of(character)
  return finish(layers, dress(layers, body, bottom, top), hair)


def character_videos(layers: Layers, characters):
  """Yields (id, motions [9, 8, 64, 64, 3]) in ascending id order, sharing work across hair."""
  for prefix, group in itertools.groupby(sorted(characters), key=lambda c: c // NUM_VARIANTS):
    body, bottom, top, _ = attributes_of(prefix * NUM_VARIANTS)
    dressed = dress(layers, body, bottom, top)
    for character in group:
      yield int(character), finish(layers, dressed, character % NUM_VARIANTS)


class Sprites(tfds.core.GeneratorBasedBuilder):
  """LPC sprite videos with body/bottom/top/hair (static) and motion (dynamic) labels."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: the standard DSA recipe."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  HELD_OUT_BY = "character"  # train and test share no character; so do train and validation (dsa_jax.data)
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(
          name="default", description="The standard set: 1296 characters x 9 motions, 8 frames."
      ),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(
                shape=(NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3),
                dtype=np.uint8,
                encoding=tfds.features.Encoding.ZLIB,
            ),
            **{name: tfds.features.ClassLabel(names=names) for name, names in ATTRIBUTES.items()},
            "action": tfds.features.ClassLabel(names=MOTION_NAMES),
            "character": tfds.features.Scalar(dtype=np.int64),
        }),
        homepage="https://github.com/YingzhenLi/Sprites",
    )

  def _split_generators(self, dl_manager):
    try:
      manual_dir = dl_manager.manual_dir
    except AssertionError:
      # TFDS refuses a missing or empty folder without naming the files it needs.
      manual_dir = getattr(dl_manager, "_manual_dir", None)
    manual_dir = require_files(manual_dir, LAYER_FILES, MANUAL_DOWNLOAD_INSTRUCTIONS)
    layers = load_layers(manual_dir)
    train_ids, test_ids = split_character_ids()
    return {
        "train": self._generate_examples(layers, train_ids),
        "test": self._generate_examples(layers, test_ids),
    }

  def _generate_examples(self, layers: Layers, characters: np.ndarray):
    for character, motions in character_videos(layers, characters):
      labels = dict(zip(ATTRIBUTES, attributes_of(character)))
      for action, (video, name) in enumerate(zip(motions, MOTION_NAMES)):
        yield f"{character}_{name}", {
            "video": video,
            **labels,
            "action": action,
            "character": character,
        }
