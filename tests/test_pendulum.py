"""The pendulum dataset: physics, rendering, the TFDS builder and its determinism."""

import numpy as np
import scipy.special

from data_pipelines.pendulum import pendulum
from dsa_jax import data
from tests.conftest import pendulum_config


def test_swing_conserves_energy_and_has_the_exact_nonlinear_period():
  amplitude, omega = np.array([0.5, 0.85]), np.array([2 * np.pi / 20, 2 * np.pi / 10])
  angles = pendulum.swing_angles(amplitude, np.zeros(2), omega, 400)
  assert np.allclose(angles[:, 0], amplitude)
  # exact period 4 K(sin^2(A/2)) / omega: the angle returns to the amplitude after it
  period = 4 * scipy.special.ellipk(np.sin(amplitude / 2) ** 2) / omega
  for row in range(2):
    peaks = [t for t in range(1, 399) if angles[row, t - 1] < angles[row, t] >= angles[row, t + 1]]
    measured = (peaks[-1] - 0) / len(peaks)
    assert abs(measured - period[row]) < 0.05, (measured, period[row])
  assert np.max(np.abs(angles)) <= amplitude.max() + 1e-4


def test_initial_state_lies_on_the_orbit():
  amplitude, omega = np.full(5, 0.7), np.full(5, 0.3)
  phase = np.linspace(0.1, 6.0, 5)
  angle, velocity = pendulum.initial_state(amplitude, phase, omega)
  energy = 0.5 * velocity**2 - omega**2 * np.cos(angle)
  np.testing.assert_allclose(energy, -(omega**2) * np.cos(amplitude), rtol=1e-9)


def test_render_draws_the_bob_in_its_colour_and_is_deterministic():
  parameters = pendulum.clip_parameters(pendulum.PendulumConfig(name="t"), "train", 1)
  videos = pendulum.render_clips(parameters, 3)
  assert videos.shape == (14, 3, 64, 64, 3) and videos.dtype == np.uint8
  np.testing.assert_array_equal(videos, pendulum.render_clips(parameters, 3))
  palette = np.array([pendulum.COLOURS[n] for n in pendulum.COLOUR_NAMES])
  angles = pendulum.swing_angles(parameters["amplitude"], parameters["phase"], np.ones(14), 1)[:, 0]
  centre_x = np.round(pendulum.PIVOT[0] + pendulum.ROD_LENGTH * np.sin(angles)).astype(int)
  centre_y = np.round(pendulum.PIVOT[1] + pendulum.ROD_LENGTH * np.cos(angles)).astype(int)
  np.testing.assert_array_equal(videos[np.arange(14), 0, centre_y, centre_x], palette[parameters["colour"]])


def test_builder_splits_labels_and_determinism(data_dir, tmp_path):
  config = pendulum_config(data_dir)
  train, test = data.load_source(config.data, "train"), data.load_source(config.data, "test")
  assert (len(train), len(test)) == (7 * 2 * 4, 7 * 2 * 2)
  colours = [train[i]["colour"] for i in range(len(train))]
  speeds = [train[i]["speed"] for i in range(len(train))]
  assert sorted(set(colours)) == list(range(7)) and sorted(set(speeds)) == [0, 1]
  assert np.bincount(colours).tolist() == [8] * 7
  example = train[0]
  assert example["video"].shape == (16, 64, 64, 3) and example["video"].dtype == np.uint8
  rebuilt = data.load_source(pendulum_config(str(tmp_path)).data, "train")
  np.testing.assert_array_equal(rebuilt[0]["video"], example["video"])
  assert rebuilt[5]["phase"] == train[5]["phase"]


def test_other_seed_gives_other_clips():
  first = pendulum.clip_parameters(pendulum.PendulumConfig(name="a", seed=0), "train", 1)
  second = pendulum.clip_parameters(pendulum.PendulumConfig(name="b", seed=1), "train", 1)
  assert not np.allclose(first["phase"], second["phase"])
  test = pendulum.clip_parameters(pendulum.PendulumConfig(name="a", seed=0), "test", 1)
  assert not np.allclose(first["phase"], test["phase"])
