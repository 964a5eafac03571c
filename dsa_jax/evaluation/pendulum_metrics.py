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
  pixel = width / pendulum.IMAGE_SIZE  # frames may be downsampled from the rendered size
  pivot_x, pivot_y = (pendulum.PIVOT[0] + 0.5) * pixel - 0.5, (pendulum.PIVOT[1] + 0.5) * pixel - 0.5
  return np.arctan2(centre_x - pivot_x, centre_y - pivot_y)


def angle_agreement(first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """Per-video Pearson correlation [N] between two [N, T] angle sequences."""
  first = first - first.mean(axis=1, keepdims=True)
  second = second - second.mean(axis=1, keepdims=True)
  norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
  return (first * second).sum(axis=1) / np.maximum(norms, 1e-12)


def fraction(hits: np.ndarray) -> float | None:
  """The mean of booleans [N]; None (JSON null) for none."""
  return float(np.mean(hits)) if hits.size else None


def swap_statistics(swapped: np.ndarray, static_source: np.ndarray, dynamic_source: np.ndarray) -> dict[str, float]:
  """How a static/dynamic swap of pendulum videos [N, T, H, W, 3] in [0, 1] came out.

  Over pairs whose sources differ in colour: the fraction of swaps showing the static
  source's colour and the dynamic source's colour; over all pairs: the mean correlation of
  the swap's swing angle with each source's.
  """
  swapped_colour = bob_colour(swapped)
  static_colour, dynamic_colour = bob_colour(static_source), bob_colour(dynamic_source)
  differ = static_colour != dynamic_colour
  swapped_angles = bob_angles(swapped)
  return {
      "pairs_of_different_colour": int(differ.sum()),
      "colour_follows_static_source": fraction(swapped_colour[differ] == static_colour[differ]),
      "colour_follows_dynamic_source": fraction(swapped_colour[differ] == dynamic_colour[differ]),
      "swing_correlation_with_dynamic_source": float(np.mean(angle_agreement(swapped_angles, bob_angles(dynamic_source)))),
      "swing_correlation_with_static_source": float(np.mean(angle_agreement(swapped_angles, bob_angles(static_source)))),
  }


SPEED_BOUNDARY_PERIOD = float(np.sqrt(np.prod(list(pendulum.SMALL_ANGLE_PERIOD_FRAMES.values()))))


def swing_period(angles: np.ndarray) -> np.ndarray:
  """Dominant period in frames [N] of angle series [N, T]: the peak of the detrended spectrum."""
  detrended = angles - angles.mean(axis=1, keepdims=True)
  padded_length = max(512, 8 * angles.shape[1])
  spectrum = np.abs(np.fft.rfft(detrended * np.hanning(angles.shape[1]), n=padded_length, axis=1))
  frequencies = np.fft.rfftfreq(padded_length)
  usable = (frequencies >= 1.0 / (2.0 * angles.shape[1])) & (frequencies <= 0.25)  # periods 4 frames .. 2T
  best = np.argmax(np.where(usable, spectrum, -np.inf), axis=1)
  return 1.0 / frequencies[best]


def swing_speed(videos: np.ndarray) -> np.ndarray:
  """Speed class [N] (index into pendulum.SPEEDS) from each video's swing period."""
  fast = swing_period(bob_angles(videos)) < SPEED_BOUNDARY_PERIOD
  return np.where(fast, pendulum.SPEEDS.index("fast"), pendulum.SPEEDS.index("slow"))


def transfer_statistics(
    transferred: np.ndarray, identity_colour: np.ndarray, action_speed: np.ndarray,
    identity_speed: np.ndarray, action_colour: np.ndarray,
) -> dict[str, float]:
  """Over identity/action source pairs that differ in colour and speed: how often the
  transferred video [N, T, H, W, 3] shows the identity source's colour and the action
  source's speed (and, as chance checks, the other source's)."""
  colour, speed = bob_colour(transferred), swing_speed(transferred)
  differ = (identity_colour != action_colour) & (identity_speed != action_speed)
  return {
      "pairs": int(differ.sum()),
      "colour_follows_identity_source": fraction(colour[differ] == identity_colour[differ]),
      "colour_follows_action_source": fraction(colour[differ] == action_colour[differ]),
      "speed_follows_action_source": fraction(speed[differ] == action_speed[differ]),
      "speed_follows_identity_source": fraction(speed[differ] == identity_speed[differ]),
  }


def transfer_grid_statistics(
    grid: np.ndarray, identity_colour: np.ndarray, identity_speed: np.ndarray,
    action_colour: np.ndarray, action_speed: np.ndarray,
) -> dict[str, float]:
  """transfer_statistics of a grid [I, A, T, H, W, 3] whose entry (i, a) has identity i's s and
  action a's d, given each identity source's colour and speed [I] and each action source's [A]."""
  rows, cols = grid.shape[:2]
  return transfer_statistics(
      grid.reshape(rows * cols, *grid.shape[2:]),  # identity-major, like the repeats below
      identity_colour=np.repeat(identity_colour, cols), action_speed=np.tile(action_speed, rows),
      identity_speed=np.repeat(identity_speed, cols), action_colour=np.tile(action_colour, rows),
  )


SWINGING_PEAK_TO_PEAK = 0.2  # radians (~11 degrees); the data's swings span 0.9-1.7


def still_swinging(videos: np.ndarray) -> np.ndarray:
  """Whether each video [N, T, H, W, 3] still swings in its last third: the bob's angle spans
  more than SWINGING_PEAK_TO_PEAK there [N]."""
  angles = bob_angles(videos)[:, -max(videos.shape[1] // 3, 2) :]
  return angles.max(axis=1) - angles.min(axis=1) > SWINGING_PEAK_TO_PEAK


FULL_INTENSITY_TOLERANCE = 0.08  # largest channel gap to a palette colour (20 of 255); palette colours lie 0.2 or more apart


def full_intensity_colour(videos: np.ndarray) -> np.ndarray:
  """The palette colour [N] some pixel of every frame shows at full intensity, per video [N, T, H, W, 3] (-1: none)."""
  colours = []
  for video in np.asarray(videos, np.float64):
    gaps = np.abs(video[..., None, :] - PALETTE).max(axis=-1)  # [T, H, W, K]
    in_every_frame = (gaps <= FULL_INTENSITY_TOLERANCE).any(axis=(1, 2)).all(axis=0)  # [K]
    colours.append(int(in_every_frame.argmax()) if in_every_frame.any() else -1)
  return np.array(colours, np.int64)


def fraction_at_full_intensity(videos: np.ndarray) -> float:
  """The fraction of videos [N, T, H, W, 3] with one palette colour at full intensity in every frame."""
  return float(np.mean(full_intensity_colour(videos) >= 0))
