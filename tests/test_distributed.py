"""Two processes on this machine as one run (JAX's distributed runtime, coordinator on 127.0.0.1, one CPU device each)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from dsa_jax import metric_writer, train
from tests.conftest import REPO, subprocess_env, wait_for_path
from tests.test_train import tiny_config

TIMEOUT_SECONDS = 240


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def start(workdir: str, data_dir: str, port: int, process_id: int, *overrides: str) -> subprocess.Popen:
  """One process of a 2-process run of tests/distributed_config.py."""
  command = [
      sys.executable, "-m", "experiments.run", "--config=tests/distributed_config.py", f"--config.data.data_dir={data_dir}",
      f"--workdir={workdir}", f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={process_id}",
      "--distributed_timeout_seconds=60", "--heartbeat_timeout_seconds=10", *overrides,
  ]
  environment = subprocess_env("--xla_force_host_platform_device_count=1")
  return subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_both(workdir: str, data_dir: str, *overrides: str) -> list[tuple[int, str, str]]:
  """Both processes to the end: (return code, stdout, stderr) of each."""
  port = free_port()
  processes = [start(workdir, data_dir, port, index, *overrides) for index in range(2)]
  outputs = [process.communicate(timeout=TIMEOUT_SECONDS) for process in processes]
  return [(process.returncode, *output) for process, output in zip(processes, outputs)]


def losses(workdir: str) -> dict[int, float]:
  return {step: row["loss"] for step, row in metric_writer.read_metrics(workdir).items()}


@pytest.fixture(scope="module")
def single_process_losses(data_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("single"))
  train.train_and_evaluate(tiny_config(data_dir), workdir)
  return losses(workdir)


@pytest.fixture(scope="module")
def two_process_run(data_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("two_processes"))
  return workdir, run_both(workdir, data_dir)


def test_two_processes_train_as_one_and_only_process_0_writes(single_process_losses, two_process_run):
  workdir, ((rc_0, out_0, err_0), (rc_1, out_1, err_1)) = two_process_run
  assert (rc_0, rc_1) == (0, 0), (err_0[-2000:], err_1[-2000:])
  two_process = losses(workdir)
  assert sorted(two_process) == sorted(single_process_losses) == [2, 4, 6]
  np.testing.assert_allclose([two_process[s] for s in (2, 4, 6)], [single_process_losses[s] for s in (2, 4, 6)], rtol=1e-5)
  with open(os.path.join(workdir, metric_writer.METRICS_FILE)) as file:
    assert [json.loads(line)["step"] for line in file] == [2, 4, 6]  # one writer
  assert len(os.listdir(os.path.join(workdir, "tensorboard"))) == 1
  assert "Wrote samples" in out_0 and "Wrote samples" not in out_1 and "Evaluation:" not in out_1


def test_a_killed_process_stops_the_other_with_one_line_and_the_run_resumes(data_dir, two_process_run, tmp_path):
  uninterrupted, workdir = two_process_run[0], str(tmp_path / "killed")
  port = free_port()
  slow_steps = ("--config.train.num_steps=100000", "--config.train.image_every=1")  # seconds per step: killed before step 6
  processes = [start(workdir, data_dir, port, index, *slow_steps) for index in range(2)]
  wait_for_path(os.path.join(workdir, "checkpoints", "2"), processes[0], TIMEOUT_SECONDS)  # renamed there once complete
  processes[1].send_signal(signal.SIGKILL)
  killed_at = time.monotonic()
  _, stderr = processes[0].communicate(timeout=60)
  assert processes[0].returncode == 1 and time.monotonic() - killed_at < 60
  assert stderr.strip().splitlines()[-1].startswith("DistributedError: Process 0 of 2 lost contact with the others "), stderr[-2000:]
  processes[1].communicate()
  results = run_both(workdir, data_dir)  # the same command again, as the message says: it resumes
  assert [rc for rc, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
  assert "Resuming from the checkpoint at step 2 " in results[0][1]
  assert losses(workdir)[6] == losses(uninterrupted)[6]


def test_an_unreachable_coordinator_fails_in_bounded_time_naming_the_address(tmp_path):
  port = free_port()
  command = [
      sys.executable, "-m", "experiments.run", "--config=experiments/dsa_pendulum.py:quick", f"--workdir={tmp_path}",
      f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", "--process_id=1", "--distributed_timeout_seconds=2",
  ]
  started = time.monotonic()
  result = subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120)
  assert result.returncode == 1 and time.monotonic() - started < 60
  assert result.stderr.strip().splitlines()[-1].startswith(f"DistributedError: Could not reach the coordinator at 127.0.0.1:{port} within 2 s")
  assert os.listdir(tmp_path) == []


def test_parameters_split_over_a_model_axis_train_and_resume_to_the_same_losses(data_dir, single_process_losses, tmp_path):
  workdir = str(tmp_path / "model_parallel")
  command = [
      sys.executable, "-m", "experiments.run", "--config=tests/distributed_config.py", f"--config.data.data_dir={data_dir}",
      f"--workdir={workdir}", "--config.train.model_parallelism=2", "--config.train.shard_min_elements=256",
  ]
  environment = subprocess_env("--xla_force_host_platform_device_count=2")
  for num_steps in (4, 6):  # the second run resumes from step 4, restoring the split state
    result = subprocess.run([*command, f"--config.train.num_steps={num_steps}"], cwd=REPO, env=environment,
                            capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    assert result.returncode == 0, result.stderr[-2000:]
  assert "Resuming from the checkpoint at step 4 " in result.stdout
  layout = re.search(r"Mesh of 2 devices: 1 along data x 2 along model; ([\d.]+)% of the parameters and optimizer state", result.stdout)
  assert layout and float(layout[1]) > 20, result.stdout[-2000:]  # the tiny model: odd widths stay whole
  model_parallel = losses(workdir)
  np.testing.assert_allclose([model_parallel[s] for s in (2, 4, 6)], [single_process_losses[s] for s in (2, 4, 6)], rtol=1e-5)


def test_sigterm_to_one_process_stops_both_at_one_step_whose_checkpoint_they_save(data_dir, tmp_path):
  workdir, port = str(tmp_path / "stopped"), free_port()
  slow_steps = ("--config.train.num_steps=100000", "--config.train.image_every=1", "--config.train.checkpoint_every=1000")
  processes = [start(workdir, data_dir, port, index, *slow_steps) for index in range(2)]
  wait_for_path(os.path.join(workdir, metric_writer.METRICS_FILE), processes[0], TIMEOUT_SECONDS)
  processes[1].send_signal(signal.SIGTERM)
  stderrs = [process.communicate(timeout=60)[1] for process in processes]
  assert [process.returncode for process in processes] == [143, 143], [stderr[-2000:] for stderr in stderrs]
  last_lines = [stderr.strip().splitlines()[-1] for stderr in stderrs]
  steps = {int(re.match(r"TrainingStopped: Stopped by SIGTERM after step (\d+) of 100000; ", line)[1]) for line in last_lines}
  assert len(steps) == 1, last_lines
  step = steps.pop()
  assert sorted(int(name) for name in os.listdir(os.path.join(workdir, "checkpoints"))) == [step]
