"""Swinging pendula: 7 bob colours x 2 swing speeds, rendered from the pendulum equation.

Identity = colour (static), action = speed (dynamic), as in VDSM's synthetic pendulum set.
Each clip integrates theta'' = -omega^2 sin(theta) with RK4 from a random amplitude and a
random phase on that amplitude's orbit, and draws the pendulum (rod and bob, in its colour)
anti-aliased on black.
Everything is deterministic from the builder config's seed.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

IMAGE_SIZE = 64
COLOURS = {  # RGB of the bob
    "red": (235, 40, 40),
    "orange": (255, 140, 0),
    "yellow": (245, 230, 30),
    "green": (30, 200, 60),
    "cyan": (30, 220, 235),
    "blue": (40, 80, 255),
    "magenta": (225, 50, 225),
}
COLOUR_NAMES = tuple(COLOURS)
SPEEDS = ("slow", "fast")
SMALL_ANGLE_PERIOD_FRAMES = {"slow": 20.0, "fast": 10.0}
AMPLITUDE_RANGE = (0.45, 0.85)  # radians
PIVOT = (31.5, 6.0)  # (x, y) in pixel-centre coordinates
ROD_LENGTH = 30.0
ROD_HALF_WIDTH = 1.5
BOB_RADIUS = 8.0
SUBSTEPS_PER_FRAME = 8
RENDER_CHUNK = 64


@dataclasses.dataclass
class PendulumConfig(tfds.core.BuilderConfig):
  """Clip length, clips per (colour, speed) class in each split, and the seed."""

  num_frames: int = 16
  train_per_class: int = 200
  test_per_class: int = 50
  seed: int = 0


def initial_state(amplitude: np.ndarray, phase: np.ndarray, omega: np.ndarray):
  """A point at `phase` on the orbit of given amplitude: angle and angular velocity [N]."""
  angle = amplitude * np.cos(phase)
  energy_gap = np.maximum(np.cos(angle) - np.cos(amplitude), 0.0)
  velocity = -np.sign(np.sin(phase)) * omega * np.sqrt(2.0 * energy_gap)
  return angle, velocity


def swing_angles(
    amplitude: np.ndarray, phase: np.ndarray, omega: np.ndarray, num_frames: int
) -> np.ndarray:
  """Angles [N, T] of theta'' = -omega^2 sin(theta) (omega in rad/frame), by RK4."""
  angle, velocity = initial_state(amplitude, phase, omega)
  dt = 1.0 / SUBSTEPS_PER_FRAME

  def acceleration(theta):
    return -(omega**2) * np.sin(theta)

  angles = np.empty((amplitude.shape[0], num_frames), np.float64)
  for frame in range(num_frames):
    angles[:, frame] = angle
    for _ in range(SUBSTEPS_PER_FRAME):
      k1x, k1v = velocity, acceleration(angle)
      k2x, k2v = velocity + 0.5 * dt * k1v, acceleration(angle + 0.5 * dt * k1x)
      k3x, k3v = velocity + 0.5 * dt * k2v, acceleration(angle + 0.5 * dt * k2x)
      k4x, k4v = velocity + dt * k3v, acceleration(angle + dt * k3x)
      angle = angle + dt / 6.0 * (k1x + 2 * k2x + 2 * k3x + k4x)
      velocity = velocity + dt / 6.0 * (k1v + 2 * k2v + 2 * k3v + k4v)
  return angles


def render(angles: np.ndarray, colours: np.ndarray) -> np.ndarray:
  """Frames [N, T, 64, 64, 3] uint8 for angles [N, T] and pendulum colours [N, 3] (0-255)."""
  pixels = np.arange(IMAGE_SIZE, dtype=np.float32)
  grid_x, grid_y = pixels[None, :], pixels[:, None]  # [1, W], [H, 1]
  direction_x = np.sin(angles).astype(np.float32)[..., None, None]  # [N, T, 1, 1]
  direction_y = np.cos(angles).astype(np.float32)[..., None, None]
  offset_x, offset_y = grid_x - PIVOT[0], grid_y - PIVOT[1]  # [1, W], [H, 1]
  along = np.clip(offset_x * direction_x + offset_y * direction_y, 0.0, ROD_LENGTH)  # [N,T,H,W]
  rod_distance = np.hypot(offset_x - along * direction_x, offset_y - along * direction_y)
  rod = np.clip(ROD_HALF_WIDTH + 0.5 - rod_distance, 0.0, 1.0)
  bob_x, bob_y = ROD_LENGTH * direction_x, ROD_LENGTH * direction_y
  bob = np.clip(BOB_RADIUS + 0.5 - np.hypot(offset_x - bob_x, offset_y - bob_y), 0.0, 1.0)
  coverage = np.maximum(rod, bob)[..., None]  # [N, T, H, W, 1]
  colour = colours.astype(np.float32)[:, None, None, None, :]  # [N, 1, 1, 1, 3]
  return np.round(coverage * colour).astype(np.uint8)


def clip_parameters(config: PendulumConfig, split: str, per_class: int) -> dict[str, np.ndarray]:
  """Class labels and trajectory parameters of every clip of a split, from the seed."""
  rng = np.random.default_rng([config.seed, ("train", "test").index(split)])
  classes = np.arange(len(COLOUR_NAMES) * len(SPEEDS)).repeat(per_class)
  colour, speed = classes // len(SPEEDS), classes % len(SPEEDS)
  return {
      "colour": colour,
      "speed": speed,
      "amplitude": rng.uniform(*AMPLITUDE_RANGE, size=classes.size),
      "phase": rng.uniform(0.0, 2.0 * np.pi, size=classes.size),
  }


def render_clips(parameters: dict[str, np.ndarray], num_frames: int) -> np.ndarray:
  """Frames [N, T, 64, 64, 3] uint8 of clips described by `clip_parameters` rows."""
  periods = np.array([SMALL_ANGLE_PERIOD_FRAMES[s] for s in SPEEDS])[parameters["speed"]]
  angles = swing_angles(
      parameters["amplitude"], parameters["phase"], 2.0 * np.pi / periods, num_frames
  )
  palette = np.array([COLOURS[name] for name in COLOUR_NAMES])
  return render(angles, palette[parameters["colour"]])


class Pendulum(tfds.core.GeneratorBasedBuilder):
  """Swinging pendula with colour (identity) and speed (action) labels."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      PendulumConfig(name="default", description="16-frame clips, 200/50 per class (train/test)."),
      PendulumConfig(
          name="small", description="16-frame clips, 4/2 per class: for tests.",
          train_per_class=4, test_per_class=2,
      ),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    num_frames = self.builder_config.num_frames
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(
                shape=(num_frames, IMAGE_SIZE, IMAGE_SIZE, 3),
                dtype=np.uint8,
                encoding=tfds.features.Encoding.ZLIB,
            ),
            "colour": tfds.features.ClassLabel(names=COLOUR_NAMES),
            "speed": tfds.features.ClassLabel(names=SPEEDS),
            "amplitude": tfds.features.Scalar(dtype=np.float32),
            "phase": tfds.features.Scalar(dtype=np.float32),
        }),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is rendered locally
    config = self.builder_config
    return {
        "train": self._generate_examples("train", config.train_per_class),
        "test": self._generate_examples("test", config.test_per_class),
    }

  def _generate_examples(self, split: str, per_class: int):
    config = self.builder_config
    parameters = clip_parameters(config, split, per_class)
    count = parameters["colour"].size
    for start in range(0, count, RENDER_CHUNK):
      rows = {name: values[start : start + RENDER_CHUNK] for name, values in parameters.items()}
      videos = render_clips(rows, config.num_frames)
      for offset, video in enumerate(videos):
        index = start + offset
        yield index, {
            "video": video,
            "colour": int(rows["colour"][offset]),
            "speed": int(rows["speed"][offset]),
            "amplitude": np.float32(rows["amplitude"][offset]),
            "phase": np.float32(rows["phase"][offset]),
        }
