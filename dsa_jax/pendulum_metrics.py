"""Reading a pendulum video's factors back from pixels: bob colour and swing angle.

These judge generated and swapped pendulum videos without a trained classifier: the bob is
the only saturated object (the rod is grey, the background black).
"""

import numpy as np

from data_pipelines.pendulum import pendulum

PALETTE = np.array([pendulum.COLOURS[name] for name in pendulum.COLOUR_NAMES], np.float64) / 255.0
MIN_SATURATION = 0.25
MIN_BRIGHTNESS = 0.2


def _saturation(frames: np.ndarray) -> np.ndarray:
  return frames.max(axis=-1) - frames.min(axis=-1)


def bob_colour(videos: np.ndarray) -> np.ndarray:
  """Colour class [N] of videos [N, T, H, W, 3] in [0, 1]: nearest palette entry to the
  saturation-weighted mean colour of saturated pixels (-1 where nothing is saturated)."""
  videos = np.asarray(videos, np.float64)
  saturation = _saturation(videos)
  weights = np.where(saturation > MIN_SATURATION, saturation, 0.0)  # [N, T, H, W]
  total = weights.sum(axis=(1, 2, 3))  # [N]
  mean = np.einsum("nthw,nthwc->nc", weights, videos) / np.maximum(total, 1e-9)[:, None]
  # compare chromaticity (colour over brightness) so dim reconstructions still match
  chroma = mean / np.maximum(mean.max(axis=-1, keepdims=True), 1e-9)
  palette_chroma = PALETTE / PALETTE.max(axis=-1, keepdims=True)
  distances = np.linalg.norm(chroma[:, None, :] - palette_chroma[None], axis=-1)  # [N, 7]
  return np.where(total > 0, distances.argmin(axis=-1), -1)


def bob_angles(videos: np.ndarray) -> np.ndarray:
  """Swing angle [N, T] (radians, 0 = hanging down) of the bright pixels' centroid seen from
  the pivot (rod and bob lie on one line from the pivot, so both count, whatever the colour)."""
  videos = np.asarray(videos, np.float64)
  height, width = videos.shape[2:4]
  brightness = videos.max(axis=-1)
  weights = np.where(brightness > MIN_BRIGHTNESS, brightness, 0.0)  # [N, T, H, W]
  total = np.maximum(weights.sum(axis=(2, 3)), 1e-9)  # [N, T]
  ys, xs = np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64)
  centre_x = np.einsum("nthw,w->nt", weights, xs) / total
  centre_y = np.einsum("nthw,h->nt", weights, ys) / total
  return np.arctan2(centre_x - pendulum.PIVOT[0], centre_y - pendulum.PIVOT[1])


def angle_agreement(first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """Per-video Pearson correlation [N] between two [N, T] angle sequences."""
  first = first - first.mean(axis=1, keepdims=True)
  second = second - second.mean(axis=1, keepdims=True)
  norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
  return (first * second).sum(axis=1) / np.maximum(norms, 1e-12)
