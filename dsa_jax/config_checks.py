"""Range checks of a run's numeric config fields, before anything is written."""

import math

import ml_collections

from dsa_jax import selection
from dsa_jax.models import layers
from dsa_jax.tasks import ConfigError

AT_LEAST_ONE = (
    "data.num_frames", "train.log_every", "train.image_every", "train.checkpoint_every", "train.max_checkpoints",
    "train.num_steps", "train.batch_size", "sample.num_videos", "sample.num_evaluation_videos", "sample.num_frames",
    "data.image_size",
    "dsa.dim_f", "dsa.dim_z", "dsa.dim_h", "dsa.dim_hidden", "dsa.num_channels",
    "vdsm.dim_z", "vdsm.dim_s", "vdsm.dim_d", "vdsm.rnn_size", "vdsm.rnn_layers", "vdsm.combiner_size",
    "vdsm.transition_size", "vdsm.identity_hidden", "vdsm.group_size",
    "vdsm_pretrain.batch_size", "vdsm_pretrain.num_epochs", "vdsm_pretrain.steps_per_epoch",
    "vdsm_sequence.batch_size", "vdsm_sequence.num_epochs", "vdsm_sequence.steps_per_epoch",
    "judge.feature_size", "judge.lstm_size", "train.model_parallelism", "train.shard_min_elements",
)
POSITIVE = (
    "train.learning_rate", "train.grad_clip_norm", "vdsm_pretrain.learning_rate", "vdsm_sequence.learning_rate",
    "dsa.gaussian_scale",
)
AT_LEAST_ZERO = (
    "loss.beta_f", "loss.beta_z", "loss.kl_warmup_steps", "seed", "data.validation_videos", "sample.rollout_temperature"
)
AT_LEAST_ZERO_INTEGER = ("train.cooldown_steps",)
MINIMUM_SAMPLE_VIDEOS = 2  # a static source and a dynamics source
EVAL_FIELDS = {"type", "every_steps", "num_videos", "rounds", "judge"}


def _value(config: ml_collections.ConfigDict, dotted: str):
  section, field = dotted.split(".") if "." in dotted else (None, dotted)
  return config[field] if section is None else config[section][field]


def _bad(dotted: str, value, requirement: str) -> ConfigError:
  return ConfigError(f"config.{dotted}={value!r} is out of range: it must be {requirement}.")


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first numeric field out of its range (unset optional fields pass)."""
  for dotted, requirement, accepts in (
      *((name, "an integer of at least 1", lambda v: isinstance(v, int) and v >= 1) for name in AT_LEAST_ONE),
      *((name, "a finite number above 0", lambda v: math.isfinite(v) and v > 0) for name in POSITIVE),
      *((name, "a finite number of at least 0", lambda v: math.isfinite(v) and v >= 0) for name in AT_LEAST_ZERO),
      *((name, "an integer of at least 0", lambda v: isinstance(v, int) and v >= 0) for name in AT_LEAST_ZERO_INTEGER),
  ):
    value = _value(config, dotted)
    if value is not None and (isinstance(value, bool) or not accepts(value)):
      raise _bad(dotted, value, requirement)
  cooldown_steps, num_steps = config.train.cooldown_steps, config.train.num_steps
  if num_steps is not None and cooldown_steps > num_steps:
    raise _bad("train.cooldown_steps", cooldown_steps, f"at most config.train.num_steps={num_steps}")
  try:
    layers.compute_dtype(config.train.get("compute_dtype", "float32"))
  except ValueError as error:
    raise ConfigError(str(error)) from None
  validate_evals(config)
  if config.sample.num_videos < MINIMUM_SAMPLE_VIDEOS:
    raise _bad("sample.num_videos", config.sample.num_videos, f"at least {MINIMUM_SAMPLE_VIDEOS} (swaps need two videos)")
  if config.sample.num_evaluation_videos < MINIMUM_SAMPLE_VIDEOS:
    raise _bad(
        "sample.num_evaluation_videos", config.sample.num_evaluation_videos,
        f"at least {MINIMUM_SAMPLE_VIDEOS} (swaps need two videos)",
    )


def validate_evals(config: ml_collections.ConfigDict) -> None:
  """Refuses in-loop evaluators that cannot run (no validation split, off the checkpoint cadence), a bad select rule."""
  evals = config.get("evals", {})
  for name, options in evals.items():
    unknown = sorted(set(options) - EVAL_FIELDS)
    if unknown or not {"type", "every_steps", "num_videos"} <= set(options):
      raise ConfigError(
          f"config.evals.{name} has fields {sorted(options)}; it needs type, every_steps and num_videos "
          f"(optional: rounds, judge){f' and has unknown {unknown}' if unknown else ''}."
      )
    for field in ("every_steps", "num_videos", "rounds"):
      value = options.get(field, 1)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(f"evals.{name}.{field}", value, "an integer of at least 1")
    if options.every_steps % config.train.checkpoint_every:
      raise _bad(
          f"evals.{name}.every_steps", options.every_steps,
          f"a multiple of config.train.checkpoint_every={config.train.checkpoint_every} "
          "(the scored steps are checkpoints)",
      )
    if not config.data.validation_videos:
      raise ConfigError(
          f"config.evals.{name} scores the validation split, but config.data.validation_videos is 0; "
          "set it to hold out training videos, or remove the evaluator."
      )
  if evals:
    try:
      selection.rule(config.select, evals)
    except ValueError as error:
      raise ConfigError(str(error)) from None
