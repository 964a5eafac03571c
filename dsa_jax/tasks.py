"""Tasks: what the one training loop needs from a model and a stage, as hooks.

A Task binds a model to its loss, its TensorBoard images and its sample files; the loop
in `dsa_jax.train` never branches on the model.
"""

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from dsa_jax import data, losses, pendulum_metrics, sampling, visualize
from dsa_jax.models import dsa

Params = Any
Batch = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Task:
  """Model-specific hooks of the training loop."""

  name: str
  model: Any
  # (key, uint8 videos [B, T, H, W, C] of the first batch) -> params
  init_params: Callable[[jax.Array, jax.Array], Params]
  # (params, batch, key, step) -> (scalar loss, metrics of scalars); traced under jit
  loss_fn: Callable[[Params, Batch, jax.Array, jax.Array], tuple[jax.Array, losses.Metrics]]
  # (params, float videos, key) -> {name: [H, W, 3] uint8 image} for TensorBoard
  summary_images: Callable[[Params, np.ndarray, jax.Array], dict[str, np.ndarray]]
  # (params, float videos, key, out_dir) -> written file paths
  write_samples: Callable[[Params, np.ndarray, jax.Array, str], list[str]]
  # (params, float test videos, key) -> named scores of the trained model; None if none apply
  evaluate: Callable[[Params, np.ndarray, jax.Array], dict[str, float]] | None = None


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
    videos = data.to_unit_interval(videos)
    params = model.init({"params": params_key, "sample": sample_key}, videos)["params"]
    return dsa.with_output_bias_from_data(params, videos)

  def loss_fn(params, batch, key, step):
    output = model.apply({"params": params}, data.to_unit_interval(batch[data.VIDEO_KEY]), rngs={"sample": key})
    return losses.dsa_loss(output, weights, step)

  def summary_images(params, videos, key):
    reconstructions = np.asarray(sampling.reconstruct(model, params, videos, key))
    pairs = np.stack([np.asarray(videos), reconstructions], axis=1)
    return {"reconstructions": visualize.filmstrip(pairs.reshape(-1, *videos.shape[1:]))}

  def write_samples(params, videos, key, out_dir):
    return sampling.write_dsa_samples(model, params, videos, key, out_dir, num_sample_frames)

  def evaluate_pendulum_swaps(params, videos, key):
    half = videos.shape[0] // 2
    static_source, dynamic_source = videos[:half], videos[half : 2 * half]
    swapped = np.asarray(sampling.swap(model, params, static_source, dynamic_source, key))
    return pendulum_metrics.swap_statistics(swapped, static_source, dynamic_source)

  evaluate = evaluate_pendulum_swaps if config.data.name == "pendulum" else None
  return Task("dsa", model, init_params, loss_fn, summary_images, write_samples, evaluate)


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


EVALUATION_FILE = "evaluation.json"


def write_results(task: Task, params, visual_videos, evaluation_videos, key, out_dir: str) -> tuple[list[str], dict[str, float]]:
  """Writes sample files and (where the task has one) evaluation.json into out_dir."""
  sample_key, evaluation_key = jax.random.split(key)
  paths = task.write_samples(params, visual_videos, sample_key, out_dir)
  scores = task.evaluate(params, evaluation_videos, evaluation_key) if task.evaluate else {}
  if scores:
    path = os.path.join(out_dir, EVALUATION_FILE)
    with open(path + ".tmp", "w") as file:
      json.dump(scores, file, indent=2)
    os.replace(path + ".tmp", path)
    paths.append(path)
  return paths, scores


def load_videos(data_config: ml_collections.ConfigDict, split: str, count: int) -> np.ndarray:
  """The first `count` videos of a split as floats in [0, 1], at the config's length and size."""
  source = data.load_source(data_config, split)
  batch = data.first_examples(source, count, data_config.num_frames, data_config.image_size)
  return float_videos(batch[data.VIDEO_KEY])

