"""The protocols on a fake codec and a fake judge whose answers are known: ceilings, chance, Table 1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dsa_jax import code_density
from dsa_jax.codecs import Codes
from dsa_jax.distributions import Gaussian
from dsa_jax.evaluation import metrics, protocols

ACTIONS, HAIRS = 9, 6
N, T = 54, 3  # 6 videos of each action


class PixelCodec:
  """Videos whose channel 0 holds the action and channel 1 the hair colour: codes are those values."""

  static_name, dynamics_name, train_frames = "hair", "action", T

  def __init__(self, ignore_dynamics: bool = False):
    self.ignore_dynamics = ignore_dynamics

  def encode(self, videos, key=None):
    videos = jnp.asarray(videos)
    return Codes(videos[:, 0, 0, 0, 1:2], videos[:, :, 0, 0, 0:1])  # static [B, 1], dynamics [B, T, 1]

  def decode(self, codes, key=None, num_frames=None):
    dynamics = jnp.full_like(codes.dynamics, 0.0) if self.ignore_dynamics else codes.dynamics
    frames = num_frames or dynamics.shape[1]
    action = jnp.broadcast_to(dynamics[:, :1, None, None, :], (len(dynamics), frames, 2, 2, 1))
    hair = jnp.broadcast_to(codes.static[:, None, None, None, :], action.shape)
    return jnp.concatenate([action, hair, jnp.zeros_like(action)], axis=-1)

  def sample_static(self, key, num_videos):
    return jax.random.randint(key, (num_videos, 1), 0, HAIRS) / HAIRS

  def sample_dynamics(self, key, num_videos, num_frames):
    action = jax.random.randint(key, (num_videos, 1, 1), 0, ACTIONS) / ACTIONS
    return jnp.broadcast_to(action, (num_videos, num_frames, 1))


class PixelJudge:
  """Reads both labels back from the pixels, with certainty."""

  classes = {"action": ACTIONS, "hair": HAIRS}
  dynamic_heads = ["action"]

  def predict(self, videos):
    videos = np.asarray(videos)
    action = np.rint(videos[:, 0, 0, 0, 0] * ACTIONS).astype(int)
    hair = np.rint(videos[:, 0, 0, 0, 1] * HAIRS).astype(int)
    return {"action": np.eye(ACTIONS)[action], "hair": np.eye(HAIRS)[hair]}, np.stack([action, hair], 1).astype(float)


class OffPriorCodec(PixelCodec):
  """A PixelCodec whose prior of the static code lands between hair levels, where its decoder blanks the action."""

  def decode(self, codes, key=None, num_frames=None):
    frames = super().decode(codes, key, num_frames)
    on_level = jnp.abs(codes.static * HAIRS - jnp.rint(codes.static * HAIRS)) < 0.25  # [B, 1]
    return frames.at[..., 0].multiply(on_level[:, None, None, None, 0])

  def sample_static(self, key, num_videos):
    return (jax.random.randint(key, (num_videos, 1), 0, HAIRS) + 0.4) / HAIRS


def labelled_videos(seed=0):
  rng = np.random.default_rng(seed)
  labels = {"action": np.repeat(np.arange(ACTIONS), N // ACTIONS), "hair": rng.integers(0, HAIRS, N)}
  videos = np.zeros((N, T, 2, 2, 3), np.float32)
  videos[..., 0] = labels["action"][:, None, None, None] / ACTIONS
  videos[..., 1] = labels["hair"][:, None, None, None] / HAIRS
  return videos, labels


def test_real_videos_as_generations_reach_the_ceiling_row():
  videos, labels = labelled_videos()
  scores = protocols.standard_round(PixelJudge(), videos, labels)
  assert scores["action_accuracy"] == 1.0
  assert scores["action_inception_score"] == pytest.approx(9.0)
  assert scores["action_h_y"] == pytest.approx(np.log(9)) and scores["action_h_y_given_x"] == pytest.approx(0.0, abs=1e-9)


def test_a_perfect_model_scores_accuracy_one_and_the_reverse_protocol_keeps_the_static_labels():
  videos, labels = labelled_videos()
  codec = PixelCodec()
  standard, reverse, generated = protocols.protocols(
      codec, PixelJudge(), protocols.encode_all(codec, videos), labels, T, jax.random.key(0), rounds=3
  )
  assert standard["action_accuracy"] == {"mean": 1.0, "std": 0.0}
  assert standard["action_inception_score"]["mean"] == pytest.approx(9.0)
  assert reverse["hair_accuracy"] == {"mean": 1.0, "std": 0.0}
  assert abs(reverse["action_accuracy"]["mean"] - 1 / ACTIONS) < 0.1  # dynamics from the prior: chance
  assert generated["standard"].shape == generated["reverse"].shape == videos.shape


def test_a_model_that_ignores_its_dynamics_scores_chance():
  videos, labels = labelled_videos()
  codec = PixelCodec(ignore_dynamics=True)
  standard, _, _ = protocols.protocols(codec, PixelJudge(), protocols.encode_all(codec, videos), labels, T, jax.random.key(0), 2)
  assert standard["action_accuracy"]["mean"] == pytest.approx(1 / ACTIONS)  # always action 0
  assert standard["action_inception_score"]["mean"] == pytest.approx(1.0)


def test_swap_agreement_of_a_perfect_model_is_zero_beside_the_random_baseline():
  videos, labels = labelled_videos()
  judge, codec = PixelJudge(), PixelCodec()
  _, _, generated = protocols.protocols(codec, judge, protocols.encode_all(codec, videos), labels, T, jax.random.key(1), 1)
  scores = protocols.swap_agreement(judge, judge.predict(videos)[0], generated)
  assert scores["action_disagreement"] == 0.0 and scores["hair_disagreement"] == 0.0
  assert scores["action_random_disagreement"] == pytest.approx(8 / 9) and scores["hair_random_disagreement"] == pytest.approx(5 / 6)


def test_embedding_table_finds_each_label_in_its_own_code():
  videos, labels = labelled_videos(0)
  test_videos, test_labels = labelled_videos(1)
  codec = PixelCodec()
  table = protocols.embedding_table(PixelJudge(), protocols.encode_all(codec, videos), labels, protocols.encode_all(codec, test_videos), test_labels)
  assert table["action_from_dynamics"] == 1.0 and table["hair_from_static"] == 1.0
  assert table["action_from_static"] < 0.4 and table["hair_from_dynamics"] < 0.5


def test_frechet_distance_of_perfect_reconstructions():
  videos, _ = labelled_videos()
  judge, codec = PixelJudge(), PixelCodec()
  scores = protocols.frechet_and_reconstruction(
      codec, judge, videos, protocols.encode_all(codec, videos), judge.predict(videos)[1], jax.random.key(0)
  )
  assert scores["reconstruction_mse"] == 0.0
  assert scores["judge_frechet_distance"] >= 0.0
  assert metrics.frechet_distance(*(judge.predict(videos)[1],) * 2) == pytest.approx(0.0, abs=1e-9)


def test_draws_from_a_density_fitted_to_the_codes_keep_what_an_off_manifold_prior_loses():
  videos, labels = labelled_videos()
  codec = OffPriorCodec()
  from_prior, _, _ = protocols.protocols(codec, PixelJudge(), protocols.encode_all(codec, videos), labels, T, jax.random.key(0), 2)
  assert from_prior["action_accuracy"]["mean"] == pytest.approx(1 / ACTIONS)  # every action blanked to action 0
  train_codes = protocols.encode_all(codec, labelled_videos(1)[0])
  points = code_density.flatten(train_codes)  # [N, 1 + T]: one narrow component on each training video's codes
  components = Gaussian(points, jnp.full_like(points, 1e-3))
  density = code_density.CodeDensity(jnp.full(N, -np.log(N)), components, 1, train_codes.dynamics.shape[1:])
  from_density, reverse, _ = protocols.protocols(
      codec, PixelJudge(), protocols.encode_all(codec, videos), labels, T, jax.random.key(0), 2, density
  )
  assert from_density["action_accuracy"] == {"mean": 1.0, "std": 0.0}
  assert reverse["hair_accuracy"] == {"mean": 1.0, "std": 0.0}
  assert abs(reverse["action_accuracy"]["mean"] - 1 / ACTIONS) < 0.1  # dynamics from the density's marginal: chance


def test_prior_draws_are_unchanged_by_the_density_option():
  videos, labels = labelled_videos()
  key = jax.random.key(3)
  codec = PixelCodec()
  standard, reverse, generated = protocols.protocols(codec, PixelJudge(), protocols.encode_all(codec, videos), labels, T, key, 1)
  static_key, dynamics_key, _ = jax.random.split(jax.random.fold_in(key, 0), 3)
  np.testing.assert_array_equal(generated["standard"][:, 0, 0, 0, 1], np.asarray(PixelCodec().sample_static(static_key, N))[:, 0])
  np.testing.assert_array_equal(generated["reverse"][:, 0, 0, 0, 0], np.asarray(PixelCodec().sample_dynamics(dynamics_key, N, T))[:, 0, 0])
