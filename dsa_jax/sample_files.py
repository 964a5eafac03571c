"""The sample files of a trained model (PNG grids and GIFs) and its TensorBoard pictures, over a codec.

Files in the output folder, each as NAME.png (a row per video, a column per frame) and NAME.gif:
`reconstructions` (test video, reconstruction), `swap` (static source, dynamics source, result),
`swap_grid` (rows: static sources, columns: dynamics sources; VDSM's action transfer),
`generation` (both codes from the priors) and `continuation` (each test video's codes, then the
priors, to the horizon).
"""

import os

import jax
import numpy as np

from dsa_jax import sampling, visualize
from dsa_jax.codecs import Codec


def _interleave(*videos: np.ndarray) -> np.ndarray:
  """[N, T, ...] arrays -> [N * k, T, ...] with their rows interleaved (a, b, c, a, b, c, ...)."""
  return np.stack(videos, axis=1).reshape(-1, *videos[0].shape[1:])


def write_samples(codec: Codec, videos, key: jax.Array, out_dir: str, num_frames: int) -> list[str]:
  """Writes the sample files of test videos [N, T, ...] (N >= 2) into out_dir; returns their paths."""
  videos = np.asarray(videos, np.float32)
  half = videos.shape[0] // 2
  if half < 1:
    raise ValueError(f"Sample files need at least 2 test videos; got {videos.shape[0]}. Raise config.sample.num_videos.")
  static_source, dynamic_source = videos[:half], videos[half : 2 * half]
  keys = jax.random.split(key, 5)
  reconstructions = np.asarray(sampling.reconstruct(codec, videos, keys[0]))
  swapped = np.asarray(sampling.swap(codec, static_source, dynamic_source, keys[1]))
  grid = np.asarray(sampling.swap_grid(codec, static_source, dynamic_source, keys[2], num_frames))
  pictures = {
      "reconstructions": (_interleave(videos, reconstructions), 2),
      "swap": (_interleave(static_source, dynamic_source, swapped), 3),
      "swap_grid": (grid.reshape(-1, *grid.shape[2:]), grid.shape[1]),
      "generation": (np.asarray(sampling.generate(codec, keys[3], videos.shape[0], num_frames)), 1),
      "continuation": (np.asarray(sampling.continue_video(codec, videos, keys[4], num_frames)), 1),
  }
  scale = visualize.display_scale(videos.shape[3])
  paths = []
  for name, (frames, columns) in pictures.items():
    paths.append(visualize.save_png(visualize.filmstrip(frames), os.path.join(out_dir, f"{name}.png"), scale))
    rows = frames.reshape(-1, columns, *frames.shape[1:])  # the GIF shows `columns` videos per row
    paths.append(visualize.save_gif(visualize.video_grid(rows), os.path.join(out_dir, f"{name}.gif"), scale=scale))
  return paths


def summary_pictures(codec: Codec, videos, key: jax.Array, num_frames: int) -> dict[str, np.ndarray]:
  """TensorBoard pictures of test videos [N, T, ...]: reconstructions and generations, as images and videos."""
  videos = np.asarray(videos, np.float32)
  reconstruct_key, generate_key = jax.random.split(key)
  pairs = np.stack([videos, np.asarray(sampling.reconstruct(codec, videos, reconstruct_key))], axis=1)  # [N, 2, T, ...]
  generated = np.asarray(sampling.generate(codec, generate_key, videos.shape[0], num_frames))  # [N, T', ...]
  return {
      "reconstructions": visualize.filmstrip(pairs.reshape(-1, *videos.shape[1:])),
      "reconstruction_videos": visualize.video_grid(pairs),
      "generation": visualize.filmstrip(generated),
      "generation_videos": visualize.video_grid(generated[None]),
  }
