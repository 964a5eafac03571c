"""A trained run read back from its workdir (`restore`)."""

import os
import sys
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np

from dsa_jax import checkpointing, codecs, data, tasks, workdirs

DENSITY_VIDEOS = 512  # experiments/base.py's config.sample.num_density_videos, for runs saved before it existed


class Run(NamedTuple):
  """A trained run's config, parameters (no optimizer state), bound codec and checkpoint step."""

  config: ml_collections.ConfigDict
  params: Any
  codec: codecs.Codec | None  # None for a model without latent codes (a judge)
  step: int
  stage: str | None  # the stage the checkpoint belongs to (VDSM "pretrain" / "sequence"); None: one stage
  directory: str  # the stage's folder: checkpoints, samples
  image_shape: tuple[int, int, int]  # [H, W, C] of the frames it was trained on


def _stage_folders(workdir: str) -> list[tuple[str | None, str]]:
  """(stage name, folder) of every stage a workdir may hold, latest stage first, then the workdir itself."""
  names = dict.fromkeys(
      name for model in tasks.MODELS.values() for name in reversed(model.stage_names) if name is not None
  )
  return [(name, os.path.join(workdir, name)) for name in names] + [(None, workdir)]


def run_dir(workdir: str) -> str:
  """The folder of a workdir's latest stage that holds a checkpoint (the workdir itself for one stage)."""
  workdir = workdirs.expand(workdir)
  skipped = []
  for name, folder in _stage_folders(workdir):
    if checkpointing.has_checkpoints(checkpointing.checkpoint_dir(folder)):
      if skipped:
        print(f"The {' and '.join(skipped)} stage of {workdir} has no checkpoint yet; using its {name} stage.", file=sys.stderr)
      return folder
    if name is not None and os.path.isdir(folder):
      skipped.append(name)
  raise checkpointing.CheckpointError(
      f"No checkpoint in {workdir} (nor in its stage folders). Train first, or point --workdir at a run."
  )


def restore(workdir: str, step: int | None = None, **data_overrides) -> Run:
  """A run's config, params and codec from its newest intact checkpoint (or `step`).

  For a staged model the latest stage with a checkpoint is read (pass WORKDIR/<stage> for
  another). data_overrides replace config.data fields, e.g. data_dir or manual_dir of this machine.
  """
  directory = run_dir(workdir)
  checkpointer = checkpointing.Checkpointer(checkpointing.checkpoint_dir(directory), save_every=1, read_only=True)
  try:
    step = checkpointer.intact_step(step)
    config = checkpointer.restore_config(step)
    metadata = checkpointer.restore_metadata(step)
    unknown = sorted(set(data_overrides) - set(config.data))
    if unknown:
      raise TypeError(f"restore() got data fields {unknown} that config.data does not have; it has {sorted(config.data)}.")
    for name, value in data_overrides.items():
      config.data[name] = value
    stage, image_shape = metadata.get("stage"), tuple(metadata["image_shape"])
    task = tasks.make_task(config, image_shape, stage, os.path.dirname(directory) if stage is not None else directory)
    params = checkpointer.restore_params(step, _abstract_params(task, (config.data.num_frames, *image_shape)))
  finally:
    checkpointer.close()
  codec = task.codec(params) if task.codec is not None else None
  return Run(config, params, codec, int(step), stage, directory, image_shape)


def _abstract_params(task: tasks.Task, video_shape: tuple[int, ...]) -> Any:
  """Shapes and dtypes of a task's params on this process's first device, without allocating them."""
  videos = jax.ShapeDtypeStruct((1, *video_shape), jax.numpy.uint8)
  shapes = jax.eval_shape(task.init_params, jax.random.key(0), videos)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device), shapes)


def load_videos(data_config: ml_collections.ConfigDict, split: str, count: int) -> np.ndarray:
  """The first `count` videos of a split as floats in [0, 1], at the config's length and size."""
  source = data.load_source(data_config, split)
  batch = data.first_examples(source, count, data_config.num_frames, data_config.image_size)
  return np.asarray(data.to_unit_interval(batch[data.VIDEO_KEY]))


def run_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """A run's parameter-init, training, sample and validation-evaluation keys, all from config.seed."""
  root_key = jax.random.key(seed)
  init_key, train_key, sample_key, evaluation_key = (jax.random.fold_in(root_key, i) for i in range(4))
  return init_key, train_key, sample_key, evaluation_key


def sample_dir(directory: str, step: int) -> str:
  """Where the sample files of a checkpoint step are written."""
  return os.path.join(directory, "samples", f"step_{step}")
