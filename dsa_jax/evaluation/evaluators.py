"""Evaluators: plug-ins built once on a split's videos, each `run(codec, key) -> {score: value}`.

`config.evals` names those scored during training on the validation split,
{name: {type, every_steps, num_videos, rounds}}; the run chooses its checkpoint on one of their
scores (`dsa_jax.selection`). `config.evaluators` names types scored once at the end of training on
test videos (`end_of_run`): a report, never a choice.

| type | scores |
|---|---|
| `protocols` | the standard and reverse protocols with the dataset's judge (shipped, or `judge` names a folder) |
| `pendulum` | the pendulum's pixel judge: swaps, grid, continuations, generations (`evaluation/pendulum.py`) |
"""

import json
import os
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

import jax
import ml_collections
import numpy as np

from dsa_jax import runs, sample_files, visualize
from dsa_jax.codecs import Codec
from dsa_jax.evaluation import judges, pendulum, protocols, report

EVALUATION_FILE = "evaluation.json"
VALIDATION_SPLIT = "validation"


class Evaluator(Protocol):
  """What the training loop asks of an evaluator."""

  def run(self, codec: Codec, key: jax.Array) -> dict[str, float]:
    """Scores of a codec's model on the evaluator's videos."""


class Settings(NamedTuple):
  """Where an evaluator reads its videos and how much it scores."""

  data_config: ml_collections.ConfigDict
  split: str  # "validation" in the loop, "test" at the end of a run
  num_videos: int  # videos of the split scored (the first ones)
  horizon: int  # frames of generations and continuations
  num_density_videos: int  # training videos whose codes an ex-post density is fitted to
  rounds: int = 1  # prior draws of the protocols
  judge: str | None = None  # a judge folder (or cdsvae:PATH); None: the one shipped for the dataset


class PendulumEvaluator:
  """The pendulum's pixel judge on the first num_videos videos of a split."""

  def __init__(self, settings: Settings):
    self._settings = settings
    self._videos = runs.load_videos(settings.data_config, settings.split, settings.num_videos)
    self._density_videos = runs.load_videos(settings.data_config, "train", settings.num_density_videos)

  def run(self, codec: Codec, key: jax.Array) -> dict[str, float]:
    """pendulum.run's scores."""
    return pendulum.run(codec, self._videos, key, self._settings.horizon, self._density_videos)


class ProtocolsEvaluator:
  """The standard and reverse protocols over rounds of prior draws, scored by a judge, on a split's first num_videos."""

  def __init__(self, settings: Settings):
    data_config = settings.data_config
    self._settings = settings
    self._judge = judges.load(settings.judge or judges.shipped(data_config.name))
    self._videos, self._labels = report.load_labelled(
        data_config, settings.split, self._judge.info, settings.num_videos
    )
    report.check_balanced(self._judge, self._labels)

  def run(self, codec: Codec, key: jax.Array) -> dict[str, float]:
    """standard_HEAD_METRIC and reverse_HEAD_accuracy: each the mean over rounds."""
    codes = protocols.encode_all(codec, self._videos)
    standard, reverse, _ = protocols.protocols(
        codec, self._judge, codes, self._labels, self._videos.shape[1], key, self._settings.rounds
    )
    scores = {f"standard_{name}": value["mean"] for name, value in standard.items()}
    return scores | {f"reverse_{name}": value["mean"] for name, value in reverse.items()}


TYPES: dict[str, Callable[[Settings], Evaluator]] = {"pendulum": PendulumEvaluator, "protocols": ProtocolsEvaluator}


def make(type_name: str, settings: Settings) -> Evaluator:
  """An evaluator of a registered type."""
  if type_name not in TYPES:
    raise ValueError(f"Unknown evaluator type {type_name!r}; choose from {sorted(TYPES)}.")
  return TYPES[type_name](settings)


class Scheduled(NamedTuple):
  """An in-loop evaluator and when it runs."""

  name: str
  evaluator: Evaluator
  every_steps: int

  def due(self, done: int, is_last: bool) -> bool:
    """Whether it scores the checkpoint of step `done`."""
    return is_last or done % self.every_steps == 0


def validation_evaluators(config: ml_collections.ConfigDict, horizon: int) -> list[Scheduled]:
  """config.evals, each built on the validation split (config.data.validation_videos of the training videos)."""
  scheduled = []
  for name, options in config.evals.items():
    settings = Settings(
        config.data, VALIDATION_SPLIT, options.num_videos, horizon, config.sample.num_density_videos,
        options.get("rounds", 1), options.get("judge"),
    )
    scheduled.append(Scheduled(name, make(options.type, settings), options.every_steps))
  return scheduled


def run_scheduled(
    scheduled: list[Scheduled], codec: Codec, key: jax.Array, done: int, is_last: bool
) -> dict[str, dict[str, float]]:
  """{name: {score: value, "seconds": its wall time}} of every evaluator due at step `done`."""
  scores = {}
  for index, item in enumerate(scheduled):
    if not item.due(done, is_last):
      continue
    started = time.perf_counter()
    values = item.evaluator.run(codec, jax.random.fold_in(jax.random.fold_in(key, done), index))
    scores[item.name] = {score: float(value) for score, value in values.items()}
    scores[item.name]["seconds"] = time.perf_counter() - started
  return scores


def flat(scores: dict[str, dict[str, float]]) -> dict[str, float]:
  """{"NAME/SCORE": value}: run_scheduled's scores as logged."""
  return {f"{name}/{score}": value for name, values in scores.items() for score, value in values.items()}


def end_of_run(
    codec: Codec, config: ml_collections.ConfigDict, visual_videos: np.ndarray, key: jax.Array, out_dir: str
) -> tuple[list[str], dict[str, float]]:
  """Writes sample files and, where config.evaluators names types, their test scores (evaluation.json) into out_dir."""
  horizon = config.sample.num_frames or config.data.num_frames
  sample_key, evaluation_key = jax.random.split(key)
  paths = sample_files.write_samples(codec, visual_videos, sample_key, out_dir, horizon)
  density_videos = config.sample.get("num_density_videos", runs.DENSITY_VIDEOS)  # runs saved before the field
  settings = Settings(config.data, "test", config.sample.num_evaluation_videos, horizon, density_videos)
  scores: dict[str, float] = {}
  for index, type_name in enumerate(config.evaluators):
    scores |= make(type_name, settings).run(codec, jax.random.fold_in(evaluation_key, index))
  if scores:
    content = json.dumps(scores, indent=2).encode()
    paths.append(visualize.write_atomically(os.path.join(out_dir, EVALUATION_FILE), content))
  return paths, scores
