"""One interface to both models' latent codes: encode videos, decode codes, sample the priors.

A codec is bound to a model and its params (and, for VDSM, the inverse temperature of the
expert weights and the training length), so sampling and every metric are written once over
it and no caller passes model settings. Videos are [B, T, H, W, C], floats in [0, 1] or uint8.

| codec | static | dynamics | decoding past the codes' frames |
|---|---|---|---|
| `DSACodec` | f [B, F] | z_1:T [B, T, Z] | the prior p(z_t | z_<t) continues z |
| `VDSMCodec` (sequence stage) | s [B, S] | d [B, D] | combiner poses for the training length, then the transition |
| `VDSMPoseCodec` (pretraining) | s [B, S] | z_1:T [B, T, Z] | poses from p(z_t) = N(0, I), one per frame |

`rollout_temperature` scales the standard-normal noise of that per-frame prior wherever a codec
draws from it (1, the default: the model as trained; 0: its means, a deterministic rollout);
`dataclasses.replace(codec, rollout_temperature=t)` gives a codec at another temperature.

`sample_dynamics_means` takes the draw `sample_dynamics` makes from the same key and returns, at
each step, the mean of the prior's conditional given the sampled past: the codes the field's
reverse protocol decodes (C-DSVAE's `forward_fixed_content_for_classification`).
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from dsa_jax.models import dsa, vdsm

Params = Any


class Codes(NamedTuple):
  """A batch of videos' latent codes."""

  static: jax.Array  # [B, S]: DSA f, VDSM s
  dynamics: jax.Array  # DSA z [B, T, Z]; VDSM d [B, D]; VDSM pretraining z [B, T, Z]


class Codec(Protocol):
  """What sampling and evaluation ask of a trained model."""

  static_name: str  # the static code's name in the model's paper ("f", "s")
  dynamics_name: str  # the dynamic code's ("z", "d")
  train_frames: int  # the length of the clips it was trained on
  rollout_temperature: float  # scale of the noise driving the per-frame prior (1: the model's; 0: its means)

  def encode(self, videos, key: jax.Array | None = None) -> Codes:
    """Posterior means of the codes of videos, or posterior samples with a key."""

  def decode(self, codes: Codes, key: jax.Array | None = None, num_frames: int | None = None) -> jax.Array:
    """Frame means [B, num_frames, H, W, C] of codes (None: the codes' own length)."""

  def sample_static(self, key: jax.Array, num_videos: int) -> jax.Array:
    """Static codes [N, S] from their prior."""

  def sample_dynamics(self, key: jax.Array, num_videos: int, num_frames: int) -> jax.Array:
    """Dynamic codes of N videos of num_frames from their prior."""

  def sample_dynamics_means(self, key: jax.Array, num_videos: int, num_frames: int) -> jax.Array:
    """The prior's per-step conditional means along the rollout sample_dynamics draws from the same key."""

  def continue_from(self, videos, key: jax.Array, num_frames: int) -> jax.Array:
    """[B, num_frames, ...] conditioned on each video's frames (any number), then the priors."""


def as_videos(videos) -> jax.Array:
  """Float32 videos [B, T, H, W, C] in [0, 1] from floats or uint8; ValueError naming the problem."""
  videos = jnp.asarray(videos)
  if videos.ndim != 5:
    raise ValueError(f"Expected videos [batch, time, height, width, channels]; got shape {videos.shape}.")
  if videos.dtype == jnp.uint8:
    return videos.astype(jnp.float32) / 255.0
  if not jnp.issubdtype(videos.dtype, jnp.floating):
    raise ValueError(f"Expected uint8 videos or floats in [0, 1]; got dtype {videos.dtype}.")
  if not bool(jnp.all(jnp.isfinite(videos))):
    raise ValueError("Videos contain NaN or Inf values; clean the input before encoding.")
  return videos.astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("model", "function", "static_args"))
def _run(model, function: Callable, params: Params, args: tuple, rng: jax.Array | None, static_args: tuple = ()):
  """model.apply of function(module, *args, *static_args), jitted per model and function."""
  rngs = {} if rng is None else {"sample": rng}
  return model.apply({"params": params}, *args, *static_args, method=function, rngs=rngs)


def _needs_key(key, what: str) -> jax.Array:
  if key is None:
    raise ValueError(f"{what} samples from a prior: pass a key (jax.random.key(seed)).")
  return key


def _at_least_one(num_frames: int) -> int:
  if num_frames < 1:
    raise ValueError(f"num_frames must be at least 1; got {num_frames}.")
  return num_frames


def _frames(codes: Codes, num_frames: int | None) -> int:
  return _at_least_one(codes.dynamics.shape[1] if num_frames is None else num_frames)


def _dsa_encode(module: dsa.DSA, videos, sample: bool) -> Codes:
  _, _, f, z = module.encode(videos, sample)
  return Codes(f, z)


def _dsa_decode(module: dsa.DSA, f, z, temperature, num_frames: int) -> jax.Array:
  if num_frames > z.shape[1]:
    z = module.extend_dynamics(z, num_frames, temperature)
  return jax.nn.sigmoid(module.decode(f, z[:, :num_frames]))


def _dsa_sample_static(module: dsa.DSA, key, num_videos: int) -> jax.Array:
  return module.prior_f(num_videos).sample(key)


def _dsa_sample_dynamics(module: dsa.DSA, temperature, num_videos: int, num_frames: int) -> jax.Array:
  return module.sample_dynamics(num_videos, num_frames, temperature)


def _dsa_sample_dynamics_means(module: dsa.DSA, temperature, num_videos: int, num_frames: int) -> jax.Array:
  return module.sample_dynamics_means(num_videos, num_frames, temperature)


@dataclasses.dataclass(frozen=True)
class DSACodec:
  """DSA's codes: static f, dynamics z_1:T; decoding past T continues z with the prior."""

  model: dsa.DSA
  params: Params
  train_frames: int
  rollout_temperature: float = 1.0  # scales the noise of p(z_t | z_<t) when sampling or continuing z
  static_name: str = "f"
  dynamics_name: str = "z"

  def encode(self, videos, key=None) -> Codes:
    """Posterior means of f [B, F] and z [B, T, Z], or samples with a key."""
    return _run(self.model, _dsa_encode, self.params, (as_videos(videos),), key, (key is not None,))

  def decode(self, codes: Codes, key=None, num_frames=None) -> jax.Array:
    """Frame means [B, num_frames, ...]; z is continued by the prior past its length (needs a key)."""
    frames = _frames(codes, num_frames)
    if frames > codes.dynamics.shape[1]:
      _needs_key(key, "Decoding past the codes' frames")
    args = (codes.static, codes.dynamics, jnp.float32(self.rollout_temperature))
    return _run(self.model, _dsa_decode, self.params, args, key, (frames,))

  def sample_static(self, key, num_videos: int) -> jax.Array:
    """f [N, F] ~ p(f) = N(0, I)."""
    return _run(self.model, _dsa_sample_static, self.params, (key,), None, (num_videos,))

  def sample_dynamics(self, key, num_videos: int, num_frames: int) -> jax.Array:
    """z [N, T, Z] rolled out from p(z_t | z_<t) on its own samples."""
    temperature = jnp.float32(self.rollout_temperature)
    return _run(self.model, _dsa_sample_dynamics, self.params, (temperature,), key, (num_videos, num_frames))

  def sample_dynamics_means(self, key, num_videos: int, num_frames: int) -> jax.Array:
    """Means [N, T, Z] of p(z_t | z_<t) at sample_dynamics' z_<t for the same key: 0 at t = 1, then the cell's loc."""
    temperature = jnp.float32(self.rollout_temperature)
    return _run(self.model, _dsa_sample_dynamics_means, self.params, (temperature,), key, (num_videos, num_frames))

  def continue_from(self, videos, key, num_frames: int) -> jax.Array:
    """f and z_1:k of each video's k frames (posterior means), then the prior for the rest."""
    return self.decode(self.encode(videos), key, num_frames)


def _vdsm_encode(module: vdsm.VDSM, videos, key) -> Codes:
  codes = module.encode_frames(videos)
  q_s, q_d = module.infer_s(codes), module.infer_d(codes)
  if key is None:
    return Codes(q_s.loc, q_d.loc)
  s_key, d_key = jax.random.split(key)
  return Codes(q_s.sample(s_key), q_d.sample(d_key))


def _vdsm_decode(module: vdsm.VDSM, s, d, tau, temperature, num_frames: int, inferred_frames: int) -> jax.Array:
  z = module.poses(d, num_frames, inferred_frames, temperature)  # [B, num_frames, Z]
  return jax.nn.sigmoid(module.decode(s, z, tau))


def _vdsm_sample_static(module: vdsm.VDSM, key, num_videos: int) -> jax.Array:
  return module.prior_s(num_videos).sample(key)


def _vdsm_sample_action(module: vdsm.VDSM, key, num_videos: int) -> jax.Array:
  return module.prior_d(num_videos).sample(key)


@dataclasses.dataclass(frozen=True)
class VDSMCodec:
  """VDSM's sequence model: identity s and action d; poses z_t come from the combiner given d.

  Decoding to num_frames takes the combiner's pose means for the training length and the
  gated transition p(z_t | z_t-1, d) after it; `continue_from` k frames uses the combiner
  for those k frames only, then the transition.
  """

  model: vdsm.VDSM
  params: Params
  train_frames: int
  inverse_temperature: float  # tau of the expert weights softmax(s * tau)
  rollout_temperature: float = 1.0  # scales the transition's noise past the combiner's frames
  static_name: str = "s"
  dynamics_name: str = "d"

  def encode(self, videos, key=None) -> Codes:
    """Posterior means of s [B, S] and d [B, D], or samples with a key."""
    return _run(self.model, _vdsm_encode, self.params, (as_videos(videos), key), None)

  def decode(self, codes: Codes, key=None, num_frames=None) -> jax.Array:
    """Frame means [B, num_frames (None: the training length), ...] of s and d."""
    return self._decode(codes, key, self.train_frames if num_frames is None else num_frames, self.train_frames)

  def _decode(self, codes: Codes, key, num_frames: int, inferred_frames: int) -> jax.Array:
    if _at_least_one(num_frames) > inferred_frames:
      _needs_key(key, "Decoding past the combiner's frames")
    args = (codes.static, codes.dynamics, jnp.float32(self.inverse_temperature), jnp.float32(self.rollout_temperature))
    return _run(self.model, _vdsm_decode, self.params, args, key, (num_frames, inferred_frames))

  def sample_static(self, key, num_videos: int) -> jax.Array:
    """s [N, S] ~ p(s)."""
    return _run(self.model, _vdsm_sample_static, self.params, (key,), None, (num_videos,))

  def sample_dynamics(self, key, num_videos: int, num_frames: int) -> jax.Array:
    """d [N, D] ~ p(d); one action serves any horizon, so num_frames is not needed."""
    del num_frames
    return _run(self.model, _vdsm_sample_action, self.params, (key,), None, (num_videos,))

  def sample_dynamics_means(self, key, num_videos: int, num_frames: int) -> jax.Array:
    """sample_dynamics' d ~ p(d) itself: d is the sampled path, and decode already takes the pose means given it."""
    return self.sample_dynamics(key, num_videos, num_frames)

  def continue_from(self, videos, key, num_frames: int) -> jax.Array:
    """s and d of each video's k frames, the combiner's poses for those k, then the transition."""
    videos = as_videos(videos)
    return self._decode(self.encode(videos), key, num_frames, videos.shape[1])


def _pose_encode(module: vdsm.VDSM, videos, key) -> Codes:
  codes = module.encode_frames(videos)
  q_s = module.infer_s(codes)
  if key is None:
    return Codes(q_s.loc, codes.q_z.loc)
  s_key, z_key = jax.random.split(key)
  return Codes(q_s.sample(s_key), codes.q_z.sample(z_key))


def _pose_decode(module: vdsm.VDSM, s, z, tau, temperature, key, num_frames: int) -> jax.Array:
  batch, known, _ = z.shape
  if num_frames > known:
    z = jnp.concatenate([z, temperature * module.prior_pose((batch, num_frames - known)).sample(key)], axis=1)
  return jax.nn.sigmoid(module.decode(s, z[:, :num_frames], tau))


def _pose_sample(module: vdsm.VDSM, key, temperature, num_videos: int, num_frames: int) -> jax.Array:
  return temperature * module.prior_pose((num_videos, num_frames)).sample(key)


@dataclasses.dataclass(frozen=True)
class VDSMPoseCodec:
  """VDSM after pretraining only: identity s and one pose z_t per frame, p(z_t) = N(0, I)."""

  model: vdsm.VDSM
  params: Params
  train_frames: int
  inverse_temperature: float
  rollout_temperature: float = 1.0  # scales the draws from p(z_t)
  static_name: str = "s"
  dynamics_name: str = "z"

  def encode(self, videos, key=None) -> Codes:
    """Posterior means of s [B, S] and the poses z [B, T, Z], or samples with a key."""
    return _run(self.model, _pose_encode, self.params, (as_videos(videos), key), None)

  def decode(self, codes: Codes, key=None, num_frames=None) -> jax.Array:
    """Frame means [B, num_frames, ...]; frames past the codes' take poses from p(z_t) (needs a key)."""
    frames = _frames(codes, num_frames)
    if frames > codes.dynamics.shape[1]:
      _needs_key(key, "Decoding past the codes' frames")
    temperatures = (jnp.float32(self.inverse_temperature), jnp.float32(self.rollout_temperature))
    return _run(self.model, _pose_decode, self.params, (codes.static, codes.dynamics, *temperatures, key), None, (frames,))

  def sample_static(self, key, num_videos: int) -> jax.Array:
    """s [N, S] ~ p(s)."""
    return _run(self.model, _vdsm_sample_static, self.params, (key,), None, (num_videos,))

  def sample_dynamics(self, key, num_videos: int, num_frames: int) -> jax.Array:
    """Poses z [N, T, Z], independent draws from p(z_t) = N(0, I)."""
    args = (key, jnp.float32(self.rollout_temperature))
    return _run(self.model, _pose_sample, self.params, args, None, (num_videos, num_frames))

  def sample_dynamics_means(self, key, num_videos: int, num_frames: int) -> jax.Array:
    """Zeros [N, T, Z]: p(z_t) = N(0, I) does not depend on z_<t, so each step's mean is 0 whatever the draw."""
    del key
    return jnp.zeros((num_videos, num_frames, self.model.config.dim_z))

  def continue_from(self, videos, key, num_frames: int) -> jax.Array:
    """s and the poses of each video's frames, then poses from p(z_t)."""
    return self.decode(self.encode(videos), key, num_frames)
