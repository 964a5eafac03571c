"""Tasks and stages: what the one training loop needs from a model, as hooks.

A model is a list of stages (DSA: one; VDSM: pretraining, then the sequence model). Each stage
has its task (init, loss, trainable parameters, where its starting parameters come from, its
codec) and its schedule (steps, batch size, learning rate). The loop in `dsa_jax.train`
never names a model.
"""

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import ml_collections

from dsa_jax import checkpointing, codecs, data, losses, schedules
from dsa_jax.evaluation import judge
from dsa_jax.models import dsa, vdsm

Params = Any
Batch = dict[str, jax.Array]


class ConfigError(ValueError):
  """A config field is unknown, out of range or does not apply to the model."""


@dataclasses.dataclass(frozen=True)
class Task:
  """Model-specific hooks of the training loop."""

  name: str
  model: Any
  # (key, uint8 videos [B, T, H, W, C] of the first batch) -> params
  init_params: Callable[[jax.Array, jax.Array], Params]
  # (params, batch, key, step) -> (scalar loss, metrics of scalars); traced under jit
  loss_fn: Callable[[Params, Batch, jax.Array, jax.Array], tuple[jax.Array, losses.Metrics]]
  # params -> the trained model's codes (sampling, images, evaluation); None: the model has none (a judge)
  codec: Callable[[Params], codecs.Codec] | None
  group_size: int = 1  # clips of one identity per batch element (data.BatchSpec.group_size)
  # params -> pytree of "trained" / "frozen" labels for the optimizer; None: all trained
  trainable: Callable[[Params], Any] | None = None
  # () -> starting params read from elsewhere (e.g. a pretraining run); None: init_params
  load_params: Callable[[], Params] | None = None


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage of training: its task and its schedule."""

  name: str | None  # the stage's folder inside the workdir; None: the model has one stage
  task: Task
  num_steps: int
  batch_size: int
  learning_rate: float
  section: str  # the config section that sets the schedule, for messages ("train", "vdsm_pretrain")
  cooldown_steps: int = 0  # the last steps, over which the learning rate falls to 0

  def field(self, name: str) -> str:
    """The config field that sets `name` of this stage's schedule, e.g. "config.train.batch_size"."""
    return schedule_field(self.section, name)

  def learning_rate_scale(self, step):
    """The factor on learning_rate at a (0-based) step: 1, then a half-cosine to 0 over the last cooldown_steps (jit-safe)."""
    return schedules.cooldown(step, self.num_steps, self.cooldown_steps)

  def learning_rate_at(self, step: int) -> float:
    """The learning rate of a (0-based) step."""
    return self.learning_rate * float(self.learning_rate_scale(step))


SCHEDULE_FIELDS = ("num_steps", "batch_size", "learning_rate")


def schedule_field(section: str, name: str) -> str:
  """The field of config section `section` that sets a schedule value; epoch-scheduled sections set num_steps in epochs."""
  if section == "train" or name not in SCHEDULE_FIELDS:
    return f"config.train.{name}"
  if name == "num_steps":
    return f"config.{section}.num_epochs / steps_per_epoch"
  return f"config.{section}.{name}"


def stage_dir(workdir: str, stage_name: str | None) -> str:
  """Where a stage keeps its checkpoints, metrics, TensorBoard files and samples."""
  return workdir if stage_name is None else os.path.join(workdir, stage_name)


def rollout_temperature(config: ml_collections.ConfigDict) -> float:
  """config.sample.rollout_temperature, 1.0 for runs saved before it existed."""
  return float(config.sample.get("rollout_temperature", 1.0))


def dsa_model_config(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> dsa.DSAConfig:
  """The typed DSA architecture from config.dsa and the dataset's frame shape."""
  fields = config.dsa.to_dict()
  fields["channels_per_resolution"] = tuple(fields.get("channels_per_resolution", ()))
  return dsa.DSAConfig(image_shape=tuple(image_shape), compute_dtype=config.train.get("compute_dtype", "float32"), **fields)


def dsa_task(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Task:
  """DSA trained on the (beta-weighted) ELBO."""
  model = dsa.DSA(dsa_model_config(config, image_shape))
  weights = losses.DSAWeights(config.loss.beta_f, config.loss.beta_z, config.loss.kl_warmup_steps)

  def init_params(key, videos):
    params_key, sample_key = jax.random.split(key)
    videos = data.to_unit_interval(videos)
    params = model.init({"params": params_key, "sample": sample_key}, videos)["params"]
    return dsa.with_output_bias_from_data(params, videos)

  def loss_fn(params, batch, key, step):
    output = model.apply({"params": params}, data.to_unit_interval(batch[data.VIDEO_KEY]), rngs={"sample": key})
    return losses.dsa_loss(output, weights, step)

  codec = functools.partial(
      codecs.DSACodec, model, train_frames=config.data.num_frames, rollout_temperature=rollout_temperature(config)
  )
  return Task("dsa", model, init_params, loss_fn, codec)


def single_stage(task: Task, train: ml_collections.ConfigDict) -> tuple[Stage, ...]:
  """The one stage of a model scheduled by config.train."""
  for name in SCHEDULE_FIELDS:
    if train[name] is None:
      raise ConfigError(f"config.train.{name} is not set; {task.name} needs it (e.g. --config.train.{name}=...).")
  return (Stage(None, task, train.num_steps, train.batch_size, train.learning_rate, "train", train.cooldown_steps),)


def dsa_stages(config: ml_collections.ConfigDict, image_shape, workdir: str) -> tuple[Stage, ...]:
  """DSA's single stage, scheduled by config.train."""
  del workdir
  return single_stage(dsa_task(config, image_shape), config.train)


def judge_model_config(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> judge.JudgeConfig:
  """The typed judge architecture from config.judge and the dataset's frame shape."""
  return judge.JudgeConfig(
      image_shape=tuple(image_shape), heads=tuple((name, int(classes)) for name, classes in config.judge.heads),
      channels=tuple(config.judge.channels), feature_size=config.judge.feature_size, lstm_size=config.judge.lstm_size,
      normalization=config.judge.get("normalization", "layer"), pooled_heads=tuple(config.judge.get("pooled_heads", ())),
      counted_heads=tuple(config.judge.get("counted_heads", ())), compute_dtype=config.train.get("compute_dtype", "float32"),
  )


def judge_task(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> Task:
  """A judge trained with labels: the mean cross-entropy of its heads."""
  model = judge.Judge(judge_model_config(config, image_shape))

  def init_params(key, videos):
    return model.init(key, data.to_unit_interval(videos))["params"]

  def loss_fn(params, batch, key, step):
    del key, step
    output = model.apply({"params": params}, data.to_unit_interval(batch[data.VIDEO_KEY]))
    return judge.cross_entropy(output, {name: batch[name] for name, _ in model.config.heads}, model.config.counted_heads)

  return Task("judge", model, init_params, loss_fn, codec=None)


def judge_stages(config: ml_collections.ConfigDict, image_shape, workdir: str) -> tuple[Stage, ...]:
  """The judge's single stage, scheduled by config.train."""
  del workdir
  return single_stage(judge_task(config, image_shape), config.train)


VDSM_STAGES = ("pretrain", "sequence")
# Stage 2 trains everything new plus the layers that parameterise s and z_t; frozen:
VDSM_FROZEN_IN_SEQUENCE = ("encoder", "decoder", "identity_head/hidden")


def vdsm_model_config(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> vdsm.VDSMConfig:
  """The typed VDSM architecture from config.vdsm and the dataset's frame shape."""
  fields = {name: value for name, value in config.vdsm.to_dict().items() if name != "group_size"}
  fields["encoder_channels"] = tuple(fields["encoder_channels"])
  fields["decoder_channels"] = tuple(fields["decoder_channels"])
  return vdsm.VDSMConfig(image_shape=tuple(image_shape), compute_dtype=config.train.get("compute_dtype", "float32"), **fields)


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


def restore_pretrained_params(workdir: str) -> Params:
  """The params of the latest pretraining checkpoint in workdir (a VDSM run or its `pretrain` folder)."""
  candidates = [os.path.join(workdir, "pretrain"), workdir]
  for directory in candidates:
    if not checkpointing.has_checkpoints(checkpointing.checkpoint_dir(directory)):
      continue
    checkpointer = checkpointing.Checkpointer(checkpointing.checkpoint_dir(directory), 1, read_only=True)
    if checkpointer.restore_metadata().get("stage") == "pretrain":
      return jax.tree.map(jax.numpy.asarray, checkpointer.restore_params())
  raise checkpointing.CheckpointError(
      f"No VDSM pretraining checkpoint in {' or '.join(candidates)}. Run config.stage=pretrain first, or set "
      "config.init_from to the workdir of a finished pretraining run."
  )


def vdsm_task(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int], stage: str, workdir: str) -> Task:
  """One VDSM stage ("pretrain" or "sequence") with its schedules and frozen parts."""
  model = vdsm.VDSM(vdsm_model_config(config, image_shape))
  stage_config = config.vdsm_pretrain if stage == "pretrain" else config.vdsm_sequence
  weights_at = schedules.pretrain_weights if stage == "pretrain" else schedules.sequence_weights
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

  codec_class = codecs.VDSMPoseCodec if stage == "pretrain" else codecs.VDSMCodec
  codec = functools.partial(
      codec_class, model, train_frames=config.data.num_frames, inverse_temperature=final_tau,
      rollout_temperature=rollout_temperature(config),
  )
  init_from = os.path.abspath(os.path.expanduser(config.init_from)) if config.init_from else workdir
  return Task(
      f"vdsm_{stage}", model, init_params, loss_fn, codec,
      group_size=config.vdsm.group_size if stage == "pretrain" else 1,
      trainable=functools.partial(vdsm_labels, stage=stage),
      load_params=functools.partial(restore_pretrained_params, init_from) if stage == "sequence" else None,
  )


def vdsm_stage(config: ml_collections.ConfigDict, image_shape, workdir: str, name: str) -> Stage:
  """The named VDSM stage, scheduled by config.vdsm_pretrain or config.vdsm_sequence."""
  section = "vdsm_pretrain" if name == "pretrain" else "vdsm_sequence"
  settings = config[section]
  return Stage(
      name, vdsm_task(config, image_shape, name, workdir), settings.num_epochs * settings.steps_per_epoch,
      settings.batch_size, settings.learning_rate, section,
  )


def vdsm_stages(config: ml_collections.ConfigDict, image_shape, workdir: str) -> tuple[Stage, ...]:
  """The VDSM stages config.stage asks for ("both": pretraining, then the sequence model)."""
  for name in SCHEDULE_FIELDS:
    if config.train[name] is not None:
      raise ConfigError(
          f"config.train.{name} does not apply to VDSM, which trains in stages: set "
          f"{schedule_field('vdsm_pretrain', name)} and {schedule_field('vdsm_sequence', name)} instead."
      )
  if config.train.cooldown_steps:
    raise ConfigError(
        "config.train.cooldown_steps does not apply to VDSM, whose stages follow the paper's schedules "
        "(config.vdsm_pretrain and config.vdsm_sequence): leave it at 0."
    )
  if config.stage == "both":
    names = VDSM_STAGES
  elif config.stage in VDSM_STAGES:
    names = (config.stage,)
  else:
    raise ConfigError(f"config.stage must be 'both' or one of {VDSM_STAGES}; got {config.stage!r}.")
  return tuple(vdsm_stage(config, image_shape, workdir, name) for name in names)


class Model(NamedTuple):
  """How the training loop and restore build a model's stages."""

  stage_names: tuple[str | None, ...]  # every stage, in training order
  stages: Callable[..., tuple[Stage, ...]]  # (config, image_shape, workdir) -> the stages config asks for
  task: Callable[..., Task]  # (config, image_shape, stage name, workdir) -> that stage's task


MODELS = {
    "dsa": Model((None,), dsa_stages, lambda config, image_shape, stage_name, workdir: dsa_task(config, image_shape)),
    "vdsm": Model(VDSM_STAGES, vdsm_stages, vdsm_task),
    "judge": Model((None,), judge_stages, lambda config, image_shape, stage_name, workdir: judge_task(config, image_shape)),
}


def model_entry(name: str) -> Model:
  """The registered model called name (config.model)."""
  if name not in MODELS:
    raise ConfigError(f"Unknown config.model {name!r}; choose one of {sorted(MODELS)}.")
  return MODELS[name]


def make_stages(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int], workdir: str) -> tuple[Stage, ...]:
  """The stages config.model trains, in order."""
  return model_entry(config.model).stages(config, tuple(image_shape), workdir)


def make_task(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int], stage_name: str | None, workdir: str) -> Task:
  """The task of one named stage of config.model (None for a single-stage model)."""
  return model_entry(config.model).task(config, tuple(image_shape), stage_name, workdir)
