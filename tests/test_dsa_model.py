"""DSA modules: shapes at prime sizes, scans against Python loops, a hand-computed ELBO."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dsa_jax import losses
from dsa_jax.models import dsa, layers

B, T, Z, F, H = 2, 3, 5, 7, 11
IMAGE = (16, 16, 3)
KEY = jax.random.key(0)


def tiny_config(**overrides) -> dsa.DSAConfig:
  sizes = dict(image_shape=IMAGE, dim_f=F, dim_z=Z, dim_h=H, dim_hidden=13, num_channels=3)
  return dsa.DSAConfig(**{**sizes, **overrides})


def videos(key=KEY, shape=(B, T, *IMAGE)):
  return jax.random.uniform(key, shape)


def test_frame_encoder_and_decoder_shapes():
  frames = videos().reshape(B * T, *IMAGE)
  encoder = layers.FrameEncoder(widths=(3, 3, 3), feature_size=13)
  features = encoder.apply(encoder.init(KEY, frames), frames)
  assert features.shape == (B * T, 13)
  decoder = layers.FrameDecoder(widths=(3, 3, 3), hidden_size=13, image_shape=IMAGE)
  latents = jnp.ones((B * T, F + Z))
  assert decoder.apply(decoder.init(KEY, latents), latents).shape == (B * T, *IMAGE)
  with pytest.raises(ValueError, match=r"16x16 frames need one conv width per resolution from 16 down to 4; got \(3, 3\)"):
    layers.FrameEncoder(widths=(3, 3), feature_size=13).init(KEY, frames)


def test_channels_per_resolution_set_each_conv_width():
  frames = videos().reshape(B * T, *IMAGE)
  widths = (2, 3, 5)  # at 16, 8 and 4 pixels
  encoder = layers.FrameEncoder(widths=widths, feature_size=13)
  encoder_params = encoder.init(KEY, frames)["params"]
  assert [encoder_params[name]["kernel"].shape[-1] for name in ("conv_in", "down_0", "down_1")] == list(widths)
  assert encoder_params["dense"]["kernel"].shape == (4 * 4 * 5, 13)
  decoder = layers.FrameDecoder(widths=widths, hidden_size=13, image_shape=IMAGE)
  latents = jnp.ones((B * T, F + Z))
  decoder_params = decoder.init(KEY, latents)["params"]
  assert decoder_params["dense_1"]["kernel"].shape == (13, 4 * 4 * 5)
  assert [decoder_params[name]["kernel"].shape[-1] for name in ("up_0", "up_1")] == [3, 2]
  assert decoder.apply({"params": decoder_params}, latents).shape == (B * T, *IMAGE)
  assert layers.resolution_channels(7, (), 16) == (7, 7, 7) and layers.resolution_channels(7, widths, 16) == widths


@pytest.mark.parametrize("widths", [(2, 3), (2, 0, 5)])
def test_channels_per_resolution_of_the_wrong_length_or_zero_are_refused(widths):
  with pytest.raises(ValueError, match="16x16 frames need 3 positive channel counts.*channels_per_resolution"):
    tiny_config(channels_per_resolution=widths)


@pytest.mark.parametrize("size", [12, 17, 0])
def test_resolution_rejects_sizes_that_are_not_4_times_a_power_of_two(size):
  with pytest.raises(ValueError, match="4 \\* 2\\*\\*k"):
    layers.num_resolution_steps(size)


def test_conv_transpose_2x_equals_flax_conv_transpose():
  inputs = jax.random.normal(KEY, (B, 5, 7, 3))
  ours = layers.ConvTranspose2x(features=11)
  params = ours.init(KEY, inputs)
  reference = nn.ConvTranspose(11, (3, 3), strides=(2, 2), padding="SAME")
  expected = reference.apply(params, inputs)
  np.testing.assert_allclose(ours.apply(params, inputs), expected, atol=1e-5)
  assert expected.shape == (B, 10, 14, 11)


@pytest.mark.parametrize(
    "shape, features, kernel_size, stride, padding",
    [
        ((B, 8, 6, 2), 7, 3, 1, "SAME"),  # kernel gradient over the inputs
        ((B, 8, 6, 7), 2, 3, 1, "SAME"),  # kernel gradient over the cotangent
        ((B, 9, 7, 3), 4, 4, 1, ((1, 2), (0, 1))),
        ((B, 8, 6, 3), 5, 3, 2, "SAME"),  # space-to-depth blocks
        ((B, 12, 8, 3), 5, 4, 2, ((2, 1), (0, 2))),
        ((B, 8, 8, 3), 5, 3, 2, "VALID"),
        ((B, 9, 8, 3), 5, 3, 2, "SAME"),  # odd height: lax's own conv
    ],
)
def test_conv_general_dilated_equals_lax_in_value_and_both_gradients(shape, features, kernel_size, stride, padding):
  inputs = jax.random.normal(KEY, shape)
  reference = nn.Conv(features, (kernel_size, kernel_size), strides=stride, padding=padding)
  ours = nn.Conv(features, (kernel_size, kernel_size), strides=stride, padding=padding, conv_general_dilated=layers.conv_general_dilated)
  params = reference.init(KEY, inputs)
  cotangent = jax.random.normal(jax.random.key(1), reference.apply(params, inputs).shape)

  def loss(module):
    return lambda params, inputs: jnp.sum(module.apply(params, inputs) * cotangent)

  expected, expected_gradients = jax.value_and_grad(loss(reference), argnums=(0, 1))(params, inputs)
  value, gradients = jax.value_and_grad(loss(ours), argnums=(0, 1))(params, inputs)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  for got, want in zip(jax.tree.leaves(gradients), jax.tree.leaves(expected_gradients)):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4 * float(jnp.max(jnp.abs(want))))


def test_space_to_depth_kernel_matches_space_to_depth_inputs():
  inputs = jax.random.normal(KEY, (1, 4, 4, 2))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 2, 1))
  blocks, block_kernel = layers.space_to_depth(inputs), layers.space_to_depth_kernel(kernel)
  assert blocks.shape == (1, 2, 2, 8) and block_kernel.shape == (2, 2, 8, 1)
  # Output (0, 0) of the stride-2 conv reads input rows and columns 0..2: block (0, 0) and the first row/column of its neighbours.
  expected = jnp.sum(inputs[0, :3, :3, :] * kernel[..., 0])
  np.testing.assert_allclose(jnp.sum(blocks[0, :2, :2, :] * block_kernel[..., 0]), expected, rtol=1e-5)


def test_decoder_output_conv_equals_the_stride_1_conv_transpose_of_earlier_checkpoints():
  hidden = jax.random.normal(KEY, (B, 6, 5, 4))
  ours = nn.Conv(3, (3, 3), conv_general_dilated=layers.conv_general_dilated)
  params = ours.init(KEY, hidden)
  earlier = nn.ConvTranspose(3, (3, 3))
  assert jax.tree.map(jnp.shape, earlier.init(KEY, hidden)) == jax.tree.map(jnp.shape, params)
  np.testing.assert_allclose(ours.apply(params, hidden), earlier.apply(params, hidden), atol=1e-5)


def test_bilstm_equals_python_loop():
  inputs = jax.random.normal(KEY, (B, T, Z))
  module = layers.BiLSTM(H)
  params = module.init(KEY, inputs)["params"]
  outputs, forward_last, backward_first = module.apply({"params": params}, inputs)
  assert outputs.shape == (B, T, 2 * H) and forward_last.shape == (B, H)
  cell = nn.OptimizedLSTMCell(H)

  def run(direction_params, order):
    carry = (jnp.zeros((B, H)), jnp.zeros((B, H)))
    per_step = {}
    for t in order:
      carry, per_step[t] = cell.apply({"params": direction_params}, carry, inputs[:, t])
    return jnp.stack([per_step[t] for t in range(T)], axis=1), carry[1]

  forward, last = run(params["forward"], range(T))
  backward, first = run(params["backward"], reversed(range(T)))
  np.testing.assert_allclose(outputs, jnp.concatenate([forward, backward], -1), atol=1e-6)
  np.testing.assert_allclose(forward_last, last, atol=1e-6)
  np.testing.assert_allclose(backward_first, first, atol=1e-6)


@pytest.mark.parametrize("posterior_class", [dsa.FactorisedPosterior, dsa.FullPosterior])
def test_posterior_shapes(posterior_class):
  features, f = jnp.ones((B, T, 13)), jnp.ones((B, F))
  module = posterior_class(dim_z=Z, hidden_size=H)
  q_z = module.apply(module.init(KEY, features, f), features, f)
  assert q_z.loc.shape == q_z.scale.shape == (B, T, Z)
  static = dsa.StaticPosterior(dim_f=F, hidden_size=H)
  q_f = static.apply(static.init(KEY, features), features)
  assert q_f.loc.shape == (B, F) and bool(jnp.all(q_f.scale > 0))


@pytest.mark.parametrize("kind", dsa.PRIORS)
def test_prior_teacher_forcing_equals_python_loop(kind):
  z = jax.random.normal(KEY, (B, T, Z))
  prior = dsa.DynamicsPrior(kind, Z, H)
  params = prior.init(KEY, z)["params"]
  scanned = prior.apply({"params": params}, z)
  cell = (dsa.StablePriorCell if kind == "stable" else dsa.LSTMPriorCell)(Z, H)
  state = (jnp.zeros((B, H)), jnp.zeros((B, H)))
  locs, scales = [jnp.zeros((B, Z))], [jnp.ones((B, Z))]
  for t in range(T - 1):
    state, next_dist = cell.apply({"params": params["cell"]}, state, z[:, t])
    locs.append(next_dist.loc)
    scales.append(next_dist.scale)
  np.testing.assert_allclose(scanned.loc, jnp.stack(locs, 1), atol=1e-6)
  np.testing.assert_allclose(scanned.scale, jnp.stack(scales, 1), atol=1e-6)


@pytest.mark.parametrize("kind", dsa.PRIORS)
def test_prior_rollout_equals_python_loop_and_its_own_teacher_forcing(kind):
  noise = jax.random.normal(KEY, (B, 13, Z))  # longer than any training clip
  prior = dsa.DynamicsPrior(kind, Z, H)
  params = prior.init(KEY, noise)["params"]
  z, rollout_dists = prior.apply({"params": params}, noise, method="rollout")
  cell = (dsa.StablePriorCell if kind == "stable" else dsa.LSTMPriorCell)(Z, H)
  state, expected = (jnp.zeros((B, H)), jnp.zeros((B, H))), [noise[:, 0]]
  for t in range(1, 13):
    state, next_dist = cell.apply({"params": params["cell"]}, state, expected[-1])
    expected.append(next_dist.loc + next_dist.scale * noise[:, t])
  np.testing.assert_allclose(z, jnp.stack(expected, 1), atol=1e-5)
  teacher_forced = prior.apply({"params": params}, z)
  np.testing.assert_allclose(teacher_forced.loc, rollout_dists.loc, atol=1e-5)


@pytest.mark.parametrize("posterior", dsa.POSTERIORS)
@pytest.mark.parametrize("prior", dsa.PRIORS)
def test_dsa_output_shapes(posterior, prior):
  model = dsa.DSA(tiny_config(posterior=posterior, prior=prior))
  rngs = {"params": KEY, "sample": jax.random.key(1)}
  params = model.init(rngs, videos())["params"]
  out = model.apply({"params": params}, videos(), rngs={"sample": jax.random.key(2)})
  assert out.logits.shape == (B, T, *IMAGE)
  assert out.log_likelihood.shape == out.kl_f.shape == (B,)
  assert out.kl_z.shape == (B, T) and out.z.shape == (B, T, Z) and out.f.shape == (B, F)
  assert bool(jnp.all(out.kl_f >= 0)) and bool(jnp.all(out.kl_z >= 0))
  z = model.apply({"params": params}, B, 19, rngs={"sample": KEY}, method="sample_dynamics")
  extended = model.apply({"params": params}, out.z, 19, rngs={"sample": KEY}, method="extend_dynamics")
  assert z.shape == extended.shape == (B, 19, Z)
  np.testing.assert_array_equal(extended[:, :T], out.z)
  generated = jax.nn.sigmoid(model.apply({"params": params}, out.f, z, method="decode"))
  assert generated.shape == (B, 19, *IMAGE)
  assert bool(jnp.all((generated >= 0) & (generated <= 1)))


def _kl_1d(q_loc, q_log_scale, p_loc, p_log_scale):
  q_var, p_var = np.exp(2 * q_log_scale), np.exp(2 * p_log_scale)
  return p_log_scale - q_log_scale + (q_var + (q_loc - p_loc) ** 2) / (2 * p_var) - 0.5


@pytest.mark.parametrize("prior", dsa.PRIORS)
def test_elbo_of_hand_built_model(prior):
  """All kernels zero, chosen biases: every term of the ELBO has a closed form."""
  model = dsa.DSA(tiny_config(prior=prior))
  x = videos()
  params = model.init({"params": KEY, "sample": KEY}, x)["params"]
  params = jax.tree.map(jnp.zeros_like, params)
  f_loc, f_log_scale, z_loc, z_log_scale, p_loc, p_log_scale, pixel_logit = 0.3, -0.4, -0.2, 0.1, 0.5, -0.3, 0.7
  params["static_posterior"]["head"]["dense"]["bias"] = jnp.array([f_loc] * F + [f_log_scale] * F)
  params["dynamic_posterior"]["head"]["dense"]["bias"] = jnp.array([z_loc] * Z + [z_log_scale] * Z)
  prior_head = "mlp4_out" if prior == "stable" else "head"
  params["prior"]["cell"][prior_head]["bias"] = jnp.array([p_loc] * Z + [p_log_scale] * Z)
  params["decoder"]["conv_out"]["bias"] = jnp.full((3,), pixel_logit)

  out = model.apply({"params": params}, x, rngs={"sample": jax.random.key(5)})

  pixels = np.asarray(x, np.float64)
  p_on = 1 / (1 + np.exp(-pixel_logit))
  log_likelihood = (pixels * np.log(p_on) + (1 - pixels) * np.log(1 - p_on)).reshape(B, -1).sum(-1)
  kl_f = F * _kl_1d(f_loc, f_log_scale, 0.0, 0.0)
  kl_z_first = Z * _kl_1d(z_loc, z_log_scale, 0.0, 0.0)
  kl_z_later = Z * _kl_1d(z_loc, z_log_scale, p_loc, p_log_scale)
  np.testing.assert_allclose(out.log_likelihood, log_likelihood, rtol=1e-5)
  np.testing.assert_allclose(out.kl_f, [kl_f] * B, rtol=1e-5)
  np.testing.assert_allclose(out.kl_z, [[kl_z_first] + [kl_z_later] * (T - 1)] * B, rtol=1e-5)


  loss, metrics = losses.dsa_loss(out, losses.DSAWeights(beta_f=1.0, beta_z=1.0))
  elbo = log_likelihood.mean() - kl_f - kl_z_first - (T - 1) * kl_z_later
  np.testing.assert_allclose(metrics["elbo"], elbo, rtol=1e-5)
  np.testing.assert_allclose(loss, -elbo, rtol=1e-5)


def test_gaussian_likelihood_uses_sigmoid_mean_and_fixed_scale():
  model = dsa.DSA(tiny_config(likelihood="gaussian", gaussian_scale=0.5))
  x = videos()
  params = jax.tree.map(jnp.zeros_like, model.init({"params": KEY, "sample": KEY}, x)["params"])
  out = model.apply({"params": params}, x, rngs={"sample": KEY})
  pixels = np.asarray(x, np.float64)
  expected = (-0.5 * ((pixels - 0.5) / 0.5) ** 2 - np.log(0.5) - 0.5 * np.log(2 * np.pi)).reshape(B, -1).sum(-1)
  np.testing.assert_allclose(out.log_likelihood, expected, rtol=1e-5)


@pytest.mark.parametrize(
    "bad, message",
    [
        (jnp.zeros((B, T, 16, 16)), "Expected videos of shape"),
        (jnp.zeros((B, T, 32, 32, 3)), "Expected videos of shape"),
        (jnp.zeros((B, T, *IMAGE), jnp.uint8), "to_unit_interval"),
    ],
)
def test_model_rejects_wrong_shape_and_dtype(bad, message):
  model = dsa.DSA(tiny_config())
  with pytest.raises(ValueError, match=message):
    model.init({"params": KEY, "sample": KEY}, bad)


@pytest.mark.parametrize(
    "field, value", [("posterior", "mean-field"), ("prior", "gru"), ("likelihood", "laplace")]
)
def test_config_rejects_unknown_choices(field, value):
  with pytest.raises(ValueError, match=field):
    tiny_config(**{field: value})


def test_losses_weight_kls_by_beta():
  out = dsa.DSAOutput(
      logits=None,
      log_likelihood=jnp.array([-10.0, -20.0]),
      kl_f=jnp.array([1.0, 3.0]),
      kl_z=jnp.array([[0.5, 0.5, 1.0], [1.0, 1.0, 0.0]]),
      f=None, z=None, q_f=None, q_z=None, p_z=None,
  )


  loss, metrics = losses.dsa_loss(out, losses.DSAWeights(beta_f=2.0, beta_z=4.0))
  # per example: 10 + 2*1 + 4*2 = 20 and 20 + 2*3 + 4*2 = 34
  np.testing.assert_allclose(loss, 27.0)
  np.testing.assert_allclose(metrics["elbo"], np.mean([-10 - 1 - 2, -20 - 3 - 2]))
  np.testing.assert_allclose(metrics["kl_z"], 2.0)
  np.testing.assert_allclose(metrics["reconstruction"], 15.0)
