"""Figures of the Sprites data, rendered straight from the LPC layer sheets.

  python -m data_pipelines.sprites.figures --manual_dir=../shared/data/lpc_sprites --out_dir=DIR

writes DIR/sprites_motions.png (one character: a row per motion in label order, walk,
spellcast, slash x front, left, right; a column per frame) and DIR/sprites_attributes.png
(a row per attribute, body, bottom, top, hair; column k shows variant k with the other three
attributes of --base_character; front walk, frame 0). Cells are upscaled 2x.
"""

import os

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
from absl import app, flags

from data_pipelines.sprites import sprites

SCALE = 2
GAP = 2  # pixels between cells, after upscaling
LABEL_WIDTH = 120
CAPTION_HEIGHT = 14
BACKGROUND = (64, 64, 64)
TEXT = (255, 255, 255)

_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Folder with the LPC layer sheets.", required=True)
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where to write the PNG files.", required=True)
_CHARACTER = flags.DEFINE_integer("character", 0, "Character id of the motions figure.")
_BASE_CHARACTER = flags.DEFINE_integer(
    "base_character", 0, "Character whose attributes are varied one at a time."
)


def labelled_grid(
    cells: np.ndarray, row_labels: list[str], captions: list[list[str]] | None = None
) -> PIL.Image.Image:
  """Cells [R, C, 64, 64, 3] as an upscaled grid with a label left of each row."""
  rows, columns, height, width, _ = cells.shape
  cell_height = height * SCALE + GAP + (CAPTION_HEIGHT if captions else 0)
  cell_width = width * SCALE + GAP
  figure = PIL.Image.new("RGB", (LABEL_WIDTH + columns * cell_width, rows * cell_height), BACKGROUND)
  draw = PIL.ImageDraw.Draw(figure)
  font = PIL.ImageFont.load_default()
  for row in range(rows):
    top = row * cell_height
    draw.text((4, top + height * SCALE // 2 - 6), row_labels[row], fill=TEXT, font=font)
    for column in range(columns):
      left = LABEL_WIDTH + column * cell_width
      cell = PIL.Image.fromarray(cells[row, column]).resize(
          (width * SCALE, height * SCALE), PIL.Image.Resampling.NEAREST
      )
      figure.paste(cell, (left, top))
      if captions:
        draw.text((left, top + height * SCALE), captions[row][column], fill=TEXT, font=font)
  return figure


def motions_figure(layers: sprites.Layers, character: int) -> PIL.Image.Image:
  """The 9 motions (rows, label order) x 8 frames (columns) of one character."""
  return labelled_grid(sprites.character_video(layers, character), list(sprites.MOTION_NAMES))


def attributes_figure(layers: sprites.Layers, base_character: int) -> PIL.Image.Image:
  """Rows body, bottom, top, hair; column k sets that attribute to variant k (front walk, frame 0)."""
  base = sprites.attributes_of(base_character)
  front_walk = sprites.MOTION_NAMES.index("walk_front")
  cells = np.empty((len(sprites.ATTRIBUTES), sprites.NUM_VARIANTS, 64, 64, 3), np.uint8)
  for row in range(len(sprites.ATTRIBUTES)):
    for variant in range(sprites.NUM_VARIANTS):
      attributes = base[:row] + (variant,) + base[row + 1 :]
      video = sprites.character_video(layers, sprites.character_id(*attributes))
      cells[row, variant] = video[front_walk, 0]
  captions = [list(names) for names in sprites.ATTRIBUTES.values()]
  return labelled_grid(cells, list(sprites.ATTRIBUTES), captions)


def main(argv):
  del argv
  layers = sprites.load_layers(_MANUAL_DIR.value)
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  figures = {
      "sprites_motions.png": motions_figure(layers, _CHARACTER.value),
      "sprites_attributes.png": attributes_figure(layers, _BASE_CHARACTER.value),
  }
  for name, figure in figures.items():
    path = os.path.join(_OUT_DIR.value, name)
    figure.save(path)
    print(f"Wrote {path}")


if __name__ == "__main__":
  app.run(main)
