"""Reconstruction, swaps, generation and continuation, written once over a codec.

Every function takes a `dsa_jax.codecs.Codec` (from `dsa_jax.restore` or a task), videos
[B, T, H, W, C] (floats in [0, 1] or uint8) and a key, and returns frame means in [0, 1].
"static" is DSA's f and VDSM's identity s; "dynamics" DSA's z_1:T and VDSM's action d.
Files of these (PNG, GIF) are written by `dsa_jax.sample_files`.
"""

import jax
import jax.numpy as jnp

from dsa_jax import code_density
from dsa_jax.codecs import Codec, Codes


def reconstruct(codec: Codec, videos, key: jax.Array) -> jax.Array:
  """Decoded posterior means [B, T, ...] of videos."""
  codes = codec.encode(videos)
  return codec.decode(codes, key, jnp.shape(videos)[1])


def extend(codec: Codec, videos, key: jax.Array, num_frames: int) -> jax.Array:
  """Each video's codes decoded to num_frames [B, num_frames, ...] (VDSM: combiner poses for the
  training length, then the transition; DSA: z_1:T, then the prior)."""
  return codec.decode(codec.encode(videos), key, num_frames)


def continue_video(codec: Codec, videos, key: jax.Array, num_frames: int) -> jax.Array:
  """Conditioned on the given first k frames of each video [B, k, ...], then the priors: [B, num_frames, ...]."""
  return codec.continue_from(videos, key, num_frames)


def swap(codec: Codec, static_source, dynamic_source, key: jax.Array, num_frames: int | None = None) -> jax.Array:
  """[B, T, ...]: the static code of static_source[b] with the dynamics of dynamic_source[b]
  (T: num_frames, default the dynamic source's length)."""
  static = codec.encode(static_source).static
  dynamics = codec.encode(dynamic_source).dynamics
  return codec.decode(Codes(static, dynamics), key, jnp.shape(dynamic_source)[1] if num_frames is None else num_frames)


def swap_grid(codec: Codec, static_sources, dynamic_sources, key: jax.Array, num_frames: int | None = None) -> jax.Array:
  """[N, M, T, ...]: entry (i, j) has the static code of static_sources[i] and the dynamics of
  dynamic_sources[j] (VDSM: the action transfer grid); decoded a row at a time to bound memory."""
  static = codec.encode(static_sources).static  # [N, S]
  dynamics = codec.encode(dynamic_sources).dynamics  # [M, ...]
  frames = jnp.shape(dynamic_sources)[1] if num_frames is None else num_frames
  columns = dynamics.shape[0]
  rows = [
      codec.decode(Codes(jnp.repeat(static[i : i + 1], columns, axis=0), dynamics), jax.random.fold_in(key, i), frames)
      for i in range(static.shape[0])
  ]
  return jnp.stack(rows)  # [N, M, T, ...]


def generate(codec: Codec, key: jax.Array, num_videos: int, num_frames: int) -> jax.Array:
  """[N, T, ...] with the static code and the dynamics drawn from their priors."""
  static_key, dynamics_key = jax.random.split(key)
  return generate_with_static(codec, codec.sample_static(static_key, num_videos), dynamics_key, num_frames)


def generate_from_density(
    codec: Codec, density: code_density.CodeDensity, key: jax.Array, num_videos: int, num_frames: int
) -> jax.Array:
  """[N, T, ...] with both codes drawn from a density fitted to encoded videos (`code_density.fit_codes`)."""
  sample_key, decode_key = jax.random.split(key)
  return codec.decode(code_density.sample_codes(density, sample_key, num_videos), decode_key, num_frames)


def generate_with_static(codec: Codec, static: jax.Array, key: jax.Array, num_frames: int) -> jax.Array:
  """[N, T, ...] keeping the static codes [N, S] (e.g. `codec.encode(videos).static`), dynamics from the prior."""
  dynamics = codec.sample_dynamics(key, static.shape[0], num_frames)
  return codec.decode(Codes(static, dynamics), jax.random.fold_in(key, 1), num_frames)


def generate_with_dynamics(codec: Codec, dynamics: jax.Array, key: jax.Array, num_frames: int | None = None) -> jax.Array:
  """[N, T, ...] keeping the dynamic codes (e.g. `codec.encode(videos).dynamics`), static from the prior."""
  static_key, decode_key = jax.random.split(key)
  static = codec.sample_static(static_key, dynamics.shape[0])
  return codec.decode(Codes(static, dynamics), decode_key, num_frames)
