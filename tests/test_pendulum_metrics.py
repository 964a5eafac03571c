"""Pendulum factors read back from pixels: colour, swing speed, transfer scores, swinging."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from data_pipelines.pendulum import pendulum
from dsa_jax import data
from dsa_jax.codecs import Codes
from dsa_jax.evaluation import pendulum as pendulum_evaluator
from dsa_jax.evaluation import pendulum_metrics


def clips(num_frames: int, per_class: int = 2, image_size: int = 64):
  """Clip parameters and their videos [N, T, image_size, image_size, 3] in [0, 1]."""
  parameters = pendulum.clip_parameters(pendulum.PendulumConfig(name="m"), "test", per_class)
  videos = data.downsample(pendulum.render_clips(parameters, num_frames), image_size)
  return parameters, videos.astype(np.float64) / 255.0


@pytest.mark.parametrize("image_size", [64, 32, 16])
def test_colour_and_speed_of_rendered_clips_are_read_back(image_size):
  parameters, videos = clips(16, image_size=image_size)
  np.testing.assert_array_equal(pendulum_metrics.bob_colour(videos), parameters["colour"])
  np.testing.assert_array_equal(pendulum_metrics.swing_speed(videos), parameters["speed"])


def test_swing_period_of_a_sixty_frame_clip_is_near_its_small_angle_period():
  parameters, videos = clips(60, per_class=1)
  periods = pendulum_metrics.swing_period(pendulum_metrics.bob_angles(videos))
  expected = np.array([pendulum.SMALL_ANGLE_PERIOD_FRAMES[name] for name in pendulum.SPEEDS])[parameters["speed"]]
  # amplitudes of 0.45-0.85 rad lengthen the period by 1-5 % over the small-angle one
  assert np.all(periods >= 0.97 * expected) and np.all(periods <= 1.15 * expected)


def test_transfer_statistics_count_which_source_each_factor_follows():
  parameters, videos = clips(16, per_class=1)  # classes (colour, speed) in order: 0 slow, 0 fast, 1 slow, ...
  by_class = {(c, s): videos[i] for i, (c, s) in enumerate(zip(parameters["colour"], parameters["speed"]))}
  identity_colour, identity_speed = np.array([0, 1, 2, 3, 4]), np.array([0, 0, 1, 1, 0])
  action_colour, action_speed = np.array([5, 6, 0, 1, 4]), np.array([1, 1, 0, 0, 1])  # the last pair shares its colour
  shown = [(0, 1), (1, 1), (2, 0), (1, 0), (4, 0)]  # pair 3 shows the action's colour and speed
  transferred = np.stack([by_class[pair] for pair in shown])
  scores = pendulum_metrics.transfer_statistics(transferred, identity_colour, action_speed, identity_speed, action_colour)
  assert scores == {
      "pairs": 4,
      "colour_follows_identity_source": 0.75,
      "colour_follows_action_source": 0.25,
      "speed_follows_action_source": 1.0,
      "speed_follows_identity_source": 0.0,
  }


def test_transfer_grid_statistics_pair_each_grid_entry_with_its_row_identity_and_column_action():
  parameters, videos = clips(16, per_class=1)
  by_class = {(c, s): videos[i] for i, (c, s) in enumerate(zip(parameters["colour"], parameters["speed"]))}
  identity_colour, identity_speed = np.array([0, 1]), np.array([0, 1])
  action_colour, action_speed = np.array([2, 3]), np.array([1, 0])
  grid = np.stack([np.stack([by_class[(c, s)] for s in action_speed]) for c in identity_colour])  # [2, 2, T, ...]
  scores = pendulum_metrics.transfer_grid_statistics(grid, identity_colour, identity_speed, action_colour, action_speed)
  assert scores == {  # pairs differing in colour and speed: (identity 0, action 0) and (1, 1)
      "pairs": 2,
      "colour_follows_identity_source": 1.0,
      "colour_follows_action_source": 0.0,
      "speed_follows_action_source": 1.0,
      "speed_follows_identity_source": 0.0,
  }


def test_still_swinging_tells_a_swinging_clip_from_a_frozen_or_stopped_one():
  _, videos = clips(60, per_class=1)
  frozen = np.repeat(videos[:, :1], 60, axis=1)
  stopped = np.concatenate([videos[:, :30], np.repeat(videos[:, 29:30], 30, axis=1)], axis=1)
  assert pendulum_metrics.still_swinging(videos).all()
  assert not pendulum_metrics.still_swinging(frozen).any()
  assert not pendulum_metrics.still_swinging(stopped).any()


@pytest.mark.parametrize("image_size", [64, 16])
def test_full_intensity_colour_needs_one_training_colour_at_full_brightness_in_every_frame(image_size):
  parameters, videos = clips(8, per_class=1, image_size=image_size)
  np.testing.assert_array_equal(pendulum_metrics.full_intensity_colour(videos), parameters["colour"])
  faint = videos * 0.85  # the brightest channel of every colour (200 or more) drops 30 levels or more: past the tolerance of 20
  assert np.all(pendulum_metrics.full_intensity_colour(faint) == -1)
  one_faint_frame = videos.copy()
  one_faint_frame[:, 3] *= 0.85
  assert np.all(pendulum_metrics.full_intensity_colour(one_faint_frame) == -1)
  first, other = 0, int(np.argmax(parameters["colour"] != parameters["colour"][0]))
  flickering = videos[first].copy()
  flickering[1::2] = videos[other][1::2]  # alternate frames from a clip of another colour
  assert pendulum_metrics.full_intensity_colour(flickering[None]).tolist() == [-1]
  slightly_off = np.clip(videos + 0.07, 0.0, 1.0)  # within 20 levels of the palette
  np.testing.assert_array_equal(pendulum_metrics.full_intensity_colour(slightly_off), parameters["colour"])


class RendererCodec:
  """A pendulum codec that knows each test video's factors and renders them exactly.

  Static code: the colour as a palette index (a fraction blends two palette colours); dynamics:
  (speed, amplitude, phase). Its static prior falls halfway between palette colours, so its
  generations from the priors are faint blends while those with inferred colours are not.
  """

  static_name, dynamics_name, train_frames = "colour", "motion", 16

  def __init__(self, parameters: dict, videos: np.ndarray):
    self.factors = {
        np.asarray(video, np.float32).tobytes(): (colour, speed, amplitude, phase)
        for video, colour, speed, amplitude, phase in zip(
            videos, parameters["colour"], parameters["speed"], parameters["amplitude"], parameters["phase"]
        )
    }

  def encode(self, videos, key=None):
    factors = np.array([self.factors[np.asarray(video, np.float32).tobytes()] for video in videos])  # [B, 4]
    return Codes(factors[:, :1], factors[:, 1:])

  def decode(self, codes, key=None, num_frames=None):
    colour, (speed, amplitude, phase) = np.asarray(codes.static)[:, 0], np.asarray(codes.dynamics).T
    periods = np.array([pendulum.SMALL_ANGLE_PERIOD_FRAMES[s] for s in pendulum.SPEEDS])[speed.astype(int)]
    angles = pendulum.swing_angles(amplitude, phase, 2.0 * np.pi / periods, num_frames or self.train_frames)
    palette = np.array([pendulum.COLOURS[name] for name in pendulum.COLOUR_NAMES], np.float64)
    low, weight = np.floor(colour).astype(int), (colour - np.floor(colour))[:, None]
    colours = (1 - weight) * palette[low] + weight * palette[np.minimum(low + 1, len(palette) - 1)]
    return pendulum.render(angles, colours).astype(np.float32) / 255.0

  def sample_static(self, key, num_videos):
    return np.random.default_rng(0).integers(0, len(pendulum.COLOUR_NAMES) - 1, (num_videos, 1)) + 0.5

  def sample_dynamics(self, key, num_videos, num_frames):
    rng = np.random.default_rng(1)
    speed = rng.integers(0, len(pendulum.SPEEDS), num_videos)
    return np.stack([speed, rng.uniform(*pendulum.AMPLITUDE_RANGE, num_videos), rng.uniform(0, 2 * np.pi, num_videos)], 1)

  def continue_from(self, videos, key, num_frames):
    return self.decode(self.encode(videos), key, num_frames)


def test_the_pendulum_evaluator_gives_an_exact_codec_full_marks_and_scores_faint_prior_generations():
  parameters, videos = clips(16, per_class=1)
  codec = RendererCodec(parameters, videos.astype(np.float32))
  scores = pendulum_evaluator.run(codec, videos, jax.random.key(0), 60, videos)
  for name in ("colour_follows_static_source", "colour_follows_identity_source", "speed_follows_action_source",
               "continuations_keeping_speed", "generations_swinging_in_last_third", "reconstructions_at_full_intensity",
               "generations_with_inferred_identities_at_full_intensity", "generations_from_fitted_density_at_full_intensity"):
    assert scores[name] == 1.0, (name, scores)
  for name in ("colour_follows_dynamic_source", "colour_follows_action_source", "speed_follows_identity_source",
               "generations_at_full_intensity"):
    assert scores[name] == 0.0, (name, scores)
  assert scores["swing_correlation_with_dynamic_source"] > 0.99 and scores["generations"] == len(videos)


class BrightnessCodec:
  """A codec whose one-pixel red bob has brightness clip(s, 0, 1) while d > 0 (black otherwise); posterior codes are 1."""

  train_frames = 2

  def encode(self, videos, key=None):
    return Codes(jnp.ones((len(videos), 1)), jnp.ones((len(videos), 1)))

  def decode(self, codes, key=None, num_frames=None):
    brightness = jnp.clip(codes.static, 0, 1) * (codes.dynamics > 0)  # [N, 1]
    red = jnp.asarray(pendulum_metrics.PALETTE[0], jnp.float32)
    return jnp.broadcast_to((brightness * red)[:, None, None, None, :], (len(brightness), num_frames, 2, 2, 3))

  def sample_static(self, key, num_videos):
    return jax.random.normal(key, (num_videos, 1))

  def sample_dynamics(self, key, num_videos, num_frames):
    return jax.random.normal(key, (num_videos, 1))


def test_full_intensity_by_code_source_matches_the_brightness_codecs_probabilities():
  num_videos = 4000
  scores = pendulum_evaluator.full_intensity_by_code_source(
      BrightnessCodec(), np.zeros((64, 2, 2, 2, 3)), jax.random.key(0), num_videos, 3, mixture_sizes=(1, 7)
  )
  bright_enough = 1 - scipy.stats.norm.cdf(1 - 20 / 235)  # red is (235, 40, 40): within 20/255 from s = 1 - 20/235
  expected = {
      "posterior static, posterior dynamics": 1.0,
      "posterior static, prior dynamics": 0.5,  # P(d > 0)
      "prior static, posterior dynamics": bright_enough,
      "prior static, prior dynamics": bright_enough * 0.5,
      "diagonal Gaussian static, prior dynamics": 0.5,  # the posterior codes are all 1: the Gaussian is a point
      "mixture of 1, both codes": 1.0,
      "mixture of 7, both codes": 1.0,
  }
  assert list(scores) == list(expected)
  for name, probability in expected.items():
    assert scores[name] == pytest.approx(probability, abs=4 * np.sqrt(probability * (1 - probability) / num_videos) + 1e-9), name
