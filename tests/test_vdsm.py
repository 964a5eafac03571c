"""VDSM: layers against independent implementations, scans against loops, stages, schedules, sampling."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dsa_jax import codecs, sampling, schedules, tasks, train
from dsa_jax.models import vdsm, vdsm_layers
from experiments import base, vdsm_pendulum

TINY = vdsm.VDSMConfig(
    image_shape=(16, 16, 3), dim_z=5, dim_s=7, dim_d=3, rnn_size=11, rnn_layers=2, combiner_size=13,
    transition_size=17, identity_hidden=19, encoder_channels=(4, 6, 23), decoder_channels=(8, 6),
)
B, T = 2, 3


def videos(batch=B, time=T, size=16, seed=0):
  return jnp.asarray(np.random.default_rng(seed).random((batch, time, size, size, 3)), jnp.float32)


@pytest.fixture(scope="module")
def tiny():
  model = vdsm.VDSM(TINY)
  init = jax.jit(model.init, compiler_options=train.CPU_INIT_COMPILER_OPTIONS)
  params = init({"params": jax.random.key(0), "sample": jax.random.key(1)}, videos())["params"]
  return model, params


def torch_conv_transpose(inputs, kernel, bias, stride, padding):
  """PyTorch ConvTranspose2d(k4) semantics by lax: dilate the input, pad k-1-p, flipped kernel."""
  pad = kernel.shape[0] - 1 - padding
  outputs = jax.lax.conv_general_dilated(
      inputs, kernel[::-1, ::-1], (1, 1), ((pad, pad), (pad, pad)), lhs_dilation=(stride, stride),
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
  )
  return outputs + bias


def explicit_decoder(params, latents, weights, negative_slope=0.01):
  """The MoE decoder sequence by sequence: Python sums over experts, one conv_transpose per layer."""
  num_layers = len([name for name in params if name.startswith("kernel_")])
  videos = []
  for b in range(latents.shape[0]):
    blend = lambda name: sum(weights[b, e] * params[name][e] for e in range(weights.shape[1]))  # noqa: E731
    hidden = latents[b][:, None, None, :]  # [T, 1, 1, D]: ConvT(k4, s1, p0) from 1x1
    kernel_0 = blend("kernel_0").transpose(1, 2, 0, 3)  # [4, 4, D, O]
    hidden = torch_conv_transpose(hidden, kernel_0, blend("bias_0"), 1, 0)
    hidden = jax.nn.leaky_relu(hidden, negative_slope)
    for i in range(1, num_layers):
      kernel = blend(f"kernel_{i}").transpose(1, 2, 0, 3)  # [I, 4, 4, O] -> [4, 4, I, O]
      hidden = torch_conv_transpose(hidden, kernel, blend(f"bias_{i}"), 2, 1)
      if i < num_layers - 1:
        hidden = jax.nn.leaky_relu(hidden, negative_slope)
    videos.append(hidden)
  return jnp.stack(videos)


def test_blended_moe_decoder_equals_an_explicit_per_sequence_decoder(tiny):
  model, params = tiny
  decoder_params = params["decoder"]
  latents = jax.random.normal(jax.random.key(2), (B, T, TINY.dim_z + TINY.dim_s))
  weights = jax.nn.softmax(jax.random.normal(jax.random.key(3), (B, TINY.dim_s)) * 3.0)
  decoder = vdsm_layers.MixtureDecoder(TINY.dim_s, TINY.image_shape, TINY.decoder_channels)
  got = decoder.apply({"params": decoder_params}, latents, weights)
  assert got.shape == (B, T, 16, 16, 3)
  np.testing.assert_allclose(got, explicit_decoder(decoder_params, latents, weights), rtol=2e-4, atol=2e-5)


def test_one_hot_weights_give_that_expert(tiny):
  _, params = tiny
  decoder_params = params["decoder"]
  latents = jax.random.normal(jax.random.key(4), (B, T, TINY.dim_z + TINY.dim_s))
  experts = np.array([3, 5])
  weights = jax.nn.one_hot(experts, TINY.dim_s)
  decoder = vdsm_layers.MixtureDecoder(TINY.dim_s, TINY.image_shape, TINY.decoder_channels)
  got = decoder.apply({"params": decoder_params}, latents, weights)
  for b, expert in enumerate(experts):
    single = {name: value[expert : expert + 1] for name, value in decoder_params.items()}
    expected = explicit_decoder(single, latents[b : b + 1], jnp.ones((1, 1)))[0]
    np.testing.assert_allclose(got[b], expected, rtol=2e-4, atol=2e-5)


def test_conv_transpose_stride2_matches_the_definition():
  rng = np.random.default_rng(0)
  inputs, kernel = rng.normal(size=(2, 3, 5, 7, 4)), rng.normal(size=(2, 4, 4, 4, 3))  # kernel [B, I, 4, 4, O]
  bias = rng.normal(size=(2, 3))
  full = np.zeros((2, 3, 12, 16, 3))
  for i in range(5):
    for j in range(7):
      for u in range(4):
        for v in range(4):
          full[:, :, 2 * i + u, 2 * j + v] += np.einsum("bti,bio->bto", inputs[:, :, i, j], kernel[:, :, u, v])
  expected = full[:, :, 1:11, 1:15] + bias[:, None, None, None]  # padding 1 crops one pixel per side
  got = vdsm_layers.conv_transpose_stride2(jnp.asarray(inputs, jnp.float32), jnp.asarray(kernel, jnp.float32), jnp.asarray(bias, jnp.float32))
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_conv_transpose_stride2_gradients_equal_those_of_lax_conv_transpose():
  rng = np.random.default_rng(1)
  inputs = jnp.asarray(rng.normal(size=(2, 3, 5, 7, 4)), jnp.float32)
  kernel, bias = jnp.asarray(rng.normal(size=(2, 4, 4, 4, 3)), jnp.float32), jnp.asarray(rng.normal(size=(2, 3)), jnp.float32)
  cotangent = jnp.asarray(rng.normal(size=(2, 3, 10, 14, 3)), jnp.float32)

  def reference(inputs, kernel, bias):
    return jnp.stack([torch_conv_transpose(inputs[b], kernel[b].transpose(1, 2, 0, 3), bias[b], 2, 1) for b in range(2)])

  _, vjp = jax.vjp(vdsm_layers.conv_transpose_stride2, inputs, kernel, bias)
  _, reference_vjp = jax.vjp(reference, inputs, kernel, bias)
  for got, expected in zip(vjp(cotangent), reference_vjp(cotangent)):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_blend_gradients_equal_those_of_a_plain_matmul_for_chunked_and_small_experts():
  rng = np.random.default_rng(2)
  for size in (3 * vdsm_layers.INNER_PRODUCT_CHUNK + 5, 7):
    weights = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
    experts = jnp.asarray(rng.normal(size=(4, size, 2)), jnp.float32)
    cotangent = jnp.asarray(rng.normal(size=(3, size, 2)), jnp.float32)
    _, vjp = jax.vjp(vdsm_layers.blend, weights, experts)
    _, plain_vjp = jax.vjp(lambda w, e: jnp.einsum("be,enc->bnc", w, e), weights, experts)
    for got, expected in zip(vjp(cotangent), plain_vjp(cotangent)):
      np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_blur_pool_is_a_reflect_padded_binomial_filter_with_stride_2():
  inputs = jnp.asarray(np.random.default_rng(1).normal(size=(2, 7, 10, 3)), jnp.float32)
  padded = jnp.pad(inputs, ((0, 0), (1, 2), (1, 2), (0, 0)), mode="reflect")
  taps = np.array([1.0, 3.0, 3.0, 1.0])
  kernel = np.outer(taps, taps) / 64.0
  depthwise = jnp.asarray(np.tile(kernel[:, :, None, None], (1, 1, 1, 3)), jnp.float32)  # [4, 4, 1, C]
  expected = jax.lax.conv_general_dilated(
      padded, depthwise, (2, 2), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=3
  )
  got = vdsm_layers.blur_pool(inputs)
  assert got.shape == (2, 4, 5, 3)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_encoder_gives_256_features_per_64x64_frame():
  encoder = vdsm_layers.Encoder()
  frames = jnp.zeros((3, 64, 64, 3))
  params = jax.jit(encoder.init)(jax.random.key(0), frames)
  assert jax.jit(encoder.apply)(params, frames).shape == (3, 256)
  with pytest.raises(ValueError, match="4 \\* 2\\^k"):
    vdsm_layers.num_blocks(48)


def test_every_output_has_the_documented_shape(tiny):
  model, params = tiny
  pretrain, sequence = jax.jit(model.apply)({"params": params}, videos(), rngs={"sample": jax.random.key(5)})
  assert pretrain.logits.shape == sequence.logits.shape == (B, T, 16, 16, 3)
  assert pretrain.kl_z.shape == sequence.kl_z.shape == (B, T)
  assert pretrain.kl_s.shape == sequence.kl_d.shape == pretrain.log_likelihood.shape == (B,)
  assert sequence.s.shape == (B, 7) and sequence.d.shape == (B, 3) and sequence.z.shape == (B, T, 5)
  assert np.all(np.asarray(pretrain.kl_z) >= 0) and np.all(np.asarray(sequence.kl_d) >= 0)


def test_combiner_scan_equals_a_python_loop(tiny):
  model, params = tiny
  d = jax.random.normal(jax.random.key(6), (B, 3))
  noise = jax.random.normal(jax.random.key(7), (B, 4, 5))
  z, q_z = model.apply({"params": params}, d, noise, method="infer_z")
  combiner = params["combiner"]
  h_bar = model.apply({"params": params}, d, 4, method=lambda m, d, n: m.seq2seq.decode(d, n))
  dense = lambda p, x: x @ p["kernel"] + p["bias"]  # noqa: E731
  z_previous = jnp.broadcast_to(combiner["z_0"], (B, 5))
  for t in range(4):
    h_hat = jax.nn.leaky_relu(dense(combiner["from_rnn"], jnp.concatenate([h_bar[:, t], d], -1)))
    combined = 0.5 * (jnp.tanh(dense(combiner["from_z"], z_previous)) + h_hat)
    loc, scale = dense(combiner["loc"], combined), jax.nn.softplus(dense(combiner["scale"], combined)) + vdsm.SCALE_FLOOR
    z_previous = loc + scale * noise[:, t]
    np.testing.assert_allclose(q_z.loc[:, t], loc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z[:, t], z_previous, rtol=1e-5, atol=1e-5)


def test_seq2seq_decoder_scan_equals_a_python_loop_of_stacked_cells(tiny):
  model, params = tiny
  d = jax.random.normal(jax.random.key(8), (B, 3))
  outputs = model.apply({"params": params}, d, 5, method=lambda m, d, n: m.seq2seq.decode(d, n))
  seq2seq = params["seq2seq"]
  initial = (d @ seq2seq["initial_state"]["kernel"] + seq2seq["initial_state"]["bias"]).reshape(B, 2, 2, 11)
  states = [(initial[:, i, 0], initial[:, i, 1]) for i in range(2)]
  inputs = jnp.broadcast_to(seq2seq["first_input"], (B, 11))
  cell = vdsm.nn.OptimizedLSTMCell(11)
  for t in range(5):
    for i in range(2):
      states[i], inputs = cell.apply({"params": seq2seq["decoder"][f"lstm_{i}"]}, states[i], inputs)
    np.testing.assert_allclose(outputs[:, t], inputs, rtol=1e-5, atol=1e-6)


def test_transition_rollout_scan_equals_a_python_loop(tiny):
  model, params = tiny
  z_1, d = jax.random.normal(jax.random.key(9), (B, 5)), jax.random.normal(jax.random.key(10), (B, 3))
  noise = jax.random.normal(jax.random.key(11), (B, 6, 5))
  transition = functools.partial(model.apply, {"params": params}, method=lambda m, z, d: m.transition(z, d))
  rolled = vdsm.transition_rollout(transition, z_1, d, noise)
  z = z_1
  assert rolled.shape == (B, 7, 5)
  for t in range(6):
    p_t = transition(z, d)
    z = p_t.loc + p_t.scale * noise[:, t]
    np.testing.assert_allclose(rolled[:, t + 1], z, rtol=1e-5, atol=1e-5)


def test_transition_starts_near_identity_on_its_linear_path(tiny):
  _, params = tiny
  kernel = params["transition"]["linear"]["kernel"]
  np.testing.assert_array_equal(kernel, np.eye(5 + 3, 5))


def test_schedules_hit_their_endpoints_and_are_monotone():
  config = base.get_config()
  pre, seq = config.vdsm_pretrain, config.vdsm_sequence
  last_pre = pre.num_epochs * pre.steps_per_epoch - 1
  start, end = schedules.pretrain_weights(0, pre), schedules.pretrain_weights(last_pre, pre)
  assert (float(start.lambda_z), float(start.lambda_s), float(start.tau)) == (30.0, pytest.approx(0.1), 1.0)
  assert (float(end.lambda_z), float(end.lambda_s), float(end.tau)) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(10.0))
  steps = jnp.arange(0, last_pre + 1, 50)
  lambda_z = np.asarray(schedules.pretrain_weights(steps, pre).lambda_z)
  assert np.all(np.diff(lambda_z) <= 0) and np.all(np.diff(np.asarray(schedules.pretrain_weights(steps, pre).tau)) >= 0)
  assert float(schedules.pretrain_weights(49, pre).tau) == 1.0  # constant within an epoch
  last_seq = seq.num_epochs * seq.steps_per_epoch - 1
  first, final = schedules.sequence_weights(0, seq), schedules.sequence_weights(last_seq, seq)
  assert float(first.lambda_z) == pytest.approx(0.1) and float(final.lambda_z) == pytest.approx(1.0)
  assert float(first.lambda_d) == pytest.approx(0.1) and float(final.lambda_d) == pytest.approx(1.0)
  assert float(final.tau) == 10.0 and float(final.lambda_s) == 1.0
  spline = config.vdsm_pretrain
  spline.lambda_z_schedule = "spline"
  middle = (spline.num_epochs - 1) // 2 * spline.steps_per_epoch
  assert float(schedules.pretrain_weights(middle, spline).lambda_z) < 0.01


def test_schedule_plot_is_written(tmp_path):
  path = schedules.plot(base.get_config(), str(tmp_path / "schedules.png"))
  assert path.endswith("schedules.png") and (tmp_path / "schedules.png").stat().st_size > 10_000


def test_sequence_stage_leaves_frozen_parameters_bit_identical(tiny):
  model, params = tiny
  config = base.get_config()
  config.model, config.stage = "vdsm", "sequence"
  labels = tasks.vdsm_labels(params, "sequence")
  tx = train.make_optimizer(config.vdsm_sequence.learning_rate, None, functools.partial(tasks.vdsm_labels, stage="sequence"))
  state = train.state_from_params(tasks.Task("t", model, None, None, None), tx, params)

  def loss_fn(params, batch, key, step):
    del step
    params = tasks.frozen_as_constants(params, tasks.vdsm_labels(params, "sequence"))
    output = model.apply({"params": params}, batch["video"], 10.0, rngs={"sample": key}, method="sequence")
    return jnp.mean(-output.log_likelihood + output.kl_d + output.kl_s + output.kl_z.sum(-1)), {}

  step = jax.jit(functools.partial(train.train_step, loss_fn=loss_fn))
  new_state = state
  for _ in range(2):
    new_state, _ = step(new_state, {"video": videos()}, jax.random.key(12))
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), params, new_state.params)
  frozen = [c for c, label in zip(jax.tree.leaves(changed), jax.tree.leaves(labels)) if label == "frozen"]
  trained = [c for c, label in zip(jax.tree.leaves(changed), jax.tree.leaves(labels)) if label == "trained"]
  assert len(frozen) > 10 and not any(frozen)
  assert sum(trained) >= len(trained) - 2  # everything trained moved (the learned first input may not yet)
  assert all(label == "frozen" for label in jax.tree.leaves(labels["decoder"]))
  assert all(label == "trained" for label in jax.tree.leaves(labels["static_factor"]))


def test_sampling_shapes_for_horizons_longer_than_training(tiny):
  model, params = tiny
  codec = codecs.VDSMCodec(model, params, train_frames=4, inverse_temperature=10.0)
  clip = videos(3, 4)
  assert sampling.generate(codec, jax.random.key(0), 3, 11).shape == (3, 11, 16, 16, 3)
  assert sampling.extend(codec, clip, jax.random.key(1), 11).shape == (3, 11, 16, 16, 3)
  one_frame = clip[:, :1]
  assert sampling.continue_video(codec, one_frame, jax.random.key(1), 9).shape == (3, 9, 16, 16, 3)
  grid = sampling.swap_grid(codec, clip[:2], clip, jax.random.key(2), 13)
  assert grid.shape == (2, 3, 13, 16, 16, 3)
  swapped = sampling.swap(codec, clip, clip[::-1], jax.random.key(3))
  np.testing.assert_allclose(swapped[1], grid[1, 1, :4], rtol=1e-5, atol=1e-6)  # same s and d as grid (1, 1)
  with pytest.raises(ValueError, match="NaN"):
    sampling.reconstruct(codec, jnp.full((1, 2, 16, 16, 3), jnp.nan), jax.random.key(0))


def test_quick_config_is_valid_and_both_stages_have_their_settings():
  config = vdsm_pendulum.get_config("quick")
  pretrain, sequence = tasks.make_stages(config, (16, 16, 3), "/tmp/w")
  assert (pretrain.name, pretrain.num_steps, pretrain.batch_size, pretrain.task.group_size) == ("pretrain", 8 * 50, 16, 2)
  assert pretrain.learning_rate == config.vdsm_pretrain.learning_rate
  assert (sequence.name, sequence.learning_rate, sequence.task.group_size) == ("sequence", config.vdsm_sequence.learning_rate, 1)
  assert sequence.task.load_params.args == ("/tmp/w",) and pretrain.task.load_params is None
  config.stage = "sequence"
  assert [stage.name for stage in tasks.make_stages(config, (16, 16, 3), "/tmp/w")] == ["sequence"]
  config.stage = "second"
  with pytest.raises(tasks.ConfigError, match="config.stage must be 'both' or one of"):
    tasks.make_stages(config, (16, 16, 3), "/tmp/w")
  with pytest.raises(AttributeError):
    config.vdsm.dim_zz = 3
  with pytest.raises(ValueError, match="Unknown variant"):
    vdsm_pendulum.get_config("quik")


@pytest.mark.parametrize(
    "field, value, advice",
    [
        ("num_steps", 100, "set config.vdsm_pretrain.num_epochs / steps_per_epoch and config.vdsm_sequence.num_epochs"),
        ("batch_size", 8, "set config.vdsm_pretrain.batch_size and config.vdsm_sequence.batch_size instead"),
        ("learning_rate", 1e-3, "set config.vdsm_pretrain.learning_rate and config.vdsm_sequence.learning_rate instead"),
        ("cooldown_steps", 50, "whose stages follow the paper's schedules (config.vdsm_pretrain and config.vdsm_sequence): leave it at 0"),
    ],
)
def test_train_fields_on_vdsm_fail_naming_the_stage_fields(field, value, advice):
  config = vdsm_pendulum.get_config("quick")
  config.train[field] = value
  with pytest.raises(tasks.ConfigError, match=rf"config.train.{field} does not apply to VDSM.*{re.escape(advice)}"):
    tasks.make_stages(config, (16, 16, 3), "/tmp/w")


def test_pendulum_small_variant_is_a_valid_32x32_model_with_60_frame_samples():
  config = vdsm_pendulum.get_config("small")
  model_config = tasks.vdsm_model_config(config, (config.data.image_size, config.data.image_size, 3))
  assert model_config.image_shape == (32, 32, 3) and model_config.dim_s == 8
  assert config.data.num_frames == 16 and config.sample.num_frames == 60
  assert tasks.make_stages(config, (32, 32, 3), "/tmp/w")[0].num_steps == 40 * 50
