"""Tasks: what the one training loop needs from a model and a stage, as hooks.

A Task binds a model to its loss, its TensorBoard images and its sample files; the loop
in `dsa_jax.train` never branches on the model.
"""

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from dsa_jax import data, losses, sampling, visualize
from dsa_jax.models import dsa

Params = Any
Batch = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Task:
  """Model-specific hooks of the training loop."""

  name: str
  model: Any
  # (key, example uint8 videos [B, T, H, W, C]) -> params
  init_params: Callable[[jax.Array, jax.Array], Params]
  # (params, batch, key, step) -> (scalar loss, metrics of scalars); traced under jit
  loss_fn: Callable[[Params, Batch, jax.Array, jax.Array], tuple[jax.Array, losses.Metrics]]
  # (params, float videos, key) -> {name: [H, W, 3] uint8 image} for TensorBoard
  summary_images: Callable[[Params, np.ndarray, jax.Array], dict[str, np.ndarray]]
  # (params, float videos, key, out_dir) -> written file paths
  write_samples: Callable[[Params, np.ndarray, jax.Array, str], list[str]]


def dsa_model_config(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> dsa.DSAConfig:
  """The typed DSA architecture from config.dsa and the dataset's frame shape."""
  return dsa.DSAConfig(image_shape=tuple(image_shape), **config.dsa.to_dict())


def dsa_task(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Task:
  """DSA trained on the (beta-weighted) ELBO."""
  model = dsa.DSA(dsa_model_config(config, image_shape))
  weights = losses.DSAWeights(config.loss.beta_f, config.loss.beta_z, config.loss.kl_warmup_steps)
  num_sample_frames = config.sample.num_frames or config.data.num_frames

  def init_params(key, videos):
    params_key, sample_key = jax.random.split(key)
    variables = model.init({"params": params_key, "sample": sample_key}, data.to_unit_interval(videos))
    return variables["params"]

  def loss_fn(params, batch, key, step):
    output = model.apply({"params": params}, data.to_unit_interval(batch[data.VIDEO_KEY]), rngs={"sample": key})
    return losses.dsa_loss(output, weights, step)

  def summary_images(params, videos, key):
    reconstructions = np.asarray(sampling.reconstruct(model, params, videos, key))
    pairs = np.stack([np.asarray(videos), reconstructions], axis=1)
    return {"reconstructions": visualize.filmstrip(pairs.reshape(-1, *videos.shape[1:]))}

  def write_samples(params, videos, key, out_dir):
    return sampling.write_dsa_samples(model, params, videos, key, out_dir, num_sample_frames)

  return Task("dsa", model, init_params, loss_fn, summary_images, write_samples)


TASKS = {"dsa": dsa_task}


def make_task(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Task:
  """The task named by config.model."""
  if config.model not in TASKS:
    raise ValueError(f"Unknown config.model {config.model!r}; choose one of {sorted(TASKS)}.")
  return TASKS[config.model](config, image_shape)


def float_videos(videos: np.ndarray) -> np.ndarray:
  """uint8 videos -> float32 in [0, 1] on the host."""
  return np.asarray(data.to_unit_interval(videos))


def sample_dir(workdir: str, step: int) -> str:
  """Where the sample files of a checkpoint step are written."""
  return os.path.join(workdir, "samples", f"step_{step}")

