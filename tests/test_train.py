"""The training loop end to end: checkpoints, exact resume, kill -9, NaN guard, sharding."""

import dataclasses
import functools
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import pytest
from tensorboardX.proto import event_pb2

import dsa_jax
from dsa_jax import checkpointing, metric_writer, runs, schedules, tasks, train
from experiments import vdsm_pendulum, vdsm_sprites
from tests.conftest import REPO, pendulum_config, subprocess_env

TINY_OVERRIDES = {
    "data.num_frames": 4,
    "dsa.dim_f": 7,
    "dsa.dim_z": 5,
    "dsa.dim_h": 11,
    "dsa.dim_hidden": 13,
    "dsa.num_channels": 3,
    "train.batch_size": 4,
    "train.num_steps": 6,
    "train.learning_rate": 1e-3,
    "train.log_every": 2,
    "train.image_every": 3,
    "train.checkpoint_every": 2,
    "sample.num_videos": 4,
}


SAMPLE_FILES = sorted(
    f"{name}.{kind}" for name in ("reconstructions", "swap", "swap_grid", "generation", "continuation") for kind in ("png", "gif")
)


def tiny_config(data_dir: str, **overrides):
  config = pendulum_config(data_dir)
  for dotted, value in {**TINY_OVERRIDES, **overrides}.items():
    section, field = dotted.split(".")
    config[section][field] = value
  return config


def leaves_equal(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def tensorboard_events(directory: str) -> list:
  """Every complete event record of a TensorBoard directory's event files (a torn last record is dropped)."""
  events = []
  for name in sorted(os.listdir(directory)):
    with open(os.path.join(directory, name), "rb") as file:
      content = file.read()
    offset = 0
    while offset + 12 <= len(content):
      (length,) = struct.unpack("<Q", content[offset : offset + 8])
      if offset + 12 + length + 4 > len(content):
        break
      events.append(event_pb2.Event.FromString(content[offset + 12 : offset + 12 + length]))
      offset += 12 + length + 4  # length, its CRC, the record, its CRC
  return events


def tensorboard_images(directory: str) -> dict[str, list[tuple[int, bytes]]]:
  """{tag: [(step, encoded image)]} of the image summaries in a TensorBoard directory's event files."""
  images = {}
  for event in tensorboard_events(directory):
    for value in event.summary.value:
      if value.HasField("image"):
        images.setdefault(value.tag, []).append((event.step, value.image.encoded_image_string))
  return images


def tensorboard_scalar_steps(directory: str, tag: str) -> list[int]:
  """The steps at which a TensorBoard directory holds the scalar `tag`."""
  return sorted(
      event.step for event in tensorboard_events(directory) for value in event.summary.value if value.tag == tag
  )


def test_run_writes_checkpoints_summaries_metrics_and_samples(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  state = train.train_and_evaluate(tiny_config(data_dir), workdir)
  assert int(state.step) == 6
  checkpointer = checkpointing.Checkpointer(checkpointing.checkpoint_dir(workdir), 1, read_only=True)
  assert checkpointer.all_steps() == [2, 4, 6]
  assert checkpointer.restore_config().dsa.dim_z == 5
  assert checkpointer.restore_metadata()["image_shape"] == [64, 64, 3]
  images = tensorboard_images(os.path.join(workdir, "tensorboard"))
  assert sorted(images) == [
      "images/generation", "images/reconstructions", "videos/generation_videos", "videos/reconstruction_videos"]
  steps, gif = images["videos/reconstruction_videos"][-1]
  assert steps == 6 and gif.startswith(b"GIF89a")
  assert PIL.Image.open(io.BytesIO(gif)).n_frames == 4  # data.num_frames
  metrics = metric_writer.read_metrics(workdir)
  assert sorted(metrics) == [2, 4, 6]
  assert {"loss", "elbo", "reconstruction", "kl_f", "kl_z", "grad_norm", "param_norm", "learning_rate"} <= set(metrics[6])
  samples = os.listdir(runs.sample_dir(workdir, 6))
  assert sorted(samples) == sorted(["evaluation.json", *SAMPLE_FILES])

  restored = dsa_jax.restore(workdir)
  assert restored.step == 6 and restored.stage is None and leaves_equal(restored.params, state.params)


def test_resume_continues_bit_identically(data_dir, tmp_path):
  uninterrupted = train.train_and_evaluate(tiny_config(data_dir), str(tmp_path / "a"))
  resumed_dir = str(tmp_path / "b")
  train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": 4}), resumed_dir)
  resumed = train.train_and_evaluate(tiny_config(data_dir), resumed_dir)
  assert leaves_equal(uninterrupted.params, resumed.params)
  timing = ("steps_per_second", "wall_seconds")
  uninterrupted_metrics, resumed_metrics = metric_writer.read_metrics(str(tmp_path / "a")), metric_writer.read_metrics(resumed_dir)
  assert {k: v for k, v in uninterrupted_metrics[6].items() if k not in timing} == {
      k: v for k, v in resumed_metrics[6].items() if k not in timing}
  resumed_wall = metric_writer.wall_seconds_by_step(resumed_dir)
  assert 0 < resumed_wall[2] < resumed_wall[4] < resumed_wall[6]  # the resumed stage adds to the time logged before


def test_cooldown_follows_a_half_cosine_over_the_last_steps():
  steps = np.arange(10)
  expected = np.where(steps < 6, 1.0, 0.5 * (1 + np.cos(np.pi * (steps - 6) / 4)))
  np.testing.assert_allclose(schedules.cooldown(steps, 10, 4), expected, rtol=1e-6)
  assert np.all(np.asarray(schedules.cooldown(steps[:6], 10, 4)) == 1.0)  # exactly 1 before it: branching is exact
  assert np.all(np.asarray(schedules.cooldown(steps, 10, 0)) == 1.0)


def test_a_cooldown_branched_from_a_checkpoint_is_the_run_trained_with_it(data_dir, tmp_path):
  cooled_dir, branched_dir = str(tmp_path / "cooled"), str(tmp_path / "branched")
  cooled = train.train_and_evaluate(tiny_config(data_dir, **{"train.cooldown_steps": 4}), cooled_dir)
  train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": 2}), branched_dir)  # no cooldown in its 2 steps
  branched = train.train_and_evaluate(tiny_config(data_dir, **{"train.cooldown_steps": 4}), branched_dir)
  assert leaves_equal(cooled.params, branched.params)
  rate = tiny_config(data_dir).train.learning_rate
  logged = {step: row["learning_rate"] for step, row in metric_writer.read_metrics(cooled_dir).items()}
  assert logged == pytest.approx({2: rate, 4: rate * 0.5 * (1 + np.cos(np.pi / 4)), 6: rate * 0.5 * (1 + np.cos(3 * np.pi / 4))})


def test_wall_seconds_of_logs_without_them_are_integrated_from_steps_per_second(tmp_path):
  rows = [{"step": 50, "steps_per_second": 10.0}, {"step": 100, "steps_per_second": 5.0},
          {"step": 150, "steps_per_second": 1.0, "wall_seconds": 40.0}, {"step": 200, "steps_per_second": 2.0}]
  (tmp_path / metric_writer.METRICS_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
  assert metric_writer.wall_seconds_by_step(str(tmp_path)) == {50: 5.0, 100: 15.0, 150: 40.0, 200: 65.0}
  assert metric_writer.wall_seconds_by_step(str(tmp_path / "no_run")) == {}


def test_resume_refuses_a_different_model(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": 2}), workdir)
  with pytest.raises(checkpointing.CheckpointError, match=r"different model config \(dsa.dim_z: 5 -> 6\). Use a new --workdir"):
    train.train_and_evaluate(tiny_config(data_dir, **{"dsa.dim_z": 6}), workdir)


def test_unreadable_checkpoint_names_the_step_and_the_fix(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": 2}), workdir)
  state_dir = os.path.join(checkpointing.checkpoint_dir(workdir), "2", "state")
  for root, _, files in os.walk(state_dir):
    for name in files:
      with open(os.path.join(root, name), "wb") as file:
        file.write(b"garbage")
  with pytest.raises(checkpointing.CheckpointError, match=r"No intact checkpoint in .*\(step 2: sha256 mismatch in state/.*Start a new --workdir"):
    train.train_and_evaluate(tiny_config(data_dir, **{"train.num_steps": 4}), workdir)


def poisoned_dsa_task(config, image_shape):
  task = tasks.dsa_task(config, image_shape)

  def loss_fn(params, batch, key, step):
    loss, metrics = task.loss_fn(params, batch, key, step)
    poisoned = step >= 3
    metrics = {**metrics, "kl_f": jnp.where(poisoned, jnp.nan, metrics["kl_f"])}
    return jnp.where(poisoned, jnp.nan, loss), metrics

  return dataclasses.replace(task, loss_fn=loss_fn)


def poisoned_dsa_stages(config, image_shape, workdir):
  (stage,) = tasks.dsa_stages(config, image_shape, workdir)
  return (dataclasses.replace(stage, task=poisoned_dsa_task(config, image_shape)),)


def test_nan_stops_the_run_naming_step_and_term_and_saves_nothing_after(data_dir, tmp_path, monkeypatch):
  monkeypatch.setitem(tasks.MODELS, "dsa", tasks.MODELS["dsa"]._replace(stages=poisoned_dsa_stages))
  workdir = str(tmp_path / "run")
  with pytest.raises(train.NonFiniteLossError, match="step 3: .*kl_f=nan"):
    train.train_and_evaluate(tiny_config(data_dir), workdir)
  checkpointer = checkpointing.Checkpointer(checkpointing.checkpoint_dir(workdir), 1, read_only=True)
  assert checkpointer.all_steps() == [2]


def test_batch_size_must_split_over_devices_naming_the_field_that_sets_it(data_dir):
  mesh = train.make_mesh(jax.devices() * 3)  # three "devices" (the same one, for the check only)
  (dsa_stage,) = tasks.make_stages(tiny_config(data_dir), (64, 64, 3), "/unused")
  with pytest.raises(tasks.ConfigError, match=r"config.train.batch_size=4 does not split over 3 data-parallel devices; set config.train.batch_size to a multiple of 3"):
    train.check_batch_size(dsa_stage, mesh)
  assert train.check_batch_size(dsa_stage, train.make_mesh(jax.devices() * 6, model_parallelism=3)) == 4  # 2 replicas of 3
  with pytest.raises(tasks.ConfigError, match=r"config.train.model_parallelism=4 does not divide the 6 devices; set it to a divisor of 6"):
    train.make_mesh(jax.devices() * 6, model_parallelism=4)
  vdsm_config = vdsm_pendulum.get_config("quick")
  vdsm_config.vdsm_pretrain.batch_size = 4
  pretrain, _ = tasks.make_stages(vdsm_config, (16, 16, 3), "/unused")
  with pytest.raises(tasks.ConfigError, match=r"set config.vdsm_pretrain.batch_size to a multiple of 3"):
    train.check_batch_size(pretrain, mesh)


@pytest.fixture(scope="module")
def tiny_task():
  config = tiny_config("/unused", **{"train.learning_rate": 1e-2, "dsa.num_channels": 8})
  return tasks.dsa_task(config, (64, 64, 3)), train.make_optimizer(config.train.learning_rate)


def test_step_compiles_once_and_fits_a_batch(tiny_task):
  task, tx = tiny_task
  colours = np.random.default_rng(0).integers(0, 2, (4, 1, 1, 1, 3), dtype=np.uint8) * 255
  videos = np.broadcast_to(colours, (4, 4, 64, 64, 3)).copy()  # one solid colour per video
  mesh = train.make_mesh()
  state = train.jit_state_init(functools.partial(train.create_train_state, task, tx), mesh)(videos, jax.random.key(0))
  step = train.jit_train_step(chex.assert_max_traces(task.loss_fn, n=1), mesh)
  losses = []
  for _ in range(25):
    state, metrics = step(state, {"video": jnp.asarray(videos)}, jax.random.key(1))
    losses.append(float(metrics["loss"]))
  assert int(state.step) == 25
  assert losses[-1] < 0.75 * losses[0], losses
  batch = {"video": jnp.asarray(videos)}
  plain_state, _ = step(jax.tree.map(jnp.copy, state), batch, jax.random.key(1))
  no_cooldown = tasks.Stage(None, task, 30, 4, 1e-2, "train").learning_rate_scale
  unscaled_state, _ = train.jit_train_step(task.loss_fn, mesh, learning_rate_scale=no_cooldown)(
      jax.tree.map(jnp.copy, state), batch, jax.random.key(1))
  assert leaves_equal(plain_state.params, unscaled_state.params)  # a factor of exactly 1 is Adam's own step, bit for bit
  halfway_down = tasks.Stage(None, task, 26, 4, 1e-2, "train", cooldown_steps=2).learning_rate_scale  # step 25: 1/2
  halved_state, _ = train.jit_train_step(task.loss_fn, mesh, learning_rate_scale=halfway_down)(
      jax.tree.map(jnp.copy, state), batch, jax.random.key(1))
  for before, plain, halved in zip(*(jax.tree.leaves(s.params) for s in (state, plain_state, halved_state))):
    np.testing.assert_allclose(halved - before, 0.5 * (plain - before), rtol=1e-4, atol=1e-7)


SHARDED_SCRIPT = """
import functools, json, jax, numpy as np
from dsa_jax import tasks, train
from tests.test_train import tiny_config
config = tiny_config("/unused")
task = tasks.dsa_task(config, (64, 64, 3))
tx = train.make_optimizer(config.train.learning_rate)
videos = np.random.default_rng(0).integers(0, 256, (4, 4, 64, 64, 3), dtype=np.uint8)
losses, split = {}, {}
for name, count, model_parallelism in (("one", 1, 1), ("data", 2, 1)):  # the model axis: tests/test_distributed.py
  mesh = train.make_mesh(jax.devices()[:count], model_parallelism)
  abstract = train.abstract_state(task, tx, (4, 64, 64, 3), mesh, min_elements=256)
  shardings = jax.tree.map(lambda leaf: leaf.sharding, abstract)
  state = train.jit_state_init(functools.partial(train.create_train_state, task, tx), mesh, shardings)(videos, jax.random.key(0))
  step = train.jit_train_step(task.loss_fn, mesh, shardings)
  for _ in range(2):
    state, metrics = step(state, train.shard_batch({"video": videos}, mesh), jax.random.key(1))
  losses[name] = float(metrics["loss"])
  assert metrics["loss"].sharding.num_devices == count
  split[name] = train.split_fraction(state)
  assert all(leaf.sharding == want for leaf, want in zip(jax.tree.leaves(state), jax.tree.leaves(shardings)))
print(json.dumps({"devices": len(jax.devices()), "losses": losses, "split": split}))
"""


def test_data_parallel_steps_on_two_local_devices_match_one_device():
  env = subprocess_env("--xla_force_host_platform_device_count=2")
  result = subprocess.run(
      [sys.executable, "-c", SHARDED_SCRIPT], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
  )
  assert result.returncode == 0, result.stderr[-3000:]
  measured = json.loads(result.stdout.strip().splitlines()[-1])
  losses, split = measured["losses"], measured["split"]
  assert measured["devices"] == 2 and split["one"] == split["data"] == 0.0, split
  np.testing.assert_allclose(losses["data"], losses["one"], rtol=1e-5)


def test_model_parallelism_splits_nearly_all_of_vdsm_sprites_state():
  config = vdsm_sprites.get_config()
  (pretrain, _), mesh = tasks.make_stages(config, (64, 64, 3), "/unused"), train.make_mesh(jax.devices() * 4, model_parallelism=4)
  abstract = train.abstract_state(pretrain.task, train.make_optimizer(1e-3), (8 * 2, 64, 64, 3), mesh)
  leaves = jax.tree.leaves(abstract)
  total = sum(leaf.size for leaf in leaves)
  split = [leaf for leaf in leaves if leaf.sharding.spec != jax.sharding.PartitionSpec()]
  assert total > 3 * 150e6  # parameters and Adam's two moments
  assert sum(leaf.size for leaf in split) > 0.97 * total
  assert all(leaf.shape[list(leaf.sharding.spec).index("model")] % 4 == 0 for leaf in split)
  assert train.leaf_sharding((3, 7), mesh, min_elements=1).spec == jax.sharding.PartitionSpec()  # 4 divides neither
  assert train.leaf_sharding((8, 12), mesh, min_elements=1).spec == jax.sharding.PartitionSpec(None, "model")
  assert train.leaf_sharding((8, 12), mesh, min_elements=97).spec == jax.sharding.PartitionSpec()


def _run_command(workdir: str, data_dir: str, num_steps: int) -> list[str]:
  overrides = {**TINY_OVERRIDES, "train.num_steps": num_steps, "train.checkpoint_every": 3}
  return [
      sys.executable, "-m", "experiments.run", "--config=experiments/dsa_pendulum.py",
      f"--workdir={workdir}", f"--config.data.data_dir={data_dir}", "--config.data.variant=small",
      *(f"--config.{key}={value}" for key, value in overrides.items()),
  ]


def test_kill_9_then_rerun_resumes_from_the_last_checkpoint(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  command = _run_command(workdir, data_dir, num_steps=400)
  env = subprocess_env()
  process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  checkpoints = checkpointing.checkpoint_dir(workdir)
  deadline = time.time() + 240
  while time.time() < deadline and not (os.path.isdir(checkpoints) and "6" in os.listdir(checkpoints)):
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.wait()
  saved = checkpointing.Checkpointer(checkpoints, 1, read_only=True).latest_step()
  assert saved is not None and saved >= 6, os.listdir(checkpoints)
  logged = [step for step in range(1, saved + 1) if step % 2 == 0 or step % 3 == 0]  # log_every 2, checkpoint_every 3
  assert set(logged) <= set(tensorboard_scalar_steps(os.path.join(workdir, "tensorboard"), "train/loss"))
  finished = subprocess.run(
      _run_command(workdir, data_dir, num_steps=saved + 3), cwd=REPO, env=env,
      capture_output=True, text=True, timeout=300,
  )
  assert finished.returncode == 0, finished.stderr[-3000:]
  assert f"Resuming from the checkpoint at step {saved}" in finished.stdout
  assert checkpointing.Checkpointer(checkpoints, 1, read_only=True).latest_step() == saved + 3
