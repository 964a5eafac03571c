"""Codecs and sampling: codes' shapes, priors and their means at any horizon, DSA sampling against pre-refactor code."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dsa_jax import codecs, sampling, train
from dsa_jax.codecs import Codes
from dsa_jax.models import dsa, vdsm

IMAGE = (16, 16, 3)
B, T = 3, 5  # DSA clips
F, Z, H = 7, 5, 11
DSA_CONFIG = dsa.DSAConfig(image_shape=IMAGE, dim_f=F, dim_z=Z, dim_h=H, dim_hidden=13, num_channels=3)
VDSM_CONFIG = vdsm.VDSMConfig(
    image_shape=IMAGE, dim_z=5, dim_s=7, dim_d=3, rnn_size=11, rnn_layers=2, combiner_size=13,
    transition_size=17, identity_hidden=19, encoder_channels=(4, 6, 23), decoder_channels=(8, 6),
)
VDSM_B, VDSM_T = 2, 3  # VDSM clips; VDSM_T is the codecs' training length
TAU = 10.0
LONGER = 7  # a horizon past every codec's known frames
KEY = jax.random.key(42)
CODEC_NAMES = ("dsa_codec", "vdsm_codec", "pose_codec")


def videos(batch=B, time=T, seed=0):
  return jnp.asarray(np.random.default_rng(seed).random((batch, time, *IMAGE)), jnp.float32)


def initial_params(model, clips):
  init = jax.jit(model.init, compiler_options=train.CPU_INIT_COMPILER_OPTIONS)
  return init({"params": jax.random.key(0), "sample": jax.random.key(1)}, clips)["params"]


def apply(codec, *args, method, key=None):
  """The codec's model applied directly (jitted, Python numbers static): the oracle the codecs are checked against."""

  def run(params, rngs, *args):
    return codec.model.apply({"params": params}, *args, method=method, rngs=rngs)

  static = tuple(2 + i for i, arg in enumerate(args) if isinstance(arg, (bool, int, float)))
  compiled = jax.jit(run, static_argnums=static, compiler_options=train.CPU_INIT_COMPILER_OPTIONS)  # quick to compile
  return compiled(codec.params, {} if key is None else {"sample": key}, *args)


def clips_for(codec):
  return videos() if isinstance(codec, codecs.DSACodec) else videos(VDSM_B, VDSM_T)


@pytest.fixture(scope="module")
def dsa_codec():
  model = dsa.DSA(DSA_CONFIG)
  return codecs.DSACodec(model, initial_params(model, videos()), train_frames=T)


@pytest.fixture(scope="module")
def dsa_lstm_codec():
  model = dsa.DSA(dataclasses.replace(DSA_CONFIG, prior="lstm"))
  return codecs.DSACodec(model, initial_params(model, videos()), train_frames=T)


@pytest.fixture(scope="module")
def vdsm_model_params():
  model = vdsm.VDSM(VDSM_CONFIG)
  return model, initial_params(model, videos(VDSM_B, VDSM_T))


@pytest.fixture(scope="module")
def vdsm_codec(vdsm_model_params):
  return codecs.VDSMCodec(*vdsm_model_params, train_frames=VDSM_T, inverse_temperature=TAU)


@pytest.fixture(scope="module")
def pose_codec(vdsm_model_params):
  return codecs.VDSMPoseCodec(*vdsm_model_params, train_frames=VDSM_T, inverse_temperature=TAU)


@pytest.mark.parametrize(
    "name, static_shape, dynamics_shape",
    [
        ("dsa_codec", (B, F), (B, T, Z)),
        ("vdsm_codec", (VDSM_B, 7), (VDSM_B, 3)),
        ("pose_codec", (VDSM_B, 7), (VDSM_B, VDSM_T, 5)),
    ],
)
def test_codes_have_the_documented_shapes(request, name, static_shape, dynamics_shape):
  codec = request.getfixturevalue(name)
  for key in (None, KEY):
    codes = codec.encode(clips_for(codec), key)
    assert codes.static.shape == static_shape and codes.dynamics.shape == dynamics_shape


def vdsm_posteriors(module, clips):
  """q(s), q(d) and the per-frame poses q(z_t | x_t), by the codes' names."""
  frame_codes = module.encode_frames(clips)
  return {"s": module.infer_s(frame_codes), "d": module.infer_d(frame_codes), "z": frame_codes.q_z}


@pytest.mark.parametrize("name", ["vdsm_codec", "pose_codec"])
def test_vdsm_encode_with_a_key_is_loc_plus_scale_times_noise_of_split_keys(request, name):
  codec = request.getfixturevalue(name)
  clips = clips_for(codec)
  posteriors = apply(codec, clips, method=vdsm_posteriors)
  q_s, q_dynamics = posteriors[codec.static_name], posteriors[codec.dynamics_name]
  s_key, dynamics_key = jax.random.split(KEY)
  means, samples = codec.encode(clips), codec.encode(clips, KEY)
  np.testing.assert_allclose(means.static, q_s.loc, atol=1e-6)
  np.testing.assert_allclose(means.dynamics, q_dynamics.loc, atol=1e-6)
  expected_s = q_s.loc + q_s.scale * jax.random.normal(s_key, q_s.loc.shape)
  expected_dynamics = q_dynamics.loc + q_dynamics.scale * jax.random.normal(dynamics_key, q_dynamics.loc.shape)
  np.testing.assert_allclose(samples.static, expected_s, atol=1e-6)
  np.testing.assert_allclose(samples.dynamics, expected_dynamics, atol=1e-6)
  assert np.abs(samples.static - means.static).min() > 1e-4


def test_dsa_encode_with_a_key_samples_the_posterior_around_its_means(dsa_codec):
  clips = videos()
  q_f, q_z, f, z = apply(dsa_codec, clips, True, method="encode", key=KEY)
  samples = dsa_codec.encode(clips, KEY)
  np.testing.assert_allclose(samples.static, f, atol=1e-6)
  np.testing.assert_allclose(samples.dynamics, z, atol=1e-6)
  means = dsa_codec.encode(clips)
  np.testing.assert_allclose(means.static, q_f.loc, atol=1e-6)
  np.testing.assert_allclose(means.dynamics, q_z.loc, atol=1e-6)
  assert np.abs(samples.static - means.static).min() > 1e-4
  draws = [dsa_codec.encode(clips, jax.random.key(seed)) for seed in range(64)]
  static_error = np.mean([codes.static for codes in draws], axis=0) - means.static
  dynamics_error = np.mean([codes.dynamics for codes in draws], axis=0) - means.dynamics
  assert np.abs(static_error / q_f.scale).max() < 4 / 8  # 4 standard errors of a mean of 64 draws
  assert np.abs(dynamics_error / q_z.scale).max() < 4 / 8


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_decoded_codes_are_frames_in_the_unit_interval(request, name):
  codec = request.getfixturevalue(name)
  clips = clips_for(codec)
  frames = codec.decode(codec.encode(clips))
  assert frames.shape == clips.shape
  assert float(frames.min()) >= 0.0 and float(frames.max()) <= 1.0


@pytest.mark.parametrize("name", ["dsa_codec", "pose_codec"])
def test_decoding_further_keeps_the_codes_frames(request, name):
  codec = request.getfixturevalue(name)
  clips = clips_for(codec)
  codes = codec.encode(clips)
  longer = codec.decode(codes, KEY, LONGER)
  assert longer.shape == (clips.shape[0], LONGER, *IMAGE)
  np.testing.assert_allclose(longer[:, : clips.shape[1]], codec.decode(codes), atol=1e-6)


def test_dsa_decoding_further_continues_z_with_the_prior(dsa_codec):
  codes = dsa_codec.encode(videos())
  z = apply(dsa_codec, codes.dynamics, LONGER, method="extend_dynamics", key=KEY)
  np.testing.assert_array_equal(z[:, :T], codes.dynamics)
  expected = jax.nn.sigmoid(apply(dsa_codec, codes.static, z, method="decode"))
  np.testing.assert_allclose(dsa_codec.decode(codes, KEY, LONGER), expected, atol=1e-6)


def test_vdsm_decoding_within_the_training_length_is_a_prefix_of_it(vdsm_codec):
  codes = vdsm_codec.encode(videos(VDSM_B, VDSM_T))
  full = vdsm_codec.decode(codes)
  assert full.shape == (VDSM_B, VDSM_T, *IMAGE)
  np.testing.assert_allclose(vdsm_codec.decode(codes, None, 2), full[:, :2], atol=1e-6)
  np.testing.assert_allclose(vdsm_codec.decode(codes, KEY, LONGER)[:, :VDSM_T], full, atol=1e-6)


@pytest.mark.parametrize("name, known", [("dsa_codec", T), ("vdsm_codec", VDSM_T), ("pose_codec", VDSM_T)])
def test_decoding_past_the_known_frames_without_a_key_asks_for_one(request, name, known):
  codec = request.getfixturevalue(name)
  codes = codec.encode(clips_for(codec))
  with pytest.raises(ValueError, match="pass a key"):
    codec.decode(codes, None, known + 1)


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_zero_frames_are_refused_not_taken_for_the_default(request, name):
  codec = request.getfixturevalue(name)
  clips = clips_for(codec)
  with pytest.raises(ValueError, match="num_frames must be at least 1; got 0"):
    codec.decode(codec.encode(clips), jax.random.key(0), 0)
  with pytest.raises(ValueError, match="num_frames must be at least 1; got 0"):
    sampling.swap(codec, clips, clips, jax.random.key(0), 0)


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_uint8_videos_have_the_codes_of_their_floats(request, name):
  codec = request.getfixturevalue(name)
  pixels = np.random.default_rng(3).integers(0, 256, clips_for(codec).shape, dtype=np.uint8)
  from_uint8, from_floats = codec.encode(pixels), codec.encode(pixels.astype(np.float32) / 255)
  np.testing.assert_allclose(from_uint8.static, from_floats.static, atol=1e-6)  # XLA's / 255 is an ulp off numpy's
  np.testing.assert_allclose(from_uint8.dynamics, from_floats.dynamics, atol=1e-6)


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_nan_videos_are_rejected(request, name):
  codec = request.getfixturevalue(name)
  clips = np.array(clips_for(codec))
  clips[0, 1, 2, 3, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    codec.encode(clips)


def test_dsa_static_prior_is_a_standard_normal(dsa_codec):
  np.testing.assert_array_equal(dsa_codec.sample_static(KEY, 997), jax.random.normal(KEY, (997, F)))


@pytest.mark.parametrize("num_frames", [7, 11])
def test_dsa_dynamics_prior_samples_any_horizon(dsa_codec, num_frames):
  z = dsa_codec.sample_dynamics(KEY, 3, num_frames)
  assert z.shape == (3, num_frames, Z)
  np.testing.assert_allclose(z, apply(dsa_codec, 3, num_frames, method="sample_dynamics", key=KEY), atol=1e-6)


@pytest.mark.parametrize("name", ["vdsm_codec", "pose_codec"])
def test_vdsm_static_prior_has_standard_deviation_one_over_dim_s(request, name):
  s = request.getfixturevalue(name).sample_static(KEY, 997)
  np.testing.assert_allclose(s, jax.random.normal(KEY, (997, 7)) / 7, rtol=1e-6)  # XLA folds 1/7 into the sampler
  assert float(s.std()) == pytest.approx(1 / 7, rel=0.03)


def test_vdsm_action_prior_is_one_draw_whatever_the_horizon(vdsm_codec):
  expected = jax.random.normal(KEY, (VDSM_B, 3)) / 3
  for num_frames in (7, 11):
    np.testing.assert_allclose(vdsm_codec.sample_dynamics(KEY, VDSM_B, num_frames), expected, rtol=1e-6)


def test_pose_prior_is_a_standard_normal_pose_per_frame(pose_codec):
  np.testing.assert_array_equal(pose_codec.sample_dynamics(KEY, 3, LONGER), jax.random.normal(KEY, (3, LONGER, 5)))


def posterior_means(codec, clips):
  _, _, f, z = apply(codec, clips, False, method="encode", key=KEY)
  return f, z


def decoded(codec, f, z):
  return jax.nn.sigmoid(apply(codec, f, z, method="decode"))


def test_reconstruct_equals_the_pre_refactor_decoding_of_posterior_means(dsa_codec):
  clips = videos()
  expected = decoded(dsa_codec, *posterior_means(dsa_codec, clips))
  np.testing.assert_allclose(sampling.reconstruct(dsa_codec, clips, KEY), expected, atol=1e-6)


def test_swap_grid_and_swap_equal_pre_refactor_pairwise_decodings(dsa_codec):
  static_sources, dynamic_sources = videos(seed=1), videos(seed=2)
  f, _ = posterior_means(dsa_codec, static_sources)
  _, z = posterior_means(dsa_codec, dynamic_sources)
  grid = sampling.swap_grid(dsa_codec, static_sources, dynamic_sources[:2], KEY)
  assert grid.shape == (B, 2, T, *IMAGE)
  for i in range(B):
    for j in range(2):
      np.testing.assert_allclose(grid[i, j], decoded(dsa_codec, f[i : i + 1], z[j : j + 1])[0], atol=1e-6)
  swapped = sampling.swap(dsa_codec, static_sources, dynamic_sources, KEY)
  np.testing.assert_allclose(swapped, decoded(dsa_codec, f, z), atol=1e-6)


def pre_refactor_generation(codec, f, key, num_frames):
  z = apply(codec, f.shape[0], num_frames, method="sample_dynamics", key=key)
  return decoded(codec, f, z)


def test_generate_equals_the_pre_refactor_prior_sampling(dsa_codec):
  f_key, z_key = jax.random.split(KEY)
  f = jax.random.normal(f_key, (3, F))
  expected = pre_refactor_generation(dsa_codec, f, z_key, LONGER)
  np.testing.assert_allclose(sampling.generate(dsa_codec, KEY, 3, LONGER), expected, atol=1e-6)


def test_generate_with_static_equals_the_pre_refactor_function_given_its_dynamics_key(dsa_codec):
  clips = videos()
  _, z_key = jax.random.split(KEY)  # the old function split its key into (encode, dynamics)
  expected = pre_refactor_generation(dsa_codec, posterior_means(dsa_codec, clips)[0], z_key, LONGER)
  static = dsa_codec.encode(clips).static
  np.testing.assert_allclose(sampling.generate_with_static(dsa_codec, static, z_key, LONGER), expected, atol=1e-6)


def prior_loop(step, given, noise):
  """z [B, k + T', Z]: the prior cell's step teacher-forced on the given z_1:k, then sampled with the noise."""
  state = (jnp.zeros((given.shape[0], H)), jnp.zeros((given.shape[0], H)))
  z = list(jnp.swapaxes(given, 0, 1))
  for t in range(given.shape[1] + noise.shape[1] - 1):
    state, next_dist = step(state, z[t])
    if t + 1 >= given.shape[1]:
      z.append(next_dist.loc + next_dist.scale * noise[:, t + 1 - given.shape[1]])
  return jnp.stack(z, axis=1)


def prior_rollout(module, noise):
  return module.prior.rollout(noise)[0]


def prior_extend(module, z, noise):
  return module.prior.extend(z, noise)


def test_prior_extension_equals_its_rollout_and_a_python_loop(dsa_codec):
  noise = jax.random.normal(KEY, (B, LONGER, Z))
  rolled = apply(dsa_codec, noise, method=prior_rollout)
  cell = dsa.StablePriorCell(Z, H)
  step = jax.jit(lambda state, z: cell.apply({"params": dsa_codec.params["prior"]["cell"]}, state, z))
  for known in (1, LONGER - 2, LONGER - 1):  # LONGER - 1: a single sampled step
    extended = apply(dsa_codec, rolled[:, :known], noise[:, known:], method=prior_extend)
    assert extended.shape == (B, LONGER, Z)
    np.testing.assert_allclose(extended, rolled, atol=1e-6)
    np.testing.assert_allclose(extended, prior_loop(step, rolled[:, :known], noise[:, known:]), atol=1e-5)


def combiner_then_transition(module, s, d, known):
  """Frames [B, LONGER, ...]: the combiner's pose means for the known frames, then the transition."""
  combined, _ = module.infer_z(d, jnp.zeros((d.shape[0], known, VDSM_CONFIG.dim_z)))
  later = module.rollout(combined[:, -1], d, LONGER - known + 1)
  return jax.nn.sigmoid(module.decode(s, jnp.concatenate([combined, later[:, 1:]], axis=1), TAU))


def test_vdsm_continuation_uses_the_combiner_for_the_given_frames_then_the_transition(vdsm_codec):
  prefix = videos(VDSM_B, VDSM_T, seed=4)[:, :2]
  codes = vdsm_codec.encode(prefix)
  expected = apply(vdsm_codec, codes.static, codes.dynamics, 2, method=combiner_then_transition, key=KEY)
  np.testing.assert_allclose(vdsm_codec.continue_from(prefix, KEY, LONGER), expected, atol=1e-6)


def test_vdsm_extension_and_continuation_of_a_training_length_clip_take_the_transition_after_it(vdsm_codec):
  clips = videos(VDSM_B, VDSM_T, seed=5)
  codes = vdsm_codec.encode(clips)
  extended = sampling.extend(vdsm_codec, clips, KEY, LONGER)
  expected = apply(vdsm_codec, codes.static, codes.dynamics, VDSM_T, method=combiner_then_transition, key=KEY)
  np.testing.assert_allclose(extended, expected, atol=1e-6)
  np.testing.assert_array_equal(extended, vdsm_codec.decode(codes, KEY, LONGER))
  np.testing.assert_array_equal(sampling.continue_video(vdsm_codec, clips, KEY, LONGER), extended)
  assert np.abs(extended - vdsm_codec.continue_from(clips[:, :2], KEY, LONGER)).max() > 1e-4


@pytest.mark.parametrize("name, num_frames", [("dsa_codec", None), ("vdsm_codec", LONGER)])
def test_generate_with_dynamics_keeps_the_dynamics_and_samples_the_static_code(request, name, num_frames):
  codec = request.getfixturevalue(name)
  dynamics = codec.encode(clips_for(codec)).dynamics
  static_key, decode_key = jax.random.split(KEY)
  expected = codec.decode(Codes(codec.sample_static(static_key, dynamics.shape[0]), dynamics), decode_key, num_frames)
  np.testing.assert_array_equal(sampling.generate_with_dynamics(codec, dynamics, KEY, num_frames), expected)


def test_vdsm_generate_with_static_keeps_the_static_code_and_samples_the_action(vdsm_codec):
  static = vdsm_codec.encode(videos(VDSM_B, VDSM_T)).static
  action = vdsm_codec.sample_dynamics(KEY, VDSM_B, LONGER)
  expected = vdsm_codec.decode(Codes(static, action), jax.random.fold_in(KEY, 1), LONGER)
  np.testing.assert_array_equal(sampling.generate_with_static(vdsm_codec, static, KEY, LONGER), expected)


def test_pose_generate_with_static_decodes_standard_normal_poses(pose_codec):
  static = pose_codec.sample_static(jax.random.key(1), 3)
  poses = jax.random.normal(KEY, (3, LONGER, 5))
  expected = jax.nn.sigmoid(apply(pose_codec, static, poses, TAU, method="decode"))
  np.testing.assert_allclose(sampling.generate_with_static(pose_codec, static, KEY, LONGER), expected, atol=1e-6)


def prior_noise(step, z):
  """The standard-normal noise [B, T, Z] that drives the prior's rollout to z [B, T, Z] (z_1 is its own noise)."""
  state = (jnp.zeros((z.shape[0], H)), jnp.zeros((z.shape[0], H)))
  noise = [z[:, 0]]
  for t in range(z.shape[1] - 1):
    state, next_dist = step(state, z[:, t])
    noise.append((z[:, t + 1] - next_dist.loc) / next_dist.scale)
  return jnp.stack(noise, axis=1)


def test_dsa_prior_at_rollout_temperature_zero_is_the_python_loop_of_its_means_and_half_scales_the_noise(dsa_codec):
  cold = dataclasses.replace(dsa_codec, rollout_temperature=0.0)
  cell = dsa.StablePriorCell(Z, H)
  step = jax.jit(lambda state, z: cell.apply({"params": dsa_codec.params["prior"]["cell"]}, state, z))
  means = prior_loop(step, jnp.zeros((3, 1, Z)), jnp.zeros((3, LONGER - 1, Z)))  # z_1 = 0: the mean of p(z_1)
  np.testing.assert_allclose(cold.sample_dynamics(KEY, 3, LONGER), means, atol=1e-5)
  given = means[:, :2] + 1.0
  continued = cold.decode(Codes(jnp.zeros((3, F)), given), KEY, LONGER)
  expected = decoded(dsa_codec, jnp.zeros((3, F)), prior_loop(step, given, jnp.zeros((3, LONGER - 2, Z))))
  np.testing.assert_allclose(continued, expected, atol=1e-5)
  noise = prior_noise(step, dsa_codec.sample_dynamics(KEY, 3, LONGER))  # [3, LONGER, Z]: what drove the rollout
  warm = dataclasses.replace(dsa_codec, rollout_temperature=0.5).sample_dynamics(KEY, 3, LONGER)
  np.testing.assert_allclose(warm, prior_loop(step, 0.5 * noise[:, :1], 0.5 * noise[:, 1:]), atol=1e-5)


def combiner_then_transition_means(module, s, d):
  """Frames [B, LONGER, ...]: the combiner's pose means for the training length, then the transition's means."""
  combined, _ = module.infer_z(d, jnp.zeros((d.shape[0], VDSM_T, VDSM_CONFIG.dim_z)))
  later = vdsm.transition_rollout(module.transition, combined[:, -1], d, jnp.zeros((d.shape[0], LONGER - VDSM_T, 5)))
  return jax.nn.sigmoid(module.decode(s, jnp.concatenate([combined, later[:, 1:]], axis=1), TAU))


def test_vdsm_at_rollout_temperature_zero_takes_the_transition_means_whatever_the_key(vdsm_codec):
  codes = vdsm_codec.encode(videos(VDSM_B, VDSM_T, seed=6))
  cold = dataclasses.replace(vdsm_codec, rollout_temperature=0.0)
  expected = apply(vdsm_codec, codes.static, codes.dynamics, method=combiner_then_transition_means)
  for key in (KEY, jax.random.key(7)):
    np.testing.assert_allclose(cold.decode(codes, key, LONGER), expected, atol=1e-6)
  assert np.abs(vdsm_codec.decode(codes, KEY, LONGER) - expected).max() > 1e-4


def test_pose_codec_rollout_temperature_scales_its_standard_normal_poses(pose_codec):
  warm = dataclasses.replace(pose_codec, rollout_temperature=0.5)
  np.testing.assert_allclose(warm.sample_dynamics(KEY, 3, LONGER), 0.5 * jax.random.normal(KEY, (3, LONGER, 5)), rtol=1e-6)
  codes = pose_codec.encode(videos(VDSM_B, VDSM_T, seed=8))
  cold = dataclasses.replace(pose_codec, rollout_temperature=0.0)
  padded = jnp.concatenate([codes.dynamics, jnp.zeros((VDSM_B, LONGER - VDSM_T, 5))], axis=1)
  np.testing.assert_allclose(cold.decode(codes, KEY, LONGER), cold.decode(Codes(codes.static, padded), None), atol=1e-6)


PRIOR_CELLS = {"dsa_codec": dsa.StablePriorCell, "dsa_lstm_codec": dsa.LSTMPriorCell}


def prior_means_loop(step, z):
  """Means and scales [B, T, Z] of p(z_t | z_<t) at the given z: N(0, I) at t = 1, then the cell's step on z_<t."""
  state = (jnp.zeros((z.shape[0], H)), jnp.zeros((z.shape[0], H)))
  means, scales = [jnp.zeros_like(z[:, 0])], [jnp.ones_like(z[:, 0])]
  for t in range(z.shape[1] - 1):
    state, next_dist = step(state, z[:, t])
    means.append(next_dist.loc)
    scales.append(next_dist.scale)
  return jnp.stack(means, axis=1), jnp.stack(scales, axis=1)


@pytest.mark.parametrize("name", PRIOR_CELLS)
@pytest.mark.parametrize("num_frames", [1, LONGER])
def test_dsa_dynamics_means_are_the_python_loop_of_the_prior_means_on_the_sampled_rollout(request, name, num_frames):
  codec = request.getfixturevalue(name)
  cell = PRIOR_CELLS[name](Z, H)
  step = jax.jit(lambda state, z: cell.apply({"params": codec.params["prior"]["cell"]}, state, z))
  noise = {}
  for temperature in (1.0, 0.5):
    warm = dataclasses.replace(codec, rollout_temperature=temperature)
    samples, means = warm.sample_dynamics(KEY, 3, num_frames), warm.sample_dynamics_means(KEY, 3, num_frames)
    assert means.shape == samples.shape == (3, num_frames, Z)
    loop_means, loop_scales = prior_means_loop(step, samples)
    np.testing.assert_allclose(means, loop_means, atol=1e-5)
    noise[temperature] = (samples - means) / loop_scales  # [3, T, Z]: what separates each sample from its mean
  np.testing.assert_allclose(noise[0.5], 0.5 * noise[1.0], atol=1e-4)  # one standard-normal draw, scaled
  assert np.abs(noise[1.0]).min() > 0 and 0.5 < float(noise[1.0].std()) < 1.5
  cold = dataclasses.replace(codec, rollout_temperature=0.0)
  cold_means, cold_samples = cold.sample_dynamics_means(KEY, 3, num_frames), cold.sample_dynamics(KEY, 3, num_frames)
  np.testing.assert_allclose(cold_means, cold_samples, atol=1e-6)  # no noise: the rollout is its means


def test_vdsm_dynamics_means_are_the_sampled_action_itself(vdsm_codec):
  means = vdsm_codec.sample_dynamics_means(KEY, VDSM_B, LONGER)
  np.testing.assert_array_equal(means, vdsm_codec.sample_dynamics(KEY, VDSM_B, LONGER))
  np.testing.assert_allclose(means, jax.random.normal(KEY, (VDSM_B, 3)) / 3, rtol=1e-6)


def test_pose_dynamics_means_are_zeros_so_the_samples_are_the_noise_term_alone(pose_codec):
  warm = dataclasses.replace(pose_codec, rollout_temperature=0.5)
  means = warm.sample_dynamics_means(KEY, 3, LONGER)
  np.testing.assert_array_equal(means, np.zeros((3, LONGER, 5)))
  noise = 0.5 * jax.random.normal(KEY, (3, LONGER, 5))
  np.testing.assert_allclose(warm.sample_dynamics(KEY, 3, LONGER) - means, noise, rtol=1e-6)
