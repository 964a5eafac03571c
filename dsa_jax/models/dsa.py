"""Disentangled Sequential Autoencoder (Li & Mandt, 2018).

Generative model: p(f) = N(0, I), p(z_1) = N(0, I), p(z_t | z_<t) a recurrent prior
(`lstm`, or the notes' `stable` MLP1-4 + LSTM cell), p(x_t | z_t, f) a deconv decoder.
Inference: q(f | x_1:T) by a bi-LSTM; q(z | x) `factorised` (q(z_t | x_t)) or `full`
(q(z_t | x_1:T, f)). During training the prior runs on posterior samples z_<t.
"""

import dataclasses
import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dsa_jax import distributions as dist
from dsa_jax.models import layers

POSTERIORS = ("factorised", "full")
PRIORS = ("stable", "lstm")
LIKELIHOODS = ("bernoulli", "gaussian")


@dataclasses.dataclass(frozen=True)
class DSAConfig:
  """Architecture of DSA; defaults are the notes' sizes."""

  image_shape: tuple[int, int, int] = (64, 64, 3)
  dim_f: int = 256
  dim_z: int = 32
  dim_h: int = 256  # width of the posterior/prior RNNs and MLPs (the notes' dimH)
  dim_hidden: int = 512  # decoder MLP width and encoder feature size (dimHidden)
  num_channels: int = 256  # conv channels (nChannel)
  channels_per_resolution: tuple[int, ...] = ()  # conv widths at H, H/2, ..., 4 (overrides num_channels)
  posterior: str = "factorised"
  prior: str = "stable"
  likelihood: str = "bernoulli"
  gaussian_scale: float = 1.0
  posterior_init_log_scale: float = 0.0  # initial log-scale of q(f) and q(z) (< 0: less noise)
  compute_dtype: str = "float32"  # activations and matmul/conv operands; params, distributions and losses stay float32

  def __post_init__(self):
    layers.compute_dtype(self.compute_dtype)
    for field, value, choices in (
        ("posterior", self.posterior, POSTERIORS),
        ("prior", self.prior, PRIORS),
        ("likelihood", self.likelihood, LIKELIHOODS),
    ):
      if value not in choices:
        raise ValueError(f"DSA {field} must be one of {choices}; got {value!r}.")
    height, width, _ = self.image_shape
    if height != width:
      raise ValueError(f"DSA needs square frames; got image_shape={self.image_shape}.")
    layers.resolution_channels(self.num_channels, self.channels_per_resolution, height)  # raises on a bad list

  @property
  def conv_widths(self) -> tuple[int, ...]:
    """Conv widths at H, H/2, ..., 4: channels_per_resolution, or num_channels at each."""
    return layers.resolution_channels(self.num_channels, self.channels_per_resolution, self.image_shape[0])


class DSAOutput(NamedTuple):
  """Per-example terms of the DSA ELBO and the latents that produced them."""

  logits: jax.Array  # [B, T, H, W, C] pixel logits of p(x_t | z_t, f)
  log_likelihood: jax.Array  # [B] log p(x | z, f), summed over frames and pixels
  kl_f: jax.Array  # [B] KL(q(f | x) || p(f))
  kl_z: jax.Array  # [B, T] KL(q(z_t | .) || p(z_t | z_<t)) at the sampled z_<t
  f: jax.Array  # [B, F] posterior sample
  z: jax.Array  # [B, T, Z] posterior sample
  q_f: dist.Gaussian  # [B, F]
  q_z: dist.Gaussian  # [B, T, Z]
  p_z: dist.Gaussian  # [B, T, Z]


class GaussianHead(nn.Module):
  """Dense layer to a float32 diagonal Gaussian; the log-scale half's bias starts at init_log_scale."""

  features: int
  init_log_scale: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs: jax.Array) -> dist.Gaussian:
    def bias_init(key, shape, dtype=jnp.float32):
      del key
      return jnp.concatenate([jnp.zeros(shape[0] // 2, dtype), jnp.full(shape[0] // 2, self.init_log_scale, dtype)])

    raw = nn.Dense(2 * self.features, bias_init=bias_init, dtype=self.dtype, name="dense")(inputs)
    return dist.gaussian_from_raw(raw)


class StaticPosterior(nn.Module):
  """q(f | x_1:T): bi-LSTM over frame features, last forward + first backward state."""

  dim_f: int
  hidden_size: int
  init_log_scale: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, features: jax.Array) -> dist.Gaussian:
    _, forward_last, backward_first = layers.BiLSTM(self.hidden_size, self.dtype, name="rnn")(features)
    summary = jnp.concatenate([forward_last, backward_first], axis=-1)  # [B, 2H]
    return GaussianHead(self.dim_f, self.init_log_scale, self.dtype, name="head")(summary)  # [B, F]


class FactorisedPosterior(nn.Module):
  """q(z_t | x_t): an MLP on each frame's features."""

  dim_z: int
  hidden_size: int
  init_log_scale: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, features: jax.Array, f: jax.Array) -> dist.Gaussian:
    del f  # the factorised posterior does not see the static code
    hidden = nn.relu(nn.Dense(self.hidden_size, dtype=self.dtype, name="hidden")(features))  # [B, T, H]
    return GaussianHead(self.dim_z, self.init_log_scale, self.dtype, name="head")(hidden)  # [B, T, Z]


class FullPosterior(nn.Module):
  """q(z_t | x_1:T, f): bi-LSTM over [features_t, f], then a forward RNN."""

  dim_z: int
  hidden_size: int
  init_log_scale: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, features: jax.Array, f: jax.Array) -> dist.Gaussian:
    batch, time = features.shape[:2]
    f_per_step = jnp.broadcast_to(f[:, None, :], (batch, time, f.shape[-1])).astype(features.dtype)  # [B, T, F]
    inputs = jnp.concatenate([features, f_per_step], axis=-1)
    bidirectional, _, _ = layers.BiLSTM(self.hidden_size, self.dtype, name="birnn")(inputs)  # [B, T, 2H]
    rnn = nn.RNN(nn.SimpleCell(self.hidden_size, dtype=self.dtype, name="rnn"))
    forward = rnn(bidirectional, initial_carry=jnp.zeros((batch, self.hidden_size), self.dtype))  # [B, T, H]
    return GaussianHead(self.dim_z, self.init_log_scale, self.dtype, name="head")(forward)  # [B, T, Z]


LSTMState = tuple[jax.Array, jax.Array]  # (cell, hidden), each [B, H]


class LSTMPriorCell(nn.Module):
  """p(z_{t+1} | z_<=t): an LSTM over z_t, then a linear map to loc and log-scale."""

  dim_z: int
  hidden_size: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, state: LSTMState, z: jax.Array) -> tuple[LSTMState, dist.Gaussian]:
    state, hidden = nn.OptimizedLSTMCell(self.hidden_size, dtype=self.dtype, name="lstm")(state, z)
    raw = nn.Dense(2 * self.dim_z, dtype=self.dtype, name="head")(hidden)
    return state, dist.gaussian_from_raw(raw)


class StablePriorCell(nn.Module):
  """The notes' "improved, better stability" prior: MLP1-3 feed an LSTM cell, MLP4 reads it."""

  dim_z: int
  hidden_size: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, state: LSTMState, z: jax.Array) -> tuple[LSTMState, dist.Gaussian]:
    dense = functools.partial(nn.Dense, dtype=self.dtype)
    cell, hidden = state
    cell_in = jnp.tanh(dense(self.hidden_size, name="mlp1")(jnp.concatenate([z, cell], -1)))
    lstm_input = jnp.tanh(dense(self.hidden_size, name="mlp2")(z))
    hidden_in = jnp.tanh(dense(self.hidden_size, name="mlp3")(jnp.concatenate([z, hidden], -1)))
    state, hidden = nn.LSTMCell(self.hidden_size, dtype=self.dtype, name="lstm")((cell_in, hidden_in), lstm_input)
    hidden = jnp.tanh(dense(self.hidden_size, name="mlp4_hidden")(hidden))
    raw = dense(2 * self.dim_z, name="mlp4_out")(hidden)
    state = jax.tree.map(lambda part: part.astype(jnp.float32), state)  # the scan carries float32 state
    return state, dist.gaussian_from_raw(raw)


def _stack_gaussians(first: dist.Gaussian, rest: dist.Gaussian) -> dist.Gaussian:
  """[B, Z] and [B, T-1, Z] -> [B, T, Z]."""
  return dist.Gaussian(
      jnp.concatenate([first.loc[:, None], rest.loc], axis=1),
      jnp.concatenate([first.scale[:, None], rest.scale], axis=1),
  )


def _no_steps(batch_size: int, dim_z: int, dtype) -> dist.Gaussian:
  """A Gaussian over zero time steps, [B, 0, Z]."""
  empty = jnp.zeros((batch_size, 0, dim_z), dtype)
  return dist.Gaussian(empty, empty)


def _prior_step(cell: nn.Module, state: LSTMState, z: jax.Array):
  return cell(state, z)


def _prior_sample_step(cell: nn.Module, carry, noise: jax.Array):
  state, z = carry
  state, next_dist = cell(state, z)
  next_z = next_dist.loc + next_dist.scale * noise
  return (state, next_z), (next_z, next_dist)


class DynamicsPrior(nn.Module):
  """p(z_1) = N(0, I) and p(z_t | z_<t) from a recurrent cell, run with scan."""

  kind: str
  dim_z: int
  hidden_size: int
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    cell_class = StablePriorCell if self.kind == "stable" else LSTMPriorCell
    self.cell = cell_class(self.dim_z, self.hidden_size, self.dtype)

  def initial_state(self, batch_size: int) -> LSTMState:
    """Zero LSTM state."""
    zeros = jnp.zeros((batch_size, self.hidden_size), jnp.float32)
    return zeros, zeros

  def __call__(self, z: jax.Array) -> dist.Gaussian:
    """p(z_t | z_<t) for t = 1..T, teacher-forced on the given z [B, T, Z]."""
    batch, time, _ = z.shape
    first = dist.standard_normal((batch, self.dim_z), z.dtype)
    if time == 1:
      return _stack_gaussians(first, _no_steps(batch, self.dim_z, z.dtype))
    scan = nn.scan(
        _prior_step,
        variable_broadcast="params",
        split_rngs={"params": False},
        in_axes=1,
        out_axes=1,
    )
    _, rest = scan(self.cell, self.initial_state(batch), z[:, :-1])  # [B, T-1, Z]
    return _stack_gaussians(first, rest)

  def rollout(self, noise: jax.Array) -> tuple[jax.Array, dist.Gaussian]:
    """z_1:T driven by standard-normal noise [B, T, Z] through the prior's own samples.

    Returns z [B, T, Z] and the p(z_t | z_<t) it was drawn from.
    """
    batch_size, num_frames, _ = noise.shape
    first = dist.standard_normal((batch_size, self.dim_z), noise.dtype)
    z_1 = noise[:, 0]
    if num_frames == 1:
      return noise, _stack_gaussians(first, _no_steps(batch_size, self.dim_z, noise.dtype))
    scan = nn.scan(
        _prior_sample_step,
        variable_broadcast="params",
        split_rngs={"params": False},
        in_axes=1,
        out_axes=1,
    )
    _, (rest, rest_dists) = scan(self.cell, (self.initial_state(batch_size), z_1), noise[:, 1:])
    return jnp.concatenate([z_1[:, None], rest], axis=1), _stack_gaussians(first, rest_dists)

  def sample(self, batch_size: int, num_frames: int, temperature: float | jax.Array = 1.0) -> tuple[jax.Array, dist.Gaussian]:
    """z_1:T [B, T, Z] sampled from the prior (rng stream "sample"; noise scaled by temperature), with p(z_t | z_<t)."""
    noise = jax.random.normal(self.make_rng("sample"), (batch_size, num_frames, self.dim_z))
    return self.rollout(temperature * noise)

  def extend(self, z: jax.Array, noise: jax.Array) -> jax.Array:
    """z [B, T, Z] followed by T' prior steps conditioned on it, driven by noise [B, T', Z]: [B, T + T', Z]."""
    teacher_forced = nn.scan(
        _prior_step, variable_broadcast="params", split_rngs={"params": False}, in_axes=1, out_axes=1
    )
    state, next_dists = teacher_forced(self.cell, self.initial_state(z.shape[0]), z)  # p(z_t+1 | z_<=t)
    next_z = next_dists.loc[:, -1] + next_dists.scale[:, -1] * noise[:, 0]
    if noise.shape[1] == 1:
      return jnp.concatenate([z, next_z[:, None]], axis=1)
    sampled = nn.scan(
        _prior_sample_step, variable_broadcast="params", split_rngs={"params": False}, in_axes=1, out_axes=1
    )
    _, (rest, _) = sampled(self.cell, (state, next_z), noise[:, 1:])
    return jnp.concatenate([z, next_z[:, None], rest], axis=1)


def with_output_bias_from_data(params: dict, videos: jax.Array) -> dict:
  """Params whose decoder output bias is the log-odds of videos' mean pixel per channel.

  Mostly-black frames otherwise make the decoder spend its first steps (and its ReLU
  features) darkening the background; starting at the data's mean removes that drift.
  """
  mean = jnp.clip(videos.reshape(-1, videos.shape[-1]).mean(axis=0), 1e-3, 1 - 1e-3)  # [C]
  decoder = params["decoder"]
  conv_out = {**decoder["conv_out"], "bias": jnp.log(mean / (1 - mean))}
  return {**params, "decoder": {**decoder, "conv_out": conv_out}}


class DSA(nn.Module):
  """The DSA model; `__call__` returns the ELBO terms of a batch of videos."""

  config: DSAConfig

  def setup(self):
    config = self.config
    dtype = layers.compute_dtype(config.compute_dtype)
    self.frame_encoder = layers.FrameEncoder(config.conv_widths, config.dim_hidden, dtype)
    self.static_posterior = StaticPosterior(config.dim_f, config.dim_h, config.posterior_init_log_scale, dtype)
    posterior_class = FactorisedPosterior if config.posterior == "factorised" else FullPosterior
    self.dynamic_posterior = posterior_class(config.dim_z, config.dim_h, config.posterior_init_log_scale, dtype)
    self.prior = DynamicsPrior(config.prior, config.dim_z, config.dim_h, dtype)
    self.decoder = layers.FrameDecoder(config.conv_widths, config.dim_hidden, config.image_shape, dtype)

  def encode(
      self, videos: jax.Array, sample: bool = True
  ) -> tuple[dist.Gaussian, dist.Gaussian, jax.Array, jax.Array]:
    """q(f), q(z) and f [B, F], z [B, T, Z]: samples, or posterior means if not `sample`."""
    layers.check_videos(videos, self.config.image_shape)
    features = layers.apply_per_frame(self.frame_encoder, videos)  # [B, T, dim_hidden]
    q_f = self.static_posterior(features)
    f = q_f.sample(self.make_rng("sample")) if sample else q_f.loc
    q_z = self.dynamic_posterior(features, f)
    z = q_z.sample(self.make_rng("sample")) if sample else q_z.loc
    return q_f, q_z, f, z

  def decode(self, f: jax.Array, z: jax.Array) -> jax.Array:
    """Pixel logits [B, T, H, W, C] of p(x_t | z_t, f) for f [B, F] and z [B, T, Z]."""
    batch, time, _ = z.shape
    f_per_step = jnp.broadcast_to(f[:, None, :], (batch, time, f.shape[-1]))
    return layers.apply_per_frame(self.decoder, jnp.concatenate([f_per_step, z], axis=-1))

  def log_likelihood(self, logits: jax.Array, videos: jax.Array) -> jax.Array:
    """log p(x | z, f) per sequence [B], summed over frames and pixels."""
    if self.config.likelihood == "bernoulli":
      per_pixel = dist.bernoulli_log_prob(logits, videos)
    else:
      per_pixel = dist.gaussian_pixel_log_prob(logits, videos, self.config.gaussian_scale)
    return per_pixel.reshape(per_pixel.shape[0], -1).sum(axis=-1)

  def __call__(self, videos: jax.Array) -> DSAOutput:
    q_f, q_z, f, z = self.encode(videos, sample=True)
    p_z = self.prior(z)
    logits = self.decode(f, z)
    return DSAOutput(
        logits=logits,
        log_likelihood=self.log_likelihood(logits, videos),
        kl_f=dist.kl_divergence(q_f, self.prior_f(videos.shape[0])),
        kl_z=dist.kl_divergence(q_z, p_z),
        f=f,
        z=z,
        q_f=q_f,
        q_z=q_z,
        p_z=p_z,
    )

  def prior_f(self, batch_size: int) -> dist.Gaussian:
    """p(f) = N(0, I) [B, F]."""
    return dist.standard_normal((batch_size, self.config.dim_f))

  def sample_dynamics(self, batch_size: int, num_frames: int, temperature: float | jax.Array = 1.0) -> jax.Array:
    """z [B, T, Z] from the prior, rolled out on its own samples (noise scaled by temperature)."""
    return self.prior.sample(batch_size, num_frames, temperature)[0]

  def sample_dynamics_means(self, batch_size: int, num_frames: int, temperature: float | jax.Array = 1.0) -> jax.Array:
    """Means [B, T, Z] of p(z_t | z_<t) along the rollout sample_dynamics draws from the same rng (0 at t = 1)."""
    return self.prior.sample(batch_size, num_frames, temperature)[1].loc

  def extend_dynamics(self, z: jax.Array, num_frames: int, temperature: float | jax.Array = 1.0) -> jax.Array:
    """z [B, T, Z] continued by the prior to num_frames > T steps (rng stream "sample"; noise scaled by temperature)."""
    batch, time, dim_z = z.shape
    noise = jax.random.normal(self.make_rng("sample"), (batch, num_frames - time, dim_z))
    return self.prior.extend(z, temperature * noise)
