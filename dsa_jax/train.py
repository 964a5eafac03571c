"""The one training loop for every model and stage, and restoring a run for sampling.

`train_step(state, batch, key)` is jitted with the state donated; the batch is sharded over
a one-axis "data" mesh of all devices and the state is replicated. Randomness at a step is
`fold_in(key, step)`, so a resumed run continues bit-identically.
"""

import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tensorboardX
import tqdm
from flax.training import train_state as flax_train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dsa_jax import checkpointing, data, tasks, visualize

TrainState = flax_train_state.TrainState
DATA_AXIS = "data"
# Config fields that fix the parameters' shapes (and the model's section): resume needs the same.
STRUCTURAL_FIELDS = ("model", "data.image_size")
METRICS_FILE = "metrics.jsonl"
# XLA:CPU lowers convolutions to YNNPACK by default; its weight gradients of the VDSM encoder
# run 2-3x slower than Eigen's. Keep YNNPACK for dots and reductions only.
CPU_COMPILER_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
}
# State init runs once, yet its dozens of random initialisers compiled slower than the step
# (VDSM :quick: 8.9 s, step 6.2 s); unoptimised by LLVM: 3.5 s, values within an ulp.
CPU_INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


class NonFiniteLossError(FloatingPointError):
  """A loss term or gradient norm became NaN or Inf."""


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A one-axis "data" mesh over the given devices (default: all)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding that puts a full copy on every device of the mesh."""
  return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Splits this process's batch along its first axis over the mesh's data axis."""
  sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
  return {key: jax.make_array_from_process_local_data(sharding, value) for key, value in batch.items()}


def make_optimizer(train_config: ml_collections.ConfigDict, trainable=None) -> optax.GradientTransformation:
  """Adam with the configured learning rate, after optional global-norm clipping.

  `trainable` (params -> "trained" / "frozen" labels) leaves frozen parameters unchanged
  and gives them no optimizer state.
  """
  adam = optax.adam(train_config.learning_rate)
  if train_config.grad_clip_norm is not None:
    adam = optax.chain(optax.clip_by_global_norm(train_config.grad_clip_norm), adam)
  if trainable is None:
    return adam
  return optax.multi_transform({"trained": adam, "frozen": optax.set_to_zero()}, trainable)


def create_train_state(task: tasks.Task, tx: optax.GradientTransformation, videos, key) -> TrainState:
  """Fresh parameters and optimizer state at step 0."""
  return state_from_params(task, tx, task.init_params(key, videos))


def state_from_params(task: tasks.Task, tx: optax.GradientTransformation, params) -> TrainState:
  """A step-0 train state around given parameters."""
  return TrainState.create(apply_fn=task.model.apply, params=params, tx=tx)


def train_step(state: TrainState, batch, key: jax.Array, *, loss_fn) -> tuple[TrainState, dict]:
  """One optimizer step on `batch` with randomness fold_in(key, step); returns metrics."""
  step_key = jax.random.fold_in(key, state.step)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (_, metrics), grads = grad_fn(state.params, batch, step_key, state.step)
  state = state.apply_gradients(grads=grads)
  metrics = {
      **metrics,
      "grad_norm": optax.global_norm(grads),
      "param_norm": optax.global_norm(state.params),
  }
  return state, metrics


def _on_cpu(mesh: Mesh) -> bool:
  return mesh.devices.flat[0].platform == "cpu"


def jit_state_init(init_fn: Callable[..., TrainState], mesh: Mesh):
  """init_fn (create_train_state or state_from_params, partially applied) jitted to a replicated state."""
  options = CPU_INIT_COMPILER_OPTIONS if _on_cpu(mesh) else None
  return jax.jit(init_fn, out_shardings=replicated(mesh), compiler_options=options)


def jit_train_step(loss_fn, mesh: Mesh):
  """train_step jitted with the state donated and replicated, and the CPU compiler options on CPU."""
  options = CPU_COMPILER_OPTIONS if _on_cpu(mesh) else None
  return jax.jit(
      functools.partial(train_step, loss_fn=loss_fn),
      donate_argnums=(0,),
      out_shardings=(replicated(mesh), replicated(mesh)),
      compiler_options=options,
  )


def check_finite(records: list[tuple[int, dict[str, float]]]) -> None:
  """Raises NonFiniteLossError naming the first step and term that is NaN or Inf."""
  for step, metrics in records:
    bad = [name for name, value in metrics.items() if not np.isfinite(value)]
    if bad:
      terms = ", ".join(f"{name}={metrics[name]}" for name in bad)
      raise NonFiniteLossError(
          f"Non-finite values at step {step}: {terms}. No checkpoint after this step was written. "
          "Lower config.train.learning_rate or set config.train.grad_clip_norm; rerunning the "
          "same command resumes from the last checkpoint."
      )


def flat_fields(config: Any, prefix: str) -> dict[str, Any]:
  """The leaves of a config section as {"section.field": value}."""
  if not isinstance(config, ml_collections.ConfigDict):
    return {prefix: config}
  flat = {}
  for name, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      flat.update(flat_fields(value, f"{prefix}.{name}"))
    else:
      flat[f"{prefix}.{name}"] = list(value) if isinstance(value, tuple) else value  # as saved in JSON
  return flat


def check_resumable(saved: ml_collections.ConfigDict, config: ml_collections.ConfigDict, directory: str) -> None:
  """Raises CheckpointError naming every model field where the checkpoint differs from the config."""
  before, after = {}, {}
  for path in (*STRUCTURAL_FIELDS, config.model):
    before.update(flat_fields(dotted_get(saved, path), path))
    after.update(flat_fields(dotted_get(config, path), path))
  changes = [
      f"{name}: {before.get(name, '<absent>')} -> {after.get(name, '<absent>')}"
      for name in sorted(set(before) | set(after))
      if before.get(name) != after.get(name)
  ]
  if changes:
    raise checkpointing.CheckpointError(
        f"The checkpoints in {directory} were written with a different model config "
        f"({'; '.join(changes)}). Use a new --workdir to train this config."
    )


def dotted_get(config: ml_collections.ConfigDict, path: str) -> Any:
  """config["a"]["b"] for path "a.b"; None where a part is absent."""
  for part in path.split("."):
    if not isinstance(config, ml_collections.ConfigDict) or part not in config:
      return None
    config = config[part]
  return config


def abstract_state(task: tasks.Task, tx, video_shape: tuple[int, ...], sharding) -> TrainState:
  """Shapes, dtypes and shardings of the train state, without allocating it."""
  videos = jax.ShapeDtypeStruct((1, *video_shape), jnp.uint8)
  shapes = jax.eval_shape(lambda v: create_train_state(task, tx, v, jax.random.key(0)), videos)
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


class _Window:
  """Metrics of the steps since the last log, kept on device until read."""

  def __init__(self):
    self.records: list[tuple[int, dict]] = []
    self.started = time.perf_counter()

  def add(self, step: int, metrics: dict) -> None:
    self.records.append((step, metrics))

  def flush(self) -> tuple[dict[str, float], float]:
    """Checks every step for NaN/Inf; returns mean metrics and steps per second."""
    host = [(step, {k: float(v) for k, v in m.items()}) for step, m in jax.device_get(self.records)]
    check_finite(host)
    elapsed = time.perf_counter() - self.started
    steps_per_second = len(host) / max(elapsed, 1e-9)
    means = {name: float(np.mean([m[name] for _, m in host])) for name in host[0][1]} if host else {}
    self.records, self.started = [], time.perf_counter()
    return means, steps_per_second


def append_metrics(path: str, step: int, metrics: dict[str, float]) -> None:
  """Appends one JSON line {"step": ..., **metrics} to path."""
  with open(path, "a") as file:
    file.write(json.dumps({"step": step, **metrics}) + "\n")


def read_metrics(workdir: str) -> dict[int, dict[str, float]]:
  """The logged metrics of a run by step (a step logged twice, around a crash, keeps the last)."""
  with open(os.path.join(workdir, METRICS_FILE)) as file:
    rows = [json.loads(line) for line in file if line.strip()]
  return {row.pop("step"): row for row in rows}


def _format_duration(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def _log_line(step: int, num_steps: int, means: dict[str, float], steps_per_second: float) -> str:
  eta = (num_steps - step) / max(steps_per_second, 1e-9)
  terms = " ".join(f"{name}={value:.4g}" for name, value in means.items())
  return f"step {step}/{num_steps} | {terms} | {steps_per_second:.2f} steps/s | ETA {_format_duration(eta)}"


class _Data(NamedTuple):
  train: Any
  video_shape: tuple[int, ...]  # [T, H, W, C] of the training clips
  visual_videos: np.ndarray  # [N, T, H, W, C] float test videos for images and samples
  evaluation_videos: np.ndarray  # [M, T, H, W, C] float test videos scored at the end


def _load_data(config: ml_collections.ConfigDict) -> _Data:
  train_source = data.load_source(config.data, "train")
  available_frames = train_source[0][data.VIDEO_KEY].shape[0]
  if config.data.num_frames > available_frames:
    raise data.DataError(
        f"config.data.num_frames={config.data.num_frames} but {config.data.name} clips have "
        f"{available_frames} frames; lower num_frames."
    )
  count = max(config.sample.num_videos, config.sample.num_evaluation_videos)
  test_videos = tasks.load_videos(config.data, "test", count)
  return _Data(
      train_source,
      test_videos.shape[1:],
      test_videos[: config.sample.num_videos],
      test_videos[: config.sample.num_evaluation_videos],
  )


def batch_spec(config: ml_collections.ConfigDict, task: tasks.Task, batch_size: int) -> data.BatchSpec:
  """The shape of the task's training batches."""
  return data.BatchSpec(
      batch_size, config.data.num_frames, config.data.image_size, task.group_size, config.data.random_crop
  )


def _check_batch_size(batch_size: int, mesh: Mesh) -> int:
  """The per-process batch size; the global one must split evenly over devices."""
  if batch_size % mesh.size:
    raise ValueError(
        f"config.train.batch_size={batch_size} does not split over {mesh.size} devices; "
        f"use a multiple of {mesh.size}."
    )
  return batch_size // jax.process_count()


def stages(config: ml_collections.ConfigDict) -> tuple[str | None, ...]:
  """The training stages config.stage asks for (None: the model has a single stage)."""
  if config.model != "vdsm":
    return (None,)
  if config.stage == "both":
    return tasks.VDSM_STAGES
  if config.stage not in tasks.VDSM_STAGES:
    raise ValueError(f"config.stage must be 'both' or one of {tasks.VDSM_STAGES}; got {config.stage!r}.")
  return (config.stage,)


def stage_config(config: ml_collections.ConfigDict, stage: str | None, workdir: str) -> ml_collections.ConfigDict:
  """config for one stage: its train.num_steps / batch_size / learning_rate, and where stage 2 starts from."""
  if stage is None:
    return config
  staged = ml_collections.ConfigDict(config.to_dict())
  settings = staged.vdsm_pretrain if stage == "pretrain" else staged.vdsm_sequence
  staged.stage = stage
  staged.train.num_steps = settings.num_epochs * settings.steps_per_epoch
  staged.train.batch_size = settings.batch_size
  staged.train.learning_rate = settings.learning_rate
  if stage == "sequence" and staged.init_from is None:
    staged.init_from = workdir
  staged.lock()
  return staged


def stage_dir(workdir: str, stage: str | None) -> str:
  """Where a stage keeps its checkpoints, metrics, TensorBoard files and samples."""
  return workdir if stage is None else os.path.join(workdir, stage)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains config.model on config.data in workdir, stage by stage, resuming where it stopped."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  state = None
  for stage in stages(config):
    if stage is not None:
      print(f"VDSM stage: {stage}")
    state = train_stage(stage_config(config, stage, workdir), stage_dir(workdir, stage))
  return state


def write_summary_images(writer: tensorboardX.SummaryWriter, pictures: dict[str, np.ndarray], step: int) -> None:
  """Writes [H, W, 3] images under images/ and [T, H, W, 3] videos as animated GIFs under videos/."""
  for name, picture in pictures.items():
    if picture.ndim == 4:
      writer._get_file_writer().add_summary(visualize.gif_summary(f"videos/{name}", picture), step)  # add_video needs moviepy
    else:
      writer.add_image(f"images/{name}", picture, step, dataformats="HWC")


def train_stage(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains one stage in workdir, resuming from its latest checkpoint; writes samples at the end."""
  os.makedirs(workdir, exist_ok=True)
  mesh = make_mesh()
  local_batch_size = _check_batch_size(config.train.batch_size, mesh)
  dataset = _load_data(config)
  image_shape = dataset.video_shape[1:]
  task = tasks.make_task(config, image_shape)
  tx = make_optimizer(config.train, task.trainable)
  root_key = jax.random.key(config.seed)
  init_key, train_key, visual_key = (jax.random.fold_in(root_key, i) for i in range(3))

  checkpointer = checkpointing.Checkpointer(
      checkpointing.checkpoint_dir(workdir), config.train.checkpoint_every, config.train.max_checkpoints
  )
  start_step = checkpointer.latest_step()
  identities = data.identity_labels(dataset.train, config.data.name) if task.group_size > 1 else None
  if start_step is None:
    start_step = 0
    first = data.batch_at_step(dataset.train, batch_spec(config, task, config.train.batch_size), config.seed, 0, identities)
    if task.load_params is None:
      state = jit_state_init(functools.partial(create_train_state, task, tx), mesh)(first[data.VIDEO_KEY], init_key)
    else:
      state = jit_state_init(functools.partial(state_from_params, task, tx), mesh)(task.load_params())
  else:
    check_resumable(checkpointer.restore_config(start_step), config, checkpointer.directory)
    state = checkpointer.restore_state(abstract_state(task, tx, dataset.video_shape, replicated(mesh)))
    print(f"Resuming from the checkpoint at step {start_step} in {checkpointer.directory}.")
  metadata = {"image_shape": list(image_shape)}

  num_steps = config.train.num_steps
  spec = batch_spec(config, task, local_batch_size)
  batches = data.BatchIterator(
      dataset.train, spec, config.seed, start_step=start_step, identities=identities,
      process_index=jax.process_index(), process_count=jax.process_count(),
  )
  writer = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"))
  step_fn = jit_train_step(task.loss_fn, mesh)
  bar = tqdm.tqdm(total=num_steps, initial=start_step, unit="step", desc=task.name, file=sys.stderr)
  window = _Window()
  try:
    for step in range(start_step, num_steps):
      host_batch = next(batches)
      data.check_video_batch(host_batch[data.VIDEO_KEY], spec.num_frames * spec.group_size, image_shape)
      batch = shard_batch(host_batch, mesh)
      if step == start_step:
        compile_started = time.perf_counter()
        state, metrics = step_fn(state, batch, train_key)
        jax.block_until_ready(metrics)
        bar.write(f"First step (compilation included) took {time.perf_counter() - compile_started:.1f} s.")
        window.started = time.perf_counter()
      else:
        state, metrics = step_fn(state, batch, train_key)
      window.add(step, metrics)
      done = step + 1
      bar.update(1)
      is_last = done == num_steps
      checkpoint_due = done % config.train.checkpoint_every == 0 or is_last
      if done % config.train.log_every == 0 or checkpoint_due:
        means, steps_per_second = window.flush()
        for name, value in means.items():
          writer.add_scalar(f"train/{name}", value, done)
        writer.add_scalar("train/steps_per_second", steps_per_second, done)
        writer.add_scalar("train/learning_rate", config.train.learning_rate, done)
        append_metrics(os.path.join(workdir, METRICS_FILE), done, {**means, "steps_per_second": steps_per_second})
        bar.set_postfix({k: f"{means[k]:.4g}" for k in ("loss", "kl_f", "kl_z") if k in means})
        bar.write(_log_line(done, num_steps, means, steps_per_second))
      if done % config.train.image_every == 0 or is_last:
        write_summary_images(writer, task.summary_images(state.params, dataset.visual_videos, visual_key), done)
      if checkpoint_due:
        checkpointer.save(done, state, config, metadata, force=is_last)
  finally:
    bar.close()
    batches.close()
    writer.close()
    checkpointer.close()
  final_step = int(jax.device_get(state.step))
  paths, scores = tasks.write_results(
      task, state.params, dataset.visual_videos, dataset.evaluation_videos, visual_key,
      tasks.sample_dir(workdir, final_step),
  )
  if scores:
    print("Evaluation: " + ", ".join(f"{name}={value:.3g}" for name, value in scores.items()))
  print(f"Wrote samples: {', '.join(paths)}")
  return state


class RestoredRun(NamedTuple):
  """A trained run read back from its workdir."""

  config: ml_collections.ConfigDict
  task: tasks.Task
  params: Any
  step: int


def run_dir(workdir: str) -> str:
  """workdir, or for a multi-stage run its latest stage's folder that holds checkpoints."""
  for stage in reversed(tasks.VDSM_STAGES):
    directory = os.path.join(workdir, stage)
    if not os.path.isdir(checkpointing.checkpoint_dir(workdir)) and os.path.isdir(checkpointing.checkpoint_dir(directory)):
      return directory
  return workdir


def restore_run(workdir: str, step: int | None = None) -> RestoredRun:
  """The config, task (with its model) and params of a workdir's checkpoint (default latest).

  For a VDSM run trained with stage "both", the latest stage's checkpoint is read.
  """
  workdir = run_dir(os.path.abspath(os.path.expanduser(workdir)))
  checkpointer = checkpointing.Checkpointer(
      checkpointing.checkpoint_dir(workdir), save_every=1, read_only=True
  )
  step = checkpointer.latest_step() if step is None else step
  config = checkpointer.restore_config(step)
  metadata = checkpointer.restore_metadata(step)
  task = tasks.make_task(config, tuple(metadata["image_shape"]))
  video_shape = (config.data.num_frames, *metadata["image_shape"])
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  tx = make_optimizer(config.train, task.trainable)
  state = checkpointer.restore_state(abstract_state(task, tx, video_shape, sharding), step)
  checkpointer.close()
  return RestoredRun(config, task, state.params, int(step))
