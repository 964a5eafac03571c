"""VDSM (Vowels, Camgoz & Bowden, CVPR 2021): identity s, action d, pose z_t.

Generative model: p(s) = N(0, 1/ks), p(d) = N(0, 1/kd) (standard deviations, as in the
public code), p(z_1) = N(0, I), p(z_t | z_t-1, d) a gated transition; frames from a
mixture-of-experts decoder on concat(z_t, s) whose expert weights are softmax(s * tau).
Inference: per-frame encoder -> pose head q(z_t | x_t) (pretraining) and identity head,
averaged over the sequence or identity group, then f_s -> q(s); a seq2seq bi-LSTM over the
pose locs -> q(d); an LSTM decoder from d and a combiner -> q(z_t | z_t-1, d, x) (sequences).
"""

import dataclasses
import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dsa_jax import distributions as dist
from dsa_jax.models import layers, vdsm_layers

SCALE_FLOOR = 1e-4  # added to every softplus scale


@dataclasses.dataclass(frozen=True)
class VDSMConfig:
  """Architecture of VDSM; defaults are the paper's Sprites settings (supplementary Table 2)."""

  image_shape: tuple[int, int, int] = (64, 64, 3)
  dim_z: int = 30  # kz, pose
  dim_s: int = 40  # ks, identity = number of experts
  dim_d: int = 50  # kd, action
  rnn_size: int = 512
  rnn_layers: int = 3
  combiner_size: int = 512
  transition_size: int = 512
  identity_hidden: int = 128
  encoder_channels: tuple[int, ...] = (32, 32, 64, 64, 256)
  decoder_channels: tuple[int, ...] = (512, 256, 128, 64)
  encoder_negative_slope: float = 0.01  # the public code's LeakyReLU(True) has slope 1
  compute_dtype: str = "float32"  # activations and matmul/conv operands; params, distributions and losses stay float32

  def __post_init__(self):
    layers.compute_dtype(self.compute_dtype)
    height, width, _ = self.image_shape
    if height != width:
      raise ValueError(f"VDSM needs square frames; got image_shape={self.image_shape}.")
    blocks = vdsm_layers.num_blocks(height)
    if len(self.encoder_channels) != blocks + 1 or len(self.decoder_channels) != blocks:
      raise ValueError(
          f"{height}x{height} frames need {blocks + 1} encoder_channels and {blocks} decoder_channels; "
          f"got {self.encoder_channels} and {self.decoder_channels}."
      )


class FrameCodes(NamedTuple):
  """Per-frame encodings of a batch of videos."""

  q_z: dist.Gaussian  # [B, T, Z] pose head
  identity: dist.Gaussian  # [B, T, S] identity head, before averaging and f_s


class PretrainOutput(NamedTuple):
  """Per-example terms of the pretraining objective (Eq. 7)."""

  logits: jax.Array  # [B, T, H, W, C]
  log_likelihood: jax.Array  # [B] summed over frames and pixels
  kl_s: jax.Array  # [B]
  kl_z: jax.Array  # [B, T] KL(q(z_t | x_t) || N(0, I))
  s: jax.Array  # [B, S]
  z: jax.Array  # [B, T, Z]


class SequenceOutput(NamedTuple):
  """Per-example terms of the full ELBO (Eq. 4)."""

  logits: jax.Array  # [B, T, H, W, C]
  log_likelihood: jax.Array  # [B]
  kl_s: jax.Array  # [B]
  kl_d: jax.Array  # [B]
  kl_z: jax.Array  # [B, T] at t = 1 against N(0, I), then against the transition at sampled z_t-1
  s: jax.Array  # [B, S]
  d: jax.Array  # [B, D]
  z: jax.Array  # [B, T, Z]


def softplus_gaussian(loc: jax.Array, raw_scale: jax.Array) -> dist.Gaussian:
  """A float32 Gaussian from raw network outputs (any float dtype): loc as is, scale through softplus."""
  return dist.Gaussian(loc.astype(jnp.float32), jax.nn.softplus(raw_scale.astype(jnp.float32)) + SCALE_FLOOR)


class GaussianDense(nn.Module):
  """Dense -> float32 (loc, softplus scale)."""

  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs: jax.Array) -> dist.Gaussian:
    raw = nn.Dense(2 * self.features, dtype=self.dtype, name="dense")(inputs)
    return softplus_gaussian(*jnp.split(raw, 2, axis=-1))


class IdentityHead(nn.Module):
  """FC(128) LReLU FC(2 ks) per frame -> (loc, softplus scale)."""

  dim_s: int
  hidden: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, features: jax.Array) -> dist.Gaussian:
    hidden = nn.leaky_relu(nn.Dense(self.hidden, dtype=self.dtype, name="hidden")(features))
    return GaussianDense(self.dim_s, self.dtype, name="out")(hidden)


class StaticFactor(nn.Module):
  """f_s: the averaged identity encoding -> q(s) (loc: FC + LReLU, scale: FC + softplus)."""

  dim_s: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, mean_identity: dist.Gaussian) -> dist.Gaussian:
    loc = nn.leaky_relu(nn.Dense(self.dim_s, dtype=self.dtype, name="loc")(mean_identity.loc))
    return softplus_gaussian(loc, nn.Dense(self.dim_s, dtype=self.dtype, name="scale")(mean_identity.scale))


class StackedBiLSTM(nn.Module):
  """rnn_layers bi-LSTMs over [B, T, D]; returns the final hidden states of all layers and directions."""

  hidden_size: int
  num_layers: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    finals = []
    hidden = inputs
    for i in range(self.num_layers):
      hidden, forward_last, backward_first = layers.BiLSTM(self.hidden_size, self.dtype, name=f"layer_{i}")(hidden)
      finals += [forward_last, backward_first]
    return jnp.concatenate(finals, axis=-1)  # [B, 2 * layers * H]


class DecoderCell(nn.Module):
  """One step of the seq2seq decoder: stacked LSTM cells fed their own previous top output."""

  hidden_size: int
  num_layers: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, carry, _):
    states, previous_output = carry
    inputs, new_states = previous_output, []
    for i, state in enumerate(states):
      state, inputs = nn.OptimizedLSTMCell(self.hidden_size, dtype=self.dtype, name=f"lstm_{i}")(state, inputs)
      new_states.append(state)
    return (tuple(new_states), inputs), inputs


class Seq2Seq(nn.Module):
  """Pose locs [B, T, Z] -> q(d); d -> LSTM decoder outputs h_bar [B, T', H] for any horizon T'."""

  dim_d: int
  hidden_size: int
  num_layers: int
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.encoder = StackedBiLSTM(self.hidden_size, self.num_layers, self.dtype)
    self.d_head = GaussianDense(self.dim_d, self.dtype)
    self.initial_state = nn.Dense(2 * self.num_layers * self.hidden_size, dtype=self.dtype)
    self.first_input = self.param("first_input", nn.initializers.zeros_init(), (self.hidden_size,))
    self.decoder = nn.scan(
        DecoderCell,
        variable_broadcast="params",
        split_rngs={"params": False},
        in_axes=0,
        out_axes=1,
    )(self.hidden_size, self.num_layers, self.dtype)

  def infer_d(self, pose_loc: jax.Array) -> dist.Gaussian:
    """q(d | x) [B, D] from the final states of the bi-LSTM over pose locs [B, T, Z]."""
    return self.d_head(self.encoder(pose_loc))

  def decode(self, d: jax.Array, num_frames: int) -> jax.Array:
    """Decoder outputs [B, T, H] started from h, c = FC(d) and a learned first input."""
    batch = d.shape[0]
    initial = self.initial_state(d).astype(jnp.float32).reshape(batch, self.num_layers, 2, self.hidden_size)
    states = tuple((initial[:, i, 0], initial[:, i, 1]) for i in range(self.num_layers))  # (c, h) per layer
    first = jnp.broadcast_to(self.first_input, (batch, self.hidden_size))
    _, outputs = self.decoder((states, first), jnp.zeros((num_frames,)))
    return outputs  # [B, T, H]


class Combiner(nn.Module):
  """q(z_t | z_t-1, h_bar_t, d), run over time with lax.scan from a learned z_0."""

  dim_z: int
  hidden_size: int
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.from_rnn = nn.Dense(self.hidden_size, dtype=self.dtype)
    self.from_z = nn.Dense(self.hidden_size, dtype=self.dtype)
    self.loc = nn.Dense(self.dim_z, dtype=self.dtype)
    self.scale = nn.Dense(self.dim_z, dtype=self.dtype)
    self.z_0 = self.param("z_0", nn.initializers.zeros_init(), (self.dim_z,))

  def step(self, h_hat: jax.Array, z_previous: jax.Array) -> dist.Gaussian:
    """q(z_t) [B, Z] from h_hat_t = LReLU(FC([h_bar_t, d])) [B, H] and z_t-1 [B, Z]."""
    combined = 0.5 * (jnp.tanh(self.from_z(z_previous)) + h_hat)
    return softplus_gaussian(self.loc(combined), self.scale(combined))

  def __call__(self, h_bar: jax.Array, d: jax.Array, noise: jax.Array) -> tuple[jax.Array, dist.Gaussian]:
    """Samples z [B, T, Z] = loc + scale * noise and q(z_t | z_t-1) [B, T, Z]."""
    batch, time, _ = h_bar.shape
    d_per_step = jnp.broadcast_to(d[:, None], (batch, time, d.shape[-1]))
    h_hat = nn.leaky_relu(self.from_rnn(jnp.concatenate([h_bar, d_per_step], axis=-1)))  # [B, T, H]

    def body(module, z_previous, inputs):
      h_hat_t, noise_t = inputs
      q_t = module.step(h_hat_t, z_previous)
      z_t = q_t.loc + q_t.scale * noise_t
      return z_t, (z_t, q_t)

    scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False}, in_axes=1, out_axes=1)
    z_0 = jnp.broadcast_to(self.z_0, (batch, self.dim_z))
    _, (z, q_z) = scan(self, z_0, (h_hat, noise))
    return z, q_z


def identity_init(key, shape, dtype=jnp.float32):
  """[Z + D, Z] kernel that passes z through unchanged and ignores d."""
  del key
  return jnp.eye(shape[0], shape[1], dtype=dtype)


class GatedTransition(nn.Module):
  """p(z_t | z_t-1, d): gated mix of a nonlinear proposal and a linear (identity-initialised) path."""

  dim_z: int
  hidden_size: int
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    dense = functools.partial(nn.Dense, dtype=self.dtype)
    self.gate_hidden = dense(self.hidden_size)
    self.gate_out = dense(self.dim_z)
    self.proposal_hidden = dense(self.hidden_size)
    self.proposal_out = dense(self.dim_z)
    self.linear = dense(self.dim_z, kernel_init=identity_init)
    self.scale = dense(self.dim_z)

  def __call__(self, z_previous: jax.Array, d: jax.Array) -> dist.Gaussian:
    """p(z_t) [..., Z] for z_t-1 [..., Z] and d broadcast to it [..., D]."""
    inputs = jnp.concatenate([z_previous, jnp.broadcast_to(d, (*z_previous.shape[:-1], d.shape[-1]))], axis=-1)
    gate = jax.nn.sigmoid(self.gate_out(nn.relu(self.gate_hidden(inputs))))
    proposal = self.proposal_out(nn.relu(self.proposal_hidden(inputs)))
    loc = gate * proposal + (1.0 - gate) * self.linear(inputs)
    return softplus_gaussian(loc, self.scale(nn.relu(proposal)))


def transition_rollout(transition, z_1: jax.Array, d: jax.Array, noise: jax.Array) -> jax.Array:
  """z [B, 1 + T', Z]: z_1 then z_t ~ p(z_t | z_t-1, d) with the given standard-normal noise [B, T', Z]."""

  def body(z_previous, noise_t):
    p_t = transition(z_previous, d)
    z_t = p_t.loc + p_t.scale * noise_t
    return z_t, z_t

  _, rest = jax.lax.scan(body, z_1, jnp.swapaxes(noise, 0, 1))
  return jnp.concatenate([z_1[:, None], jnp.swapaxes(rest, 0, 1)], axis=1)


class VDSM(nn.Module):
  """The VDSM model: `pretrain` (Eq. 7) and `sequence` (Eq. 4) terms, inference and generation."""

  config: VDSMConfig

  def setup(self):
    config = self.config
    dtype = layers.compute_dtype(config.compute_dtype)
    self.encoder = vdsm_layers.Encoder(config.encoder_channels, config.encoder_negative_slope, dtype)
    self.pose_head = GaussianDense(config.dim_z, dtype)
    self.identity_head = IdentityHead(config.dim_s, config.identity_hidden, dtype)
    self.static_factor = StaticFactor(config.dim_s, dtype)
    self.decoder = vdsm_layers.MixtureDecoder(config.dim_s, config.image_shape, config.decoder_channels, dtype=dtype)
    self.seq2seq = Seq2Seq(config.dim_d, config.rnn_size, config.rnn_layers, dtype)
    self.combiner = Combiner(config.dim_z, config.combiner_size, dtype)
    self.transition = GatedTransition(config.dim_z, config.transition_size, dtype)

  def encode_frames(self, videos: jax.Array) -> FrameCodes:
    """Pose and identity encodings of every frame of videos [B, T, H, W, C] in [0, 1]."""
    layers.check_videos(videos, self.config.image_shape)
    features = layers.apply_per_frame(self.encoder, videos)  # [B, T, 256]
    return FrameCodes(self.pose_head(features), self.identity_head(features))

  def infer_s(self, codes: FrameCodes) -> dist.Gaussian:
    """q(s) [B, S] from the identity encodings averaged over each element's frames."""
    mean = dist.Gaussian(codes.identity.loc.mean(axis=1), codes.identity.scale.mean(axis=1))
    return self.static_factor(mean)

  def mixture_weights(self, s: jax.Array, inverse_temperature: jax.Array) -> jax.Array:
    """Expert weights softmax(s * tau) [B, S]."""
    return jax.nn.softmax(s * inverse_temperature, axis=-1)

  def decode(self, s: jax.Array, z: jax.Array, inverse_temperature: jax.Array) -> jax.Array:
    """Pixel logits [B, T, H, W, C] for s [B, S] and z [B, T, Z]."""
    batch, time, _ = z.shape
    s_per_step = jnp.broadcast_to(s[:, None], (batch, time, s.shape[-1]))
    return self.decoder(jnp.concatenate([z, s_per_step], axis=-1), self.mixture_weights(s, inverse_temperature))

  def infer_d(self, codes: FrameCodes) -> dist.Gaussian:
    """q(d) [B, D] from the pose locs."""
    return self.seq2seq.infer_d(codes.q_z.loc)

  def infer_z(self, d: jax.Array, noise: jax.Array) -> tuple[jax.Array, dist.Gaussian]:
    """z [B, T, Z] and q(z_t | z_t-1, d, x) from the seq2seq decoder and the combiner."""
    h_bar = self.seq2seq.decode(d, noise.shape[1])
    return self.combiner(h_bar, d, noise)

  def prior_s(self, batch_size: int) -> dist.Gaussian:
    """p(s) = N(0, 1/ks)."""
    dim = self.config.dim_s
    return dist.Gaussian(jnp.zeros((batch_size, dim)), jnp.full((batch_size, dim), 1.0 / dim))

  def prior_d(self, batch_size: int) -> dist.Gaussian:
    """p(d) = N(0, 1/kd)."""
    dim = self.config.dim_d
    return dist.Gaussian(jnp.zeros((batch_size, dim)), jnp.full((batch_size, dim), 1.0 / dim))

  def prior_pose(self, batch_shape: tuple[int, ...]) -> dist.Gaussian:
    """p(z_t) = N(0, I) of pretraining (and of z_1 in the sequence model), [*batch_shape, Z]."""
    return dist.standard_normal((*batch_shape, self.config.dim_z))

  def log_likelihood(self, logits: jax.Array, videos: jax.Array) -> jax.Array:
    """Bernoulli log p(x | z, s) per element [B], summed over frames and pixels."""
    per_pixel = dist.bernoulli_log_prob(logits, videos)
    return per_pixel.reshape(per_pixel.shape[0], -1).sum(axis=-1)

  def pretrain(self, videos: jax.Array, inverse_temperature: jax.Array) -> PretrainOutput:
    """Eq. 7 terms: s shared by each element's frames (an identity group), z_t i.i.d."""
    codes = self.encode_frames(videos)
    q_s = self.infer_s(codes)
    s = q_s.sample(self.make_rng("sample"))
    z = codes.q_z.sample(self.make_rng("sample"))
    logits = self.decode(s, z, inverse_temperature)
    return PretrainOutput(
        logits=logits,
        log_likelihood=self.log_likelihood(logits, videos),
        kl_s=dist.kl_divergence(q_s, self.prior_s(videos.shape[0])),
        kl_z=dist.kl_divergence(codes.q_z, self.prior_pose(codes.q_z.loc.shape[:2])),
        s=s,
        z=z,
    )

  def sequence(self, videos: jax.Array, inverse_temperature: jax.Array) -> SequenceOutput:
    """Eq. 4 terms; the z_t KL uses the transition at the sampled z_t-1."""
    batch, time = videos.shape[:2]
    codes = self.encode_frames(videos)
    q_s = self.infer_s(codes)
    s = q_s.sample(self.make_rng("sample"))
    q_d = self.infer_d(codes)
    d = q_d.sample(self.make_rng("sample"))
    noise = jax.random.normal(self.make_rng("sample"), (batch, time, self.config.dim_z))
    z, q_z = self.infer_z(d, noise)
    p_rest = self.transition(z[:, :-1], d[:, None])  # [B, T - 1, Z]
    p_z = dist.Gaussian(
        jnp.concatenate([jnp.zeros_like(z[:, :1]), p_rest.loc], axis=1),
        jnp.concatenate([jnp.ones_like(z[:, :1]), p_rest.scale], axis=1),
    )
    logits = self.decode(s, z, inverse_temperature)
    return SequenceOutput(
        logits=logits,
        log_likelihood=self.log_likelihood(logits, videos),
        kl_s=dist.kl_divergence(q_s, self.prior_s(batch)),
        kl_d=dist.kl_divergence(q_d, self.prior_d(batch)),
        kl_z=dist.kl_divergence(q_z, p_z),
        s=s,
        d=d,
        z=z,
    )

  def __call__(self, videos: jax.Array) -> tuple[PretrainOutput, SequenceOutput]:
    """Both objectives (used to create every parameter at init)."""
    return self.pretrain(videos, jnp.float32(1.0)), self.sequence(videos, jnp.float32(1.0))

  def rollout(self, z_1: jax.Array, d: jax.Array, num_frames: int, temperature: float | jax.Array = 1.0) -> jax.Array:
    """z [B, T, Z]: z_1 [B, Z] then the transition under d [B, D], on its own samples (noise scaled by temperature)."""
    noise = jax.random.normal(self.make_rng("sample"), (z_1.shape[0], num_frames - 1, self.config.dim_z))
    return transition_rollout(self.transition, z_1, d, temperature * noise)

  def poses(self, d: jax.Array, num_frames: int, inferred_frames: int, temperature: float | jax.Array = 1.0) -> jax.Array:
    """z [B, num_frames, Z]: the combiner's means given d for inferred_frames, then the transition."""
    known = min(num_frames, inferred_frames)
    z = self.infer_z(d, jnp.zeros((d.shape[0], known, self.config.dim_z)))[0]
    if num_frames == known:
      return z
    later = self.rollout(z[:, -1], d, num_frames - known + 1, temperature)
    return jnp.concatenate([z, later[:, 1:]], axis=1)


def with_output_bias_from_data(params: dict, videos: jax.Array) -> dict:
  """Params whose experts' output biases are the log-odds of the videos' mean pixel per channel."""
  mean = jnp.clip(videos.reshape(-1, videos.shape[-1]).mean(axis=0), 1e-3, 1 - 1e-3)  # [C]
  decoder = params["decoder"]
  last = f"bias_{len([name for name in decoder if name.startswith('kernel_')]) - 1}"
  bias = jnp.broadcast_to(jnp.log(mean / (1 - mean)), decoder[last].shape)
  return {**params, "decoder": {**decoder, last: bias}}

