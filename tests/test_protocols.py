"""The protocols on a fake codec and a fake judge whose answers are known: ceilings, chance, Table 1, reverse draws."""

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

  def sample_dynamics_means(self, key, num_videos, num_frames):
    return self.sample_dynamics(key, num_videos, num_frames)  # an action held over time is each step's mean


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


class RecordingCodec(PixelCodec):
  """A PixelCodec whose prior means sit a quarter action above its samples; it records the codes it decodes."""

  def __init__(self):
    super().__init__()
    self.decoded = []

  def decode(self, codes, key=None, num_frames=None):
    self.decoded.append(codes)
    return super().decode(codes, key, num_frames)

  def sample_dynamics_means(self, key, num_videos, num_frames):
    return self.sample_dynamics(key, num_videos, num_frames) + 0.25 / ACTIONS


ACTION_PROBABILITIES = np.array(
    [[1, 0, 0], [0, 0.5, 0.5], [0, 1, 0], [0.5, 0, 0.5], [0, 0, 1], [0.5, 0.5, 0], [0, 0, 1]]
)
ACTION_LABELS = np.array([0, 0, 1, 1, 2, 2, 2])  # the class-balanced subset: rows 0-5 (the rarest action has 2)
HAIR_PROBABILITIES = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9]])
HAIR_LABELS = np.array([0, 1, 0, 1, 0, 1, 0])  # rows 5 and 6 misread


class TableJudge:
  """p(y|x) of the video whose first pixel holds row i: row i of the tables above."""

  classes = {"action": 3, "hair": 2}
  dynamic_heads = ["action"]

  def predict(self, videos):
    rows = np.rint(np.asarray(videos)[:, 0, 0, 0, 0]).astype(int)
    return {"action": ACTION_PROBABILITIES[rows], "hair": HAIR_PROBABILITIES[rows]}, np.zeros((len(rows), 1))


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


def test_the_ceiling_scores_the_real_videos_as_the_rounds_score_generations():
  videos = np.zeros((7, T, 2, 2, 3), np.float32)
  videos[..., 0] = np.arange(7)[:, None, None, None]
  labels = {"action": ACTION_LABELS, "hair": HAIR_LABELS}
  judge = TableJudge()
  scores = protocols.ceiling(judge, judge.predict(videos)[0], labels)
  assert scores == pytest.approx({
      "action_accuracy": 4 / 7,  # rows 1, 3 and 5 split their mass and argmax picks the wrong class
      "action_inception_score": 3 / np.sqrt(2),  # exp(H(y) - H(y|x)) on rows 0-5 (row 6 would move p(y))
      "action_h_y_given_x": np.log(2) / 2,
      "action_h_y": np.log(3),
      "hair_accuracy": 5 / 7,
  })
  assert scores == protocols.standard_round(judge, videos, labels) | protocols.reverse_round(judge, videos, labels)
  own_fractions = protocols.fraction_of_ceiling(metrics.mean_and_std([scores]), scores)
  assert own_fractions == {
      "action_inception_score_fraction": {"mean": 1.0, "std": 0.0},
      "action_conditional_entropy_ratio": {"mean": 1.0, "std": 0.0},
  }


def test_fraction_of_ceiling_divides_the_protocols_is_and_conditional_entropy_by_the_ceilings():
  ceiling = {"action_accuracy": 0.9, "action_inception_score": 4.0, "action_h_y_given_x": 0.25, "action_h_y": 1.5}
  standard = {
      "action_accuracy": {"mean": 0.5, "std": 0.1},
      "action_inception_score": {"mean": 3.0, "std": 0.5},
      "action_h_y_given_x": {"mean": 0.75, "std": 0.125},
      "action_h_y": {"mean": 1.0, "std": 0.0},
  }
  assert protocols.fraction_of_ceiling(standard, ceiling) == {
      "action_inception_score_fraction": {"mean": 0.75, "std": 0.125},
      "action_conditional_entropy_ratio": {"mean": 3.0, "std": 0.5},
  }
  with pytest.warns(RuntimeWarning, match="divide by zero"):
    certain = protocols.fraction_of_ceiling(standard, ceiling | {"action_h_y_given_x": 0.0})
  assert certain["action_conditional_entropy_ratio"] == {"mean": np.inf, "std": np.inf}


@pytest.mark.parametrize("reverse, draw", [("field", "sample_dynamics_means"), ("samples", "sample_dynamics")])
def test_the_reverse_protocol_decodes_the_prior_means_under_field_and_the_samples_under_samples(reverse, draw):
  videos, labels = labelled_videos()
  codec, key = RecordingCodec(), jax.random.key(5)
  codes = protocols.encode_all(codec, videos)
  protocols.protocols(codec, PixelJudge(), codes, labels, T, key, 1, reverse=reverse)
  _, reverse_codes = codec.decoded  # the standard protocol's decoding, then the reverse protocol's
  _, dynamics_key, _ = jax.random.split(jax.random.fold_in(key, 0), 3)
  np.testing.assert_array_equal(reverse_codes.static, codes.static)
  np.testing.assert_array_equal(reverse_codes.dynamics, getattr(codec, draw)(dynamics_key, N, T))


def test_an_unknown_reverse_draw_is_refused():
  videos, labels = labelled_videos()
  codec = PixelCodec()
  codes = protocols.encode_all(codec, videos)
  with pytest.raises(ValueError, match=r"reverse must be one of \('field', 'samples'\); got 'means'"):
    protocols.protocols(codec, PixelJudge(), codes, labels, T, jax.random.key(0), 1, reverse="means")


def test_field_draws_from_a_density_are_the_means_of_the_components_its_samples_come_from():
  codec = PixelCodec()
  train_codes = protocols.encode_all(codec, labelled_videos(1)[0])
  points = code_density.flatten(train_codes)  # [N, 1 + T]
  density = code_density.CodeDensity(jnp.full(N, -np.log(N)), Gaussian(points, jnp.full_like(points, 1e-3)), 1, (T, 1))
  key = jax.random.key(2)
  means = protocols.draw_dynamics(codec, density, key, N, T, means=True)  # [N, T, 1]
  samples = protocols.draw_dynamics(codec, density, key, N, T)
  train_dynamics = np.asarray(train_codes.dynamics)
  nearest = np.abs(samples[:, None] - train_dynamics[None]).sum(axis=(2, 3)).argmin(axis=1)  # actions are 1/9 apart
  np.testing.assert_array_equal(means, train_dynamics[nearest])
  assert 0 < np.abs(samples - means).max() < 5e-3  # each sample is its component's mean + 1e-3 * noise
