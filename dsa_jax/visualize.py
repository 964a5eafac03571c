"""Image and video grids written as PNG and GIF files and as TensorBoard summaries."""

import io
import os

import numpy as np
from PIL import Image
from tensorboardX.proto import summary_pb2


def to_uint8(frames: np.ndarray) -> np.ndarray:
  """Float frames in [0, 1] (or uint8) -> uint8."""
  frames = np.asarray(frames)
  if frames.dtype == np.uint8:
    return frames
  return np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8)


def to_rgb(frames: np.ndarray) -> np.ndarray:
  """Frames [..., H, W, 1] (grey) or [..., H, W, 3] -> [..., H, W, 3]."""
  if frames.shape[-1] == 1:
    return np.repeat(frames, 3, axis=-1)
  if frames.shape[-1] != 3:
    raise ValueError(f"Frames must have 1 or 3 channels; got shape {frames.shape}.")
  return frames


def video_grid(videos: np.ndarray, padding: int = 1, pad_value: int = 255) -> np.ndarray:
  """[R, C, T, H, W, 1 or 3] videos -> [T, R*(H+p)+p, C*(W+p)+p, 3] RGB frames of one grid."""
  videos = to_rgb(to_uint8(videos))
  rows, cols, time, height, width, _ = videos.shape
  grid = np.full(
      (time, rows * (height + padding) + padding, cols * (width + padding) + padding, 3),
      pad_value,
      np.uint8,
  )
  for r in range(rows):
    for c in range(cols):
      top, left = padding + r * (height + padding), padding + c * (width + padding)
      grid[:, top : top + height, left : left + width] = videos[r, c]
  return grid


def filmstrip(videos: np.ndarray, padding: int = 1) -> np.ndarray:
  """[N, T, H, W, 1 or 3] videos -> one RGB image with a row per video and a column per frame."""
  videos = np.asarray(videos)
  frames_as_cells = videos[:, :, None]  # [N, T, 1, H, W, C]: each frame a one-frame video
  return video_grid(frames_as_cells, padding)[0]


def display_scale(width: int) -> int:
  """Nearest-neighbour upscaling that shows frames at least 128 pixels wide."""
  return max(1, -(-128 // width))


def write_atomically(path: str, content: bytes) -> str:
  """Writes content to path through a temporary file in its folder, so path is never half-written."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  temporary = os.path.join(directory, f".{os.path.basename(path)}.tmp")
  with open(temporary, "wb") as file:
    file.write(content)
  os.replace(temporary, path)
  return path


def pyplot():
  """matplotlib's pyplot on the file-only Agg backend (imported on first use: plotting is optional at start-up)."""
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel

  return plt


def save_figure(figure, path: str, dpi: int = 100) -> str:
  """Writes a matplotlib figure to path as PNG, atomically, and closes it."""
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=dpi)
  pyplot().close(figure)
  return write_atomically(path, buffer.getvalue())


def save_png(image: np.ndarray, path: str, scale: int = 1) -> str:
  """Writes an [H, W, 3] image (nearest-neighbour upscaled) to path, atomically."""
  picture = Image.fromarray(to_uint8(image))
  if scale > 1:
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
  buffer = io.BytesIO()
  picture.save(buffer, format="PNG")
  return write_atomically(path, buffer.getvalue())


def gif_bytes(frames: np.ndarray, fps: float = 8.0, scale: int = 1) -> bytes:
  """[T, H, W, 3] frames encoded as a looping GIF (nearest-neighbour upscaled)."""
  pictures = [Image.fromarray(frame) for frame in to_uint8(frames)]
  if scale > 1:
    pictures = [p.resize((p.width * scale, p.height * scale), Image.NEAREST) for p in pictures]
  buffer = io.BytesIO()
  pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=int(1000 / fps), loop=0)
  return buffer.getvalue()


def save_gif(frames: np.ndarray, path: str, fps: float = 8.0, scale: int = 1) -> str:
  """Writes [T, H, W, 3] frames as a looping GIF, atomically."""
  return write_atomically(path, gif_bytes(frames, fps, scale))


def gif_summary(tag: str, frames: np.ndarray, fps: float = 8.0) -> summary_pb2.Summary:
  """A TensorBoard image summary holding [T, H, W, 3] frames as an animated GIF (shown in Images)."""
  frames = to_uint8(frames)
  image = summary_pb2.Summary.Image(
      height=frames.shape[1], width=frames.shape[2], colorspace=3, encoded_image_string=gif_bytes(frames, fps)
  )
  return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)])
