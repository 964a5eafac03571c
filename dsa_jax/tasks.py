"""Tasks: what the one training loop needs from a model and a stage, as hooks.

A Task binds a model to its loss, its TensorBoard images and its sample files; the loop
in `dsa_jax.train` never branches on the model.
"""

import dataclasses
import functools
import json
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from dsa_jax import checkpointing, data, losses, pendulum_metrics, sampling, schedules, vdsm_sampling, visualize
from dsa_jax.models import dsa, vdsm

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
  # (params, float videos, key) -> {name: uint8 [H, W, 3] image or [T, H, W, 3] video} for TensorBoard
  summary_images: Callable[[Params, np.ndarray, jax.Array], dict[str, np.ndarray]]
  # (params, float videos, key, out_dir) -> written file paths
  write_samples: Callable[[Params, np.ndarray, jax.Array, str], list[str]]
  # (params, float test videos, key) -> named scores of the trained model; None if none apply
  evaluate: Callable[[Params, np.ndarray, jax.Array], dict[str, float]] | None = None
  group_size: int = 1  # clips of one identity per batch element (data.BatchSpec.group_size)
  # params -> pytree of "trained" / "frozen" labels for the optimizer; None: all trained
  trainable: Callable[[Params], Any] | None = None
  # () -> starting params read from elsewhere (e.g. a pretraining run); None: init_params
  load_params: Callable[[], Params] | None = None


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
    pairs = np.stack([np.asarray(videos), reconstructions], axis=1)  # [N, 2, T, H, W, C]
    return {
        "reconstructions": visualize.filmstrip(pairs.reshape(-1, *videos.shape[1:])),
        "reconstruction_videos": visualize.video_grid(pairs),
    }

  def write_samples(params, videos, key, out_dir):
    return sampling.write_dsa_samples(model, params, videos, key, out_dir, num_sample_frames)

  def evaluate_pendulum_swaps(params, videos, key):
    half = videos.shape[0] // 2
    static_source, dynamic_source = videos[:half], videos[half : 2 * half]
    swapped = np.asarray(sampling.swap(model, params, static_source, dynamic_source, key))
    return pendulum_metrics.swap_statistics(swapped, static_source, dynamic_source)

  evaluate = evaluate_pendulum_swaps if config.data.name == "pendulum" else None
  return Task("dsa", model, init_params, loss_fn, summary_images, write_samples, evaluate)


VDSM_STAGES = ("pretrain", "sequence")
# Stage 2 trains everything new plus the layers that parameterise s and z_t; frozen:
VDSM_FROZEN_IN_SEQUENCE = ("encoder", "decoder", "identity_head/hidden")


def vdsm_model_config(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> vdsm.VDSMConfig:
  """The typed VDSM architecture from config.vdsm and the dataset's frame shape."""
  fields = {name: value for name, value in config.vdsm.to_dict().items() if name != "group_size"}
  fields["encoder_channels"] = tuple(fields["encoder_channels"])
  fields["decoder_channels"] = tuple(fields["decoder_channels"])
  return vdsm.VDSMConfig(image_shape=tuple(image_shape), **fields)


def vdsm_labels(params: Params, stage: str) -> Params:
  """"trained" / "frozen" per parameter leaf for a VDSM stage."""
  def label(path, _):
    name = "/".join(str(getattr(key, "key", key)) for key in path)
    if stage == "pretrain":
      return "frozen" if name.split("/")[0] in ("seq2seq", "combiner", "transition") else "trained"
    return "frozen" if any(name == prefix or name.startswith(prefix + "/") for prefix in VDSM_FROZEN_IN_SEQUENCE) else "trained"

  return jax.tree_util.tree_map_with_path(label, params)


def frozen_as_constants(params: Params, labels: Params) -> Params:
  """params with frozen leaves behind stop_gradient, so no gradient is computed for them."""
  return jax.tree.map(lambda value, label: jax.lax.stop_gradient(value) if label == "frozen" else value, params, labels)


def restore_pretrained_params(workdir: str | None) -> Params:
  """The params of the latest pretraining checkpoint in workdir (a `pretrain` run or its parent)."""
  if workdir is None:
    raise checkpointing.CheckpointError("The VDSM sequence stage needs config.init_from: a workdir with a pretraining run.")
  candidates = [os.path.join(workdir, "pretrain"), workdir]
  for directory in candidates:
    if not os.path.isdir(checkpointing.checkpoint_dir(directory)):
      continue
    checkpointer = checkpointing.Checkpointer(checkpointing.checkpoint_dir(directory), 1, read_only=True)
    step = checkpointer.latest_step()
    if step is not None and checkpointer.restore_config(step).stage == "pretrain":
      return jax.tree.map(jax.numpy.asarray, checkpointer.restore_params(step))
  raise checkpointing.CheckpointError(
      f"No VDSM pretraining checkpoint in {' or '.join(candidates)}. Run config.stage=pretrain first, or set "
      "config.init_from to the workdir of a finished pretraining run."
  )


def vdsm_task(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Task:
  """One VDSM stage (config.stage "pretrain" or "sequence") with its schedules and frozen parts."""
  stage = config.stage
  if stage not in VDSM_STAGES:
    raise ValueError(f"A VDSM task needs config.stage in {VDSM_STAGES}; got {stage!r}.")
  model = vdsm.VDSM(vdsm_model_config(config, image_shape))
  stage_config = config.vdsm_pretrain if stage == "pretrain" else config.vdsm_sequence
  weights_at = schedules.pretrain_weights if stage == "pretrain" else schedules.sequence_weights
  train_frames = config.data.num_frames
  horizon = config.sample.num_frames or train_frames
  final_tau = float(weights_at(10**9, stage_config).tau)

  def init_params(key, videos):
    videos = data.to_unit_interval(videos)
    params_key, sample_key = jax.random.split(key)
    params = model.init({"params": params_key, "sample": sample_key}, videos)["params"]
    return vdsm.with_output_bias_from_data(params, videos)

  def loss_fn(params, batch, key, step):
    weights = weights_at(step, stage_config)
    videos = data.to_unit_interval(batch[data.VIDEO_KEY])
    params = frozen_as_constants(params, vdsm_labels(params, stage))
    output = model.apply({"params": params}, videos, weights.tau, rngs={"sample": key}, method=stage)
    if stage == "pretrain":
      return losses.vdsm_pretrain_loss(output, weights)
    return losses.vdsm_sequence_loss(output, weights)

  def summary_images(params, videos, key):
    if stage == "pretrain":
      reconstructions = vdsm_sampling.reconstruct_frames(model, params, videos, final_tau)
      images = {}
    else:
      reconstructions = vdsm_sampling.reconstruct(model, params, videos, key, final_tau, train_frames)
      generated = np.asarray(vdsm_sampling.generate(model, params, key, videos.shape[0], horizon, final_tau))  # [N, horizon, H, W, C]
      images = {"generation": visualize.filmstrip(generated), "generation_videos": visualize.video_grid(generated[None])}
    pairs = np.stack([np.asarray(videos), np.asarray(reconstructions)], axis=1)  # [N, 2, T, H, W, C]
    return {
        "reconstructions": visualize.filmstrip(pairs.reshape(-1, *videos.shape[1:])),
        "reconstruction_videos": visualize.video_grid(pairs),
        **images,
    }

  def write_samples(params, videos, key, out_dir):
    return vdsm_sampling.write_samples(
        model, params, videos, key, out_dir, stage=stage, tau=final_tau, train_frames=train_frames, horizon=horizon
    )

  def evaluate_pendulum_transfer(params, videos, key):
    half = videos.shape[0] // 2
    identities, actions = videos[:half], videos[half : 2 * half]
    grid = np.asarray(vdsm_sampling.transfer(model, params, identities, actions, key, horizon, final_tau, train_frames))
    colours, speeds = pendulum_metrics.bob_colour(videos), pendulum_metrics.swing_speed(videos)
    scores = pendulum_metrics.transfer_grid_statistics(
        grid, colours[:half], speeds[:half], colours[half : 2 * half], speeds[half : 2 * half]
    )
    generated = vdsm_sampling.generate(model, params, jax.random.fold_in(key, 1), videos.shape[0], horizon, final_tau)
    continued = vdsm_sampling.continue_video(model, params, videos, jax.random.fold_in(key, 2), horizon, final_tau, train_frames)
    return {
        **scores,
        "generations": videos.shape[0],
        "generation_frames": horizon,
        "generations_swinging_in_last_third": float(pendulum_metrics.still_swinging(np.asarray(generated)).mean()),
        "continuations_swinging_in_last_third": float(pendulum_metrics.still_swinging(np.asarray(continued)).mean()),
        "continuations_keeping_speed": float(np.mean(pendulum_metrics.swing_speed(np.asarray(continued)) == speeds)),
    }

  evaluate = evaluate_pendulum_transfer if config.data.name == "pendulum" and stage == "sequence" else None
  return Task(
      f"vdsm_{stage}", model, init_params, loss_fn, summary_images, write_samples, evaluate,
      group_size=config.vdsm.group_size if stage == "pretrain" else 1,
      trainable=functools.partial(vdsm_labels, stage=stage),
      load_params=functools.partial(restore_pretrained_params, config.init_from) if stage == "sequence" else None,
  )


TASKS = {"dsa": dsa_task, "vdsm": vdsm_task}


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
    paths.append(visualize.write_atomically(os.path.join(out_dir, EVALUATION_FILE), json.dumps(scores, indent=2).encode()))
  return paths, scores


def load_videos(data_config: ml_collections.ConfigDict, split: str, count: int) -> np.ndarray:
  """The first `count` videos of a split as floats in [0, 1], at the config's length and size."""
  source = data.load_source(data_config, split)
  batch = data.first_examples(source, count, data_config.num_frames, data_config.image_size)
  return float_videos(batch[data.VIDEO_KEY])

