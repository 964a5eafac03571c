"""The one training loop for every model and stage.

`train_step(state, batch, key)` is jitted with the state donated over a ("data", "model") mesh
of all devices: the batch is split over "data"; the state is replicated, except that with
config.train.model_parallelism = M > 1 every leaf of at least config.train.shard_min_elements
elements is split over the M devices of "model" along its largest dimension M divides.
Randomness at a step is `fold_in(key, step)`, so a resumed run continues bit-identically.
"""

import contextlib
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state as flax_train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dsa_jax import (
    checkpointing, config_checks, data, distributed, metric_writer, runs, sample_files, selection, stopping, tasks, workdirs,
)
from dsa_jax.evaluation import evaluators

TrainState = flax_train_state.TrainState
DATA_AXIS, MODEL_AXIS = "data", "model"
SHARD_MIN_ELEMENTS = 1 << 18  # smaller leaves stay replicated: splitting them costs more in collectives than it saves
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


def make_mesh(devices: Sequence[jax.Device] | None = None, model_parallelism: int = 1) -> Mesh:
  """A ("data", "model") mesh over the given devices (default: all), model_parallelism of them along "model"."""
  devices = jax.devices() if devices is None else list(devices)
  if model_parallelism < 1 or len(devices) % model_parallelism:
    raise tasks.ConfigError(
        f"config.train.model_parallelism={model_parallelism} does not divide the {len(devices)} devices; "
        f"set it to a divisor of {len(devices)} (1: parameters replicated)."
    )
  grid = np.array(devices).reshape(len(devices) // model_parallelism, model_parallelism)
  return Mesh(grid, (DATA_AXIS, MODEL_AXIS))


def leaf_sharding(shape: tuple[int, ...], mesh: Mesh, min_elements: int = SHARD_MIN_ELEMENTS) -> NamedSharding:
  """A leaf's sharding: split along its largest dimension the "model" axis divides if it is large, else replicated."""
  parts = mesh.shape[MODEL_AXIS]
  if parts == 1 or math.prod(shape) < min_elements:
    return replicated(mesh)
  splittable = [axis for axis, size in enumerate(shape) if size % parts == 0]
  if not splittable:
    return replicated(mesh)
  axis = max(splittable, key=lambda a: (shape[a], a))
  return NamedSharding(mesh, PartitionSpec(*(MODEL_AXIS if a == axis else None for a in range(len(shape)))))


def state_shardings(abstract: Any, mesh: Mesh, min_elements: int = SHARD_MIN_ELEMENTS) -> Any:
  """leaf_sharding of every leaf of a (shape-only) train state: Adam's moments follow their parameters."""
  return jax.tree.map(lambda leaf: leaf_sharding(tuple(leaf.shape), mesh, min_elements), abstract)


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding that puts a full copy on every device of the mesh."""
  return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Splits this process's batch along its first axis over the mesh's data axis."""
  sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
  return {key: jax.make_array_from_process_local_data(sharding, value) for key, value in batch.items()}


def split_fraction(state: Any) -> float:
  """The fraction of a state's elements (arrays or their abstract shapes, with shardings) not replicated on every device."""
  leaves = jax.tree.leaves(state)
  return sum(leaf.size for leaf in leaves if not leaf.sharding.is_fully_replicated) / sum(leaf.size for leaf in leaves)


def describe_layout(abstract: Any, mesh: Mesh) -> str:
  """One line: the mesh's shape, and the fraction of the state's elements split over its model axis."""
  data_devices, model_devices = mesh.devices.shape
  return (
      f"Mesh of {mesh.size} devices: {data_devices} along data x {model_devices} along model; "
      f"{split_fraction(abstract):.1%} of the parameters and optimizer state split over the model axis."
  )


def make_optimizer(learning_rate: float, grad_clip_norm: float | None = None, trainable=None) -> optax.GradientTransformation:
  """Adam at learning_rate, after optional global-norm clipping.

  `trainable` (params -> "trained" / "frozen" labels) leaves frozen parameters unchanged
  and gives them no optimizer state.
  """
  adam = optax.adam(learning_rate)
  if grad_clip_norm is not None:
    adam = optax.chain(optax.clip_by_global_norm(grad_clip_norm), adam)
  if trainable is None:
    return adam
  return optax.multi_transform({"trained": adam, "frozen": optax.set_to_zero()}, trainable)


def create_train_state(task: tasks.Task, tx: optax.GradientTransformation, videos, key) -> TrainState:
  """Fresh parameters and optimizer state at step 0."""
  return state_from_params(task, tx, task.init_params(key, videos))


def state_from_params(task: tasks.Task, tx: optax.GradientTransformation, params) -> TrainState:
  """A step-0 train state around given parameters."""
  return TrainState.create(apply_fn=task.model.apply, params=params, tx=tx)


def train_step(state: TrainState, batch, key: jax.Array, *, loss_fn, learning_rate_scale=None) -> tuple[TrainState, dict]:
  """One optimizer step on `batch` with randomness fold_in(key, step), its update times learning_rate_scale(step); returns metrics."""
  step_key = jax.random.fold_in(key, state.step)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (_, metrics), grads = grad_fn(state.params, batch, step_key, state.step)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  if learning_rate_scale is not None:
    scale = learning_rate_scale(state.step)
    updates = jax.tree.map(lambda update: update * scale.astype(update.dtype), updates)
  state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates), opt_state=opt_state)
  metrics = {
      **metrics,
      "grad_norm": optax.global_norm(grads),
      "param_norm": optax.global_norm(state.params),
  }
  return state, metrics


def _on_cpu(mesh: Mesh) -> bool:
  return mesh.devices.flat[0].platform == "cpu"


def jit_state_init(init_fn: Callable[..., TrainState], mesh: Mesh, shardings: Any = None):
  """init_fn (create_train_state or state_from_params, partially applied) jitted to a state laid out as `shardings` (default replicated)."""
  options = CPU_INIT_COMPILER_OPTIONS if _on_cpu(mesh) else None
  return jax.jit(init_fn, out_shardings=replicated(mesh) if shardings is None else shardings, compiler_options=options)


def jit_train_step(loss_fn, mesh: Mesh, shardings: Any = None, learning_rate_scale=None):
  """train_step jitted with the state donated and kept as `shardings` (default replicated), and the CPU compiler options on CPU."""
  options = CPU_COMPILER_OPTIONS if _on_cpu(mesh) else None
  return jax.jit(
      functools.partial(train_step, loss_fn=loss_fn, learning_rate_scale=learning_rate_scale),
      donate_argnums=(0,),
      out_shardings=(replicated(mesh) if shardings is None else shardings, replicated(mesh)),
      compiler_options=options,
  )


def check_finite(records: list[tuple[int, dict[str, float]]], learning_rate_field: str = "config.train.learning_rate") -> None:
  """Raises NonFiniteLossError naming the first step and term that is NaN or Inf."""
  for step, metrics in records:
    bad = [name for name, value in metrics.items() if not np.isfinite(value)]
    if bad:
      terms = ", ".join(f"{name}={metrics[name]}" for name in bad)
      raise NonFiniteLossError(
          f"Non-finite values at step {step}: {terms}. No checkpoint after this step was written. "
          f"Lower {learning_rate_field} or set config.train.grad_clip_norm; rerunning the "
          "same command resumes from the last checkpoint."
      )


def abstract_state(task: tasks.Task, tx, video_shape: tuple[int, ...], mesh: Mesh, min_elements: int = SHARD_MIN_ELEMENTS) -> TrainState:
  """Shapes, dtypes and shardings (state_shardings) of the train state, without allocating it."""
  videos = jax.ShapeDtypeStruct((1, *video_shape), jnp.uint8)
  shapes = jax.eval_shape(lambda v: create_train_state(task, tx, v, jax.random.key(0)), videos)
  return jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=leaf_sharding(tuple(s.shape), mesh, min_elements)), shapes
  )


class _Window:
  """Metrics of the steps since the last log, kept on device until read."""

  def __init__(self, learning_rate_field: str):
    self.records: list[tuple[int, dict]] = []
    self.started = time.perf_counter()
    self._learning_rate_field = learning_rate_field

  def add(self, step: int, metrics: dict) -> None:
    self.records.append((step, metrics))

  def flush(self) -> tuple[dict[str, float], float]:
    """Checks every step for NaN/Inf; returns mean metrics and steps per second."""
    host = [(step, {k: float(v) for k, v in m.items()}) for step, m in jax.device_get(self.records)]
    check_finite(host, self._learning_rate_field)
    elapsed = time.perf_counter() - self.started
    steps_per_second = len(host) / max(elapsed, 1e-9)
    means = {name: float(np.mean([m[name] for _, m in host])) for name in host[0][1]} if host else {}
    self.records, self.started = [], time.perf_counter()
    return means, steps_per_second


class TrainingData(NamedTuple):
  """What every stage of a run reads: the training split, fixed test videos to show, and the validation evaluators."""

  train: Any
  config: ml_collections.ConfigDict  # config.data
  visual_videos: np.ndarray  # [N, T, H, W, C] float test videos for images and samples
  validation: list[evaluators.Scheduled]  # config.evals, built on the validation split
  chosen_by: selection.Rule | None  # config.select's rule, when config.evals runs its evaluator

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """[H, W, C] of the frames the model sees."""
    return tuple(self.visual_videos.shape[2:])


def load_training_data(config: ml_collections.ConfigDict) -> TrainingData:
  """The training split (built on first use), the test videos shown, and the validation evaluators of a run."""
  data_config, sample_config = config.data, config.sample
  train_source = data.load_source(data_config, "train")
  available_frames = train_source[0][data.VIDEO_KEY].shape[0]
  if data_config.num_frames > available_frames:
    raise data.DataError(
        f"config.data.num_frames={data_config.num_frames} but {data_config.name} clips have "
        f"{available_frames} frames; lower num_frames."
    )
  visual_videos = runs.load_videos(data_config, "test", sample_config.num_videos)
  validation = evaluators.validation_evaluators(config, sample_config.num_frames or data_config.num_frames)
  return TrainingData(train_source, data_config, visual_videos, validation, selection.rule(config.select, config.evals))


def batch_spec(dataset: TrainingData, task: tasks.Task, batch_size: int) -> data.BatchSpec:
  """The shape of the task's training batches."""
  config = dataset.config
  return data.BatchSpec(batch_size, config.num_frames, config.image_size, task.group_size, config.random_crop)


def check_batch_size(stage: tasks.Stage, mesh: Mesh) -> int:
  """The per-process batch size of a stage; the global one must split evenly over devices."""
  replicas = mesh.shape[DATA_AXIS]
  if stage.batch_size % replicas:
    field = stage.field("batch_size")
    raise tasks.ConfigError(
        f"{field}={stage.batch_size} does not split over {replicas} data-parallel devices; set {field} to a multiple of {replicas}."
    )
  return stage.batch_size // jax.process_count()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains config.model on config.data in workdir, stage by stage, resuming where it stopped."""
  config_checks.validate(config)
  workdir = workdirs.expand(workdir)
  mesh = make_mesh(model_parallelism=config.train.get("model_parallelism", 1))
  lock = workdirs.locked(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
  with lock:
    dataset = load_training_data(config)
    stages = tasks.make_stages(config, dataset.image_shape, workdir)
    for stage in stages:
      check_batch_size(stage, mesh)
    with stopping.on_sigterm() as stop_requested_at:
      steps_before = 0  # the run's step ids run on across stages, as the preemption sync point needs
      for index, stage in enumerate(stages):
        if stage.name is not None:
          print(f"Stage: {stage.name}")
        requests = []

        def stage_stop_requested_at(done: int, offset: int = steps_before) -> bool:
          requests.append(stop_requested_at(offset + done))
          return requests[-1]

        stage_dir = tasks.stage_dir(workdir, stage.name)
        try:
          state = train_stage(stage, config, dataset, stage_dir, mesh, stage_stop_requested_at)
        except Exception as error:  # also a save or close after the loop's own error, which would hide it
          if isinstance(error, distributed.DistributedError) or not distributed.is_peer_failure(error):
            raise
          raise distributed.peer_lost_error(f"while finishing the {stage.task.name} stage", error) from error
        if any(requests) and index + 1 < len(stages):  # the request came at the stage's last step
          raise stopping.TrainingStopped(
              f"Stopped by SIGTERM at the end of the {stage.task.name} stage; its checkpoint is in "
              f"{checkpointing.checkpoint_dir(stage_dir)}. Rerun the same command to resume with the next stage."
          )
        steps_before += stage.num_steps
  return state


def _resume(checkpointer: checkpointing.Checkpointer, config, metadata, abstract) -> tuple[int, TrainState]:
  """The newest intact checkpoint's step and state; damaged newer ones are moved aside, never deleted."""
  step = checkpointer.intact_step()
  for damaged in [s for s in checkpointer.all_steps() if s > step]:
    print(f"Moved the damaged checkpoint of step {damaged} to {checkpointer.set_aside(damaged)}.")
  workdirs.check_resumable(
      checkpointer.restore_config(step), checkpointer.restore_metadata(step), config, metadata, checkpointer.directory
  )
  return step, checkpointer.restore_state(abstract, step)


def train_stage(
    stage: tasks.Stage, config: ml_collections.ConfigDict, dataset: TrainingData, workdir: str, mesh: Mesh,
    stop_requested_at: Callable[[int], bool] = stopping.never,
) -> TrainState:
  """Trains one stage in workdir, resuming from its newest intact checkpoint; writes samples at the end."""
  task, train_config = stage.task, config.train
  local_batch_size = check_batch_size(stage, mesh)
  tx = make_optimizer(stage.learning_rate, train_config.grad_clip_norm, task.trainable)
  init_key, train_key, visual_key, evaluation_key = runs.run_keys(config.seed)
  video_shape = (dataset.config.num_frames, *dataset.image_shape)
  metadata = {"image_shape": list(dataset.image_shape), "stage": stage.name}
  selected = selection.read(workdir) if dataset.chosen_by is not None else None
  checkpointer = checkpointing.Checkpointer(
      checkpointing.checkpoint_dir(workdir), train_config.checkpoint_every, train_config.max_checkpoints,
      selected_step=None if selected is None else selected["step"],
  )
  identities = data.identity_labels(dataset.train, dataset.config.name) if task.group_size > 1 else None
  abstract = abstract_state(task, tx, video_shape, mesh, train_config.get("shard_min_elements", SHARD_MIN_ELEMENTS))
  shardings = jax.tree.map(lambda leaf: leaf.sharding, abstract)
  if mesh.size > 1:
    print(describe_layout(abstract, mesh))
  if checkpointer.latest_step() is None:
    start_step = 0
    if task.load_params is None:
      first = data.batch_at_step(dataset.train, batch_spec(dataset, task, stage.batch_size), config.seed, 0, identities)
      state = jit_state_init(functools.partial(create_train_state, task, tx), mesh, shardings)(first[data.VIDEO_KEY], init_key)
    else:
      state = jit_state_init(functools.partial(state_from_params, task, tx), mesh, shardings)(task.load_params())
  else:
    start_step, state = _resume(checkpointer, config, metadata, abstract)
    print(f"Resuming from the checkpoint at step {start_step} in {checkpointer.directory}.")

  spec = batch_spec(dataset, task, local_batch_size)
  batches = data.BatchIterator(
      dataset.train, spec, config.seed, start_step=start_step, identities=identities,
      process_index=jax.process_index(), process_count=jax.process_count(),
  )
  horizon = config.sample.num_frames or dataset.config.num_frames
  writer = metric_writer.MetricWriter(workdir, task.name, stage.num_steps, start_step)
  step_fn = jit_train_step(task.loss_fn, mesh, shardings, stage.learning_rate_scale)
  window = _Window(stage.field("learning_rate"))
  wall_offset = metric_writer.wall_seconds_by_step(workdir).get(start_step, 0.0) if start_step else 0.0
  wall_started = time.perf_counter()
  try:
    for step in range(start_step, stage.num_steps):
      host_batch = next(batches)
      data.check_video_batch(host_batch[data.VIDEO_KEY], spec.num_frames * spec.group_size, dataset.image_shape)
      batch = shard_batch(host_batch, mesh)
      if step == start_step:
        compile_started = time.perf_counter()
        state, metrics = step_fn(state, batch, train_key)
        jax.block_until_ready(metrics)
        writer.print(f"First step (compilation included) took {time.perf_counter() - compile_started:.1f} s.")
        window.started = time.perf_counter()
      else:
        state, metrics = step_fn(state, batch, train_key)
      window.add(step, metrics)
      done = step + 1
      writer.advance()
      is_last = done == stage.num_steps
      stop_requested = stop_requested_at(done)
      checkpoint_due = done % train_config.checkpoint_every == 0 or is_last or stop_requested
      scores = {}
      if done % train_config.log_every == 0 or checkpoint_due:
        means, steps_per_second = window.flush()
        if checkpoint_due and any(item.due(done, is_last) for item in dataset.validation):
          codec = task.codec(distributed.on_this_process(state.params))
          scores = evaluators.run_scheduled(dataset.validation, codec, evaluation_key, done, is_last)
        wall_seconds = wall_offset + time.perf_counter() - wall_started
        writer.write_scalars(
            done, {**means, "learning_rate": stage.learning_rate_at(step)}, steps_per_second, wall_seconds,
            evaluators.flat(scores),
        )
        window.started = time.perf_counter()
      if task.codec is not None and (done % train_config.image_every == 0 or is_last):
        params = distributed.on_this_process(state.params)
        if jax.process_index() == 0:
          pictures = sample_files.summary_pictures(task.codec(params), dataset.visual_videos, visual_key, horizon)
          writer.write_pictures(done, pictures)
      chosen_by = dataset.chosen_by
      chooses = chosen_by is not None and chosen_by.evaluator in scores
      if chooses:
        checkpointer.select(selection.choose(workdir, chosen_by, done, scores[chosen_by.evaluator]))
      if checkpoint_due:
        checkpointer.save(done, state, config, metadata, force=is_last or stop_requested)
      if chooses:
        checkpointer.wait()  # selection.json never names a step whose checkpoint is not on disk
        if jax.process_index() == 0:
          selection.update(workdir, chosen_by, done, scores[chosen_by.evaluator])
      if stop_requested and not is_last:
        raise stopping.TrainingStopped(
            f"Stopped by SIGTERM after step {done} of {stage.num_steps}; its checkpoint is in {checkpointer.directory}. "
            "Rerun the same command to resume."
        )
  except Exception as error:  # a lost process surfaces as whichever error the collective it broke raises
    if distributed.is_peer_failure(error):
      raise distributed.peer_lost_error(f"at step {step}", error) from error
    raise
  finally:
    batches.close()
    writer.close()
    checkpointer.close()
  final_step = int(jax.device_get(state.step))
  params = distributed.on_this_process(state.params) if task.codec is not None else None
  if task.codec is not None and jax.process_index() == 0:
    paths, end_scores = evaluators.end_of_run(
        task.codec(params), config, dataset.visual_videos, visual_key, runs.sample_dir(workdir, final_step)
    )
    if end_scores:
      print("Evaluation: " + ", ".join(f"{name}={value:.3g}" if value is not None else f"{name}=n/a" for name, value in end_scores.items()))
    print(f"Wrote samples: {', '.join(paths)}")
  return state
