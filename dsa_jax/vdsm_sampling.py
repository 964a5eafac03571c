"""VDSM generation and transfer from trained params: library functions and their image files.

Videos are floats in [0, 1], [B, T, H, W, C]. `tau` is the inverse temperature of the
expert weights (the sequence stage's, 10 in the paper). Horizons may exceed the training
length: z_1..T come from the combiner given d, later steps from the transition.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from dsa_jax import visualize
from dsa_jax.models import vdsm


def _apply(model, params, *args, method, key=None):
  rngs = {"sample": key} if key is not None else {}
  return model.apply({"params": params}, *args, method=method, rngs=rngs)


@functools.partial(jax.jit, static_argnames=("model",))
def encode(model: vdsm.VDSM, params, videos):
  """Posterior means of s [B, S] and d [B, D] of videos."""
  codes = _apply(model, params, videos, method="encode_frames")
  s = _apply(model, params, codes, method="infer_s").loc
  d = _apply(model, params, codes, method="infer_d").loc
  return s, d


@functools.partial(jax.jit, static_argnames=("model", "num_frames", "train_frames"))
def pose_trajectory(model: vdsm.VDSM, params, d, key, num_frames: int, train_frames: int):
  """z [B, num_frames, Z]: the combiner's means for the first train_frames, then the transition."""
  batch, dim_z = d.shape[0], model.config.dim_z
  known = min(num_frames, train_frames)
  z = _apply(model, params, d, jnp.zeros((batch, known, dim_z)), method="infer_z")[0]
  if num_frames == known:
    return z
  later = _apply(model, params, z[:, -1], d, num_frames - known + 1, method="rollout", key=key)
  return jnp.concatenate([z, later[:, 1:]], axis=1)


@functools.partial(jax.jit, static_argnames=("model",))
def decode(model: vdsm.VDSM, params, s, z, tau):
  """Frame means [B, T, H, W, C] for s [B, S] and z [B, T, Z]."""
  return jax.nn.sigmoid(_apply(model, params, s, z, tau, method="decode"))


def _checked(videos) -> jax.Array:
  videos = jnp.asarray(videos)
  if videos.ndim != 5:
    raise ValueError(f"Expected videos [batch, time, height, width, channels]; got shape {videos.shape}.")
  if not bool(jnp.all(jnp.isfinite(videos))):
    raise ValueError("Videos contain NaN or Inf values; clean the input before sampling.")
  return videos.astype(jnp.float32)


def reconstruct(model, params, videos, key, tau: float, train_frames: int) -> jax.Array:
  """Sequence-model reconstructions [B, T, ...]: s and d of each video, z from d."""
  return continue_video(model, params, videos, key, np.shape(videos)[1], tau, train_frames)


@functools.partial(jax.jit, static_argnames=("model",))
def _pretrain_reconstruct(model, params, videos, tau):
  codes = _apply(model, params, videos, method="encode_frames")
  s = _apply(model, params, codes, method="infer_s").loc
  return jax.nn.sigmoid(_apply(model, params, s, codes.q_z.loc, tau, method="decode"))


def reconstruct_frames(model, params, videos, tau: float) -> jax.Array:
  """Pretrained-model reconstructions: s of each video, z_t of each frame (posterior means)."""
  return _pretrain_reconstruct(model, params, _checked(videos), tau)


@functools.partial(jax.jit, static_argnames=("model",))
def _pretrain_swap(model, params, identity_videos, pose_videos, tau):
  s = _apply(model, params, _apply(model, params, identity_videos, method="encode_frames"), method="infer_s").loc
  z = _apply(model, params, pose_videos, method="encode_frames").q_z.loc
  return jax.nn.sigmoid(_apply(model, params, s, z, tau, method="decode"))


def pose_swap(model, params, identity_videos, pose_videos, tau: float) -> jax.Array:
  """Pretrained model: s of identity_videos[b] with the per-frame poses of pose_videos[b]."""
  return _pretrain_swap(model, params, _checked(identity_videos), _checked(pose_videos), tau)


def generate(model, params, key, batch_size: int, num_frames: int, tau: float) -> jax.Array:
  """Unconditional videos [B, T, ...]: s, d, z_1 from their priors, z_t from the transition."""
  return _generate(model, params, key, batch_size, num_frames, tau)


@functools.partial(jax.jit, static_argnames=("model", "batch_size", "num_frames"))
def _generate(model, params, key, batch_size, num_frames, tau):
  s_key, d_key, z_key, rollout_key = jax.random.split(key, 4)
  config = model.config
  s = jax.random.normal(s_key, (batch_size, config.dim_s)) / config.dim_s
  d = jax.random.normal(d_key, (batch_size, config.dim_d)) / config.dim_d
  z_1 = jax.random.normal(z_key, (batch_size, config.dim_z))
  z = _apply(model, params, z_1, d, num_frames, method="rollout", key=rollout_key)
  return jax.nn.sigmoid(_apply(model, params, s, z, tau, method="decode"))


def continue_video(model, params, videos, key, num_frames: int, tau: float, train_frames: int) -> jax.Array:
  """Videos conditioned on each input video (or single frame, T = 1): its s and d, then the priors."""
  videos = _checked(videos)
  s, d = encode(model, params, videos)
  z = pose_trajectory(model, params, d, key, num_frames, train_frames)
  return decode(model, params, s, z, tau)


def transfer(model, params, identity_videos, action_videos, key, num_frames: int, tau: float, train_frames: int):
  """[I, A, T, ...]: the identity (s) of identity_videos[i] performing the action (d) of action_videos[a]."""
  s, _ = encode(model, params, _checked(identity_videos))
  _, d = encode(model, params, _checked(action_videos))
  z = pose_trajectory(model, params, d, key, num_frames, train_frames)  # [A, T, Z]
  rows, cols = s.shape[0], d.shape[0]
  frames = decode(model, params, jnp.repeat(s, cols, axis=0), jnp.tile(z, (rows, 1, 1)), tau)
  return frames.reshape(rows, cols, *frames.shape[1:])


def swap(model, params, identity_videos, action_videos, key, num_frames: int, tau: float, train_frames: int):
  """[B, T, ...]: s of identity_videos[b] with d (and so the pose) of action_videos[b]."""
  s, _ = encode(model, params, _checked(identity_videos))
  _, d = encode(model, params, _checked(action_videos))
  z = pose_trajectory(model, params, d, key, num_frames, train_frames)
  return decode(model, params, s, z, tau)


def write_samples(model, params, videos, key, out_dir: str, *, stage: str, tau: float, train_frames: int, horizon: int) -> list[str]:
  """Writes the stage's PNG grids and GIFs of videos [N, T, ...] into out_dir; returns the paths."""
  os.makedirs(out_dir, exist_ok=True)
  videos = np.asarray(_checked(videos))
  scale = visualize.display_scale(videos.shape[3])
  half = max(videos.shape[0] // 2, 1)
  identities, actions = videos[:half], videos[half : 2 * half] if videos.shape[0] > 1 else videos
  paths = []

  def save(name, frames, columns=1):
    frames = np.asarray(frames)  # [N, T, H, W, C], rows of `columns` videos in the GIF
    paths.append(visualize.save_png(visualize.filmstrip(frames), os.path.join(out_dir, f"{name}.png"), scale))
    grid = frames.reshape(-1, columns, *frames.shape[1:])
    paths.append(visualize.save_gif(visualize.video_grid(grid), os.path.join(out_dir, f"{name}.gif"), scale=scale))

  if stage == "pretrain":
    recon = np.asarray(reconstruct_frames(model, params, videos, tau))
    save("reconstructions", np.stack([videos, recon], axis=1).reshape(-1, *videos.shape[1:]), 2)
    swapped = np.asarray(pose_swap(model, params, identities, actions, tau))
    save("identity_swap", np.stack([identities, actions, swapped], axis=1).reshape(-1, *videos.shape[1:]), 3)
    return paths
  recon_key, generate_key, continue_key, transfer_key = jax.random.split(key, 4)
  recon = np.asarray(reconstruct(model, params, videos, recon_key, tau, train_frames))
  save("reconstructions", np.stack([videos, recon], axis=1).reshape(-1, *videos.shape[1:]), 2)
  save("generation", generate(model, params, generate_key, videos.shape[0], horizon, tau))
  save("continuation", continue_video(model, params, videos, continue_key, horizon, tau, train_frames))
  grid = np.asarray(transfer(model, params, identities, actions, transfer_key, horizon, tau, train_frames))
  save("action_transfer", grid.reshape(-1, *grid.shape[2:]), grid.shape[1])
  return paths
