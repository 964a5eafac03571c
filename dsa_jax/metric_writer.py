"""One writer for a run's metrics: TensorBoard, metrics.jsonl and the console, flushed at every write.

Only process 0 writes files; every process keeps its progress bar quiet but process 0's.
"""

import json
import os
import sys

import jax
import numpy as np
import tensorboardX
import tqdm

from dsa_jax import visualize

METRICS_FILE = "metrics.jsonl"


def format_duration(seconds: float) -> str:
  """Seconds as 1h02m03s or 2m03s."""
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def read_metrics(workdir: str) -> dict[int, dict[str, float]]:
  """The logged metrics of a run by step (a step logged twice, around a crash, keeps the last)."""
  with open(os.path.join(workdir, METRICS_FILE)) as file:
    rows = [json.loads(line) for line in file if line.strip()]
  return {row.pop("step"): row for row in rows}


def wall_seconds_by_step(workdir: str) -> dict[int, float]:
  """Training wall time of a stage at each logged step; logs older than `wall_seconds` are integrated from steps/s."""
  if not os.path.isfile(os.path.join(workdir, METRICS_FILE)):
    return {}
  seconds, elapsed, previous_step = {}, 0.0, 0
  for step, row in sorted(read_metrics(workdir).items()):
    elapsed = row["wall_seconds"] if "wall_seconds" in row else elapsed + (step - previous_step) / max(row["steps_per_second"], 1e-9)
    seconds[step], previous_step = elapsed, step
  return seconds


class MetricWriter:
  """Scalars and pictures of one training stage, written to every sink at once."""

  def __init__(self, workdir: str, name: str, num_steps: int, start_step: int):
    self._writes_files = jax.process_index() == 0
    self._workdir, self._num_steps = workdir, num_steps
    self._tensorboard = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard")) if self._writes_files else None
    self._bar = tqdm.tqdm(
        total=num_steps, initial=start_step, unit="step", desc=name, file=sys.stderr, disable=not self._writes_files
    )

  def advance(self) -> None:
    """Moves the progress bar on by one step."""
    self._bar.update(1)

  def print(self, line: str) -> None:
    """A console line above the progress bar."""
    self._bar.write(line)

  def write_scalars(
      self, step: int, scalars: dict[str, float], steps_per_second: float, wall_seconds: float,
      evaluations: dict[str, float] | None = None,
  ) -> None:
    """Logs scalars (train/NAME), speed, the stage's wall time and validation scores (EVALUATOR/SCORE) at step, to every sink."""
    evaluations = evaluations or {}
    eta = (self._num_steps - step) / max(steps_per_second, 1e-9)
    terms = " ".join(f"{name}={value:.4g}" for name, value in scalars.items())
    self._bar.set_postfix({k: f"{scalars[k]:.4g}" for k in ("loss", "kl_f", "kl_z") if k in scalars})
    self.print(f"step {step}/{self._num_steps} | {terms} | {steps_per_second:.2f} steps/s | ETA {format_duration(eta)}")
    if evaluations:
      self.print(f"step {step} validation | " + " ".join(f"{name}={value:.4g}" for name, value in evaluations.items()))
    if not self._writes_files:
      return
    timing = {"steps_per_second": steps_per_second, "wall_seconds": wall_seconds}
    for name, value in {**scalars, **timing}.items():
      self._tensorboard.add_scalar(f"train/{name}", value, step)
    for name, value in evaluations.items():
      self._tensorboard.add_scalar(name, value, step)
    with open(os.path.join(self._workdir, METRICS_FILE), "a") as file:
      file.write(json.dumps({"step": step, **scalars, **timing, **evaluations}) + "\n")
    self._tensorboard.flush()

  def write_pictures(self, step: int, pictures: dict[str, np.ndarray]) -> None:
    """[H, W, 3] images under images/NAME and [T, H, W, 3] videos as animated GIFs under videos/NAME."""
    if not self._writes_files:
      return
    for name, picture in pictures.items():
      if picture.ndim == 4:  # tensorboardX's add_video needs moviepy
        self._tensorboard._get_file_writer().add_summary(visualize.gif_summary(f"videos/{name}", picture), step)
      else:
        self._tensorboard.add_image(f"images/{name}", picture, step, dataformats="HWC")
    self._tensorboard.flush()

  def close(self) -> None:
    """Flushes and closes every sink."""
    self._bar.close()
    if self._tensorboard is not None:
      self._tensorboard.close()
