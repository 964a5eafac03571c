"""The README's main job: dsa_pendulum.py:quick trains, and its f-swaps disentangle."""

import json
import os
import subprocess
import sys

import pytest

from dsa_jax import metric_writer, runs
from dsa_jax.evaluation import evaluators
from experiments import dsa_pendulum
from tests.conftest import REPO, shared_data_dir, subprocess_env


def quick(tmp_path_factory, compute_dtype: str):
  """The README's main job in compute_dtype, as users run it (XLA's default flags): its config, workdir and final step."""
  config = dsa_pendulum.get_config("quick")
  workdir = str(tmp_path_factory.mktemp(f"quick_{compute_dtype}"))
  data_dir = shared_data_dir("pendulum_default")  # built once for both dtypes' files
  command = [
      sys.executable, "-m", "experiments.run", "--config=experiments/dsa_pendulum.py:quick", f"--workdir={workdir}",
      f"--config.data.data_dir={data_dir}", f"--config.train.compute_dtype={compute_dtype}",
  ]
  result = subprocess.run(command, cwd=REPO, env=subprocess_env(fast_compile=False), capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  restored = runs.restore(workdir)
  assert restored.config.train.compute_dtype == compute_dtype
  return config, workdir, restored.step


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
  """The README's main job as written (float32); test_quick_pendulum_bfloat16.py reruns these tests in bfloat16."""
  return quick(tmp_path_factory, "float32")


def test_quick_run_loss_falls(quick_run):
  config, workdir, restored_step = quick_run
  metrics = metric_writer.read_metrics(workdir)
  assert max(metrics) == config.train.num_steps
  assert restored_step == config.train.num_steps
  first, last = metrics[min(metrics)], metrics[max(metrics)]
  assert last["loss"] < 0.7 * first["loss"], (first["loss"], last["loss"])
  assert last["kl_weight"] == 1.0


def test_quick_run_swaps_colour_with_the_static_code_and_swing_with_the_dynamics(quick_run):
  config, workdir, _ = quick_run
  with open(os.path.join(runs.sample_dir(workdir, config.train.num_steps), evaluators.EVALUATION_FILE)) as file:
    scores = json.load(file)
  assert scores["pairs_of_different_colour"] >= 20
  assert scores["colour_follows_static_source"] >= 0.8, scores
  assert scores["colour_follows_dynamic_source"] <= 0.1, scores
  assert scores["swing_correlation_with_dynamic_source"] >= 0.9, scores
  assert scores["swing_correlation_with_static_source"] <= 0.5, scores
