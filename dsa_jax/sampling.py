"""DSA reconstruction, static/dynamic swaps and generation, plus the image files of them.

Every function takes a model, its params and float videos in [0, 1]; use
`dsa_jax.data.to_unit_interval` for uint8 frames.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from dsa_jax import visualize
from dsa_jax.models import dsa


def _checked(videos) -> jax.Array:
  videos = jnp.asarray(videos)
  if jnp.issubdtype(videos.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(videos))):
    raise ValueError("Videos contain NaN or Inf values; clean the input before sampling.")
  return videos


@functools.partial(jax.jit, static_argnames=("model",))
def _reconstruct(model: dsa.DSA, params, videos, key):
  _, _, f, z = model.apply({"params": params}, videos, False, rngs={"sample": key}, method="encode")
  return jax.nn.sigmoid(model.apply({"params": params}, f, z, method="decode"))


def reconstruct(model: dsa.DSA, params, videos, key: jax.Array) -> jax.Array:
  """Decoded posterior means [B, T, H, W, C] of videos [B, T, H, W, C]."""
  return _reconstruct(model, params, _checked(videos), key)


@functools.partial(jax.jit, static_argnames=("model",))
def _encode_means(model: dsa.DSA, params, videos, key):
  _, _, f, z = model.apply({"params": params}, videos, False, rngs={"sample": key}, method="encode")
  return f, z


@functools.partial(jax.jit, static_argnames=("model",))
def _decode(model: dsa.DSA, params, f, z):
  return jax.nn.sigmoid(model.apply({"params": params}, f, z, method="decode"))


def swap_matrix(model: dsa.DSA, params, static_source, dynamic_source, key: jax.Array) -> jax.Array:
  """[N, M, T, H, W, C]: entry (i, j) has the static code of video i and the dynamics of video j."""
  f, _ = _encode_means(model, params, _checked(static_source), key)  # [N, F]
  _, z = _encode_means(model, params, _checked(dynamic_source), key)  # [M, T, Z]
  rows, cols = f.shape[0], z.shape[0]
  f_pairs = jnp.repeat(f, cols, axis=0)  # [N*M, F]
  z_pairs = jnp.tile(z, (rows, 1, 1))  # [N*M, T, Z]
  frames = _decode(model, params, f_pairs, z_pairs)
  return frames.reshape(rows, cols, *frames.shape[1:])


def swap(model: dsa.DSA, params, static_source, dynamic_source, key: jax.Array) -> jax.Array:
  """[B, T, H, W, C]: static code of static_source[b] with the dynamics of dynamic_source[b]."""
  f, _ = _encode_means(model, params, _checked(static_source), key)
  _, z = _encode_means(model, params, _checked(dynamic_source), key)
  return _decode(model, params, f, z)


@functools.partial(jax.jit, static_argnames=("model", "num_frames"))
def _generate_from_static(model: dsa.DSA, params, f, key, num_frames: int):
  return model.apply({"params": params}, f, num_frames, rngs={"sample": key}, method="generate")


def generate(model: dsa.DSA, params, key: jax.Array, num_videos: int, num_frames: int) -> jax.Array:
  """Videos [N, T, H, W, C] with f ~ p(f) and z_1:T rolled out from the dynamics prior."""
  f_key, z_key = jax.random.split(key)
  f = jax.random.normal(f_key, (num_videos, model.config.dim_f))
  return _generate_from_static(model, params, f, z_key, num_frames)


def generate_with_static(model: dsa.DSA, params, static_source, key: jax.Array, num_frames: int) -> jax.Array:
  """Videos [N, T, ...] keeping each source video's static code, with dynamics from the prior."""
  encode_key, z_key = jax.random.split(key)
  f, _ = _encode_means(model, params, _checked(static_source), encode_key)
  return _generate_from_static(model, params, f, z_key, num_frames)


def _with_headers(matrix: np.ndarray, row_videos: np.ndarray, col_videos: np.ndarray) -> np.ndarray:
  """Adds the source videos as a first row and column: [N+1, M+1, T, H, W, C]."""
  rows, cols = matrix.shape[:2]
  bordered = np.ones((rows + 1, cols + 1, *matrix.shape[2:]), np.float32)
  bordered[1:, 1:] = matrix
  bordered[0, 1:] = col_videos
  bordered[1:, 0] = row_videos
  return bordered


def write_dsa_samples(model: dsa.DSA, params, videos, key: jax.Array, out_dir: str, num_frames: int) -> list[str]:
  """Writes reconstructions, f-swaps and prior generations as PNG and GIF files; returns paths."""
  videos = np.asarray(_checked(videos), np.float32)  # [N, T, H, W, C]
  count = videos.shape[0]
  half = count // 2
  static_source, dynamic_source = videos[:half], videos[half : 2 * half]
  recon_key, swap_key, prior_key = jax.random.split(key, 3)
  reconstructions = np.asarray(reconstruct(model, params, videos, recon_key))
  matrix = np.asarray(swap_matrix(model, params, static_source, dynamic_source, swap_key))
  generated = np.asarray(generate(model, params, prior_key, count, num_frames))
  pairs = np.stack([videos, reconstructions], axis=1).reshape(-1, *videos.shape[1:])
  swaps = np.stack(
      [static_source, dynamic_source, matrix[np.arange(half), np.arange(half)]], axis=1
  ).reshape(-1, *videos.shape[1:])
  bordered = _with_headers(matrix, static_source, dynamic_source)
  scale = visualize.display_scale(videos.shape[3])
  return [
      visualize.save_png(visualize.filmstrip(pairs), os.path.join(out_dir, "reconstructions.png"), scale),
      visualize.save_png(visualize.filmstrip(swaps), os.path.join(out_dir, "swap.png"), scale),
      visualize.save_gif(visualize.video_grid(bordered), os.path.join(out_dir, "swap_matrix.gif"), scale=scale),
      visualize.save_png(visualize.filmstrip(generated), os.path.join(out_dir, "prior.png"), scale),
      visualize.save_gif(visualize.video_grid(generated[:, None]), os.path.join(out_dir, "prior.gif"), scale=scale),
  ]
