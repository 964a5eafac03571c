"""Trained judges as files: export a judge run (params + judge.json with its test accuracy and checksum), load, predict.

A judge folder holds `params.msgpack` (flax serialisation of the params) and `judge.json`:
the dataset, frame shape, heads, architecture, the accuracy of every head on the validation
videos (per checkpoint; the best one is exported) and on the real test videos, and the sha256
of `params.msgpack`. The Sprites judge ships inside the package
(`shipped("sprites")`).
"""

import functools
import hashlib
import json
import os
from typing import Any, NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from dsa_jax import checkpointing, data, runs, tasks, visualize
from dsa_jax.evaluation import judge

PARAMS_FILE = "params.msgpack"
INFO_FILE = "judge.json"
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shipped_judges")
MINIMUM_ACCURACY = 0.99


class JudgeError(ValueError):
  """A judge folder is missing, damaged, weak, or does not fit the run it should score."""


class TrainedJudge(NamedTuple):
  """A judge ready to score videos (what protocols ask of a judge: classes, dynamic_heads, predict)."""

  model: judge.Judge
  params: Any
  info: dict[str, Any]  # judge.json
  directory: str

  @property
  def classes(self) -> dict[str, int]:
    """{head: number of classes}."""
    return dict(self.model.config.heads)

  @property
  def dynamic_heads(self) -> list[str]:
    """The heads that read the dynamics (the action); the others read the static code."""
    return list(self.info.get("dynamic_heads", ()))

  def predict(self, videos, batch_size: int = 64) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """p(y | x) per head {label: [N, K]} and penultimate features [N, F] of float videos [N, T, H, W, C]."""
    return predict(self, videos, batch_size)


def sha256(content: bytes) -> str:
  """The hex sha256 of bytes."""
  return hashlib.sha256(content).hexdigest()


def shipped(dataset: str) -> str:
  """The folder of the judge shipped with the package for a dataset."""
  directory = os.path.join(SHIPPED_DIR, dataset)
  if not os.path.isfile(os.path.join(directory, INFO_FILE)):
    available = sorted(os.listdir(SHIPPED_DIR)) if os.path.isdir(SHIPPED_DIR) else []
    raise JudgeError(
        f"No judge ships for dataset {dataset!r} (shipped: {available}). Train one with "
        f"`python -m experiments.train_judge --config=experiments/judge_{dataset}.py --workdir=DIR` and pass --judge=DIR."
    )
  return directory


def fit_to(videos, image_shape: tuple[int, int, int]) -> np.ndarray:
  """Float videos [B, T, h, w, C] resized (bilinear) to the judge's frame size [B, T, H, W, C]."""
  videos = np.asarray(videos, np.float32)
  if tuple(videos.shape[2:]) == tuple(image_shape):
    return videos
  if videos.shape[-1] != image_shape[-1]:
    raise JudgeError(f"Videos have {videos.shape[-1]} channels; the judge reads {image_shape[-1]}.")
  resized = jax.image.resize(jnp.asarray(videos), (*videos.shape[:2], *image_shape), "linear")
  return np.clip(np.asarray(resized), 0.0, 1.0)


@functools.partial(jax.jit, static_argnames=("model",))
def _predict(model: judge.Judge, params, videos):
  output = model.apply({"params": params}, videos)
  return judge.probabilities(output), output.features


def predict(trained: TrainedJudge, videos, batch_size: int = 64, progress: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """p(y | x) per head {label: [N, K]} and penultimate features [N, F] of float videos [N, T, H, W, C]."""
  videos = np.asarray(videos)
  probabilities, features = {}, []
  starts = range(0, len(videos), batch_size)
  for start in tqdm.tqdm(starts, desc="judge", disable=not progress, leave=False):
    chunk = fit_to(videos[start : start + batch_size], trained.model.config.image_shape)
    chunk_probabilities, chunk_features = _predict(trained.model, trained.params, jnp.asarray(chunk))
    for name, value in chunk_probabilities.items():
      probabilities.setdefault(name, []).append(np.asarray(value))
    features.append(np.asarray(chunk_features))
  return {name: np.concatenate(parts) for name, parts in probabilities.items()}, np.concatenate(features)


def accuracy(trained: TrainedJudge, data_config, split: str, batch_size: int = 64, count: int | None = None) -> dict[str, float]:
  """The accuracy of every head on the first `count` (None: all) real videos of a split ("test", or "validation" carved from train)."""
  source = data.load_source(data_config, split)
  size = len(source) if count is None else min(count, len(source))
  hits = {name: 0 for name, _ in trained.model.config.heads}
  for start in tqdm.tqdm(range(0, size, batch_size), desc=f"judge {split} accuracy", leave=False):
    batch = data.read_batch(source, np.arange(start, min(start + batch_size, size)), data_config.num_frames, data_config.image_size)
    probabilities, _ = predict(trained, np.asarray(data.to_unit_interval(batch[data.VIDEO_KEY])), batch_size)
    for name in hits:
      hits[name] += int(np.sum(probabilities[name].argmax(axis=-1) == batch[name]))
  return {name: hit_count / size for name, hit_count in hits.items()}


def _as_judge(run) -> TrainedJudge:
  return TrainedJudge(judge.Judge(tasks.judge_model_config(run.config, run.image_shape)), run.params, {}, run.directory)


def select_checkpoint(workdir: str) -> tuple[Any, dict[int, dict[str, float]]]:
  """The judge run at its best checkpoint on the validation videos (worst head first, then mean, then latest), and every score.

  Without validation videos (config.data.validation_videos = 0) the newest checkpoint, unscored.
  """
  newest = runs.restore(workdir)
  if not newest.config.data.get("validation_videos"):
    return newest, {}
  checkpointer = checkpointing.Checkpointer(checkpointing.checkpoint_dir(newest.directory), save_every=1, read_only=True)
  try:
    steps = checkpointer.all_steps()
  finally:
    checkpointer.close()
  candidates = {step: newest if step == newest.step else runs.restore(newest.directory, step) for step in steps}
  scores = {step: accuracy(_as_judge(run), newest.config.data, "validation") for step, run in candidates.items()}
  best = max(steps, key=lambda step: (min(scores[step].values()), np.mean(list(scores[step].values())), step))
  return candidates[best], scores


def export(workdir: str, out_dir: str | None = None, train_seconds: float | None = None) -> dict[str, Any]:
  """Writes a trained judge run, at its checkpoint chosen on validation videos, as params.msgpack and judge.json (default: into the run)."""
  run, validation = select_checkpoint(workdir)
  out_dir = out_dir or run.directory
  trained = _as_judge(run)
  model_config = trained.model.config
  content = flax.serialization.to_bytes(jax.device_get(run.params))
  info = {
      "dataset": run.config.data.name,
      "variant": run.config.data.variant,
      "num_frames": run.config.data.num_frames,
      "image_shape": list(model_config.image_shape),
      "heads": [[name, classes] for name, classes in model_config.heads],
      "dynamic_heads": list(run.config.judge.dynamic_heads),
      "channels": list(model_config.channels),
      "feature_size": model_config.feature_size,
      "lstm_size": model_config.lstm_size,
      "normalization": model_config.normalization,
      "pooled_heads": list(model_config.pooled_heads),
      "counted_heads": list(model_config.counted_heads),
      "train_steps": run.step,
      "train_seconds": train_seconds,
      "validation_videos": run.config.data.get("validation_videos", 0),
      "validation_accuracy": {str(step): value for step, value in validation.items()},
      "test_accuracy": accuracy(trained, run.config.data, "test"),
      "params_sha256": sha256(content),
  }
  visualize.write_atomically(os.path.join(out_dir, PARAMS_FILE), content)
  visualize.write_atomically(os.path.join(out_dir, INFO_FILE), json.dumps(info, indent=2).encode())
  return info


def load(directory: str) -> Any:
  """A judge folder's TrainedJudge, checked against its judge.json's sha256; `cdsvae:PATH`: C-DSVAE's Sprites judge."""
  if directory.startswith("cdsvae:"):
    from dsa_jax.evaluation import cdsvae_judge  # imported here: it builds on this module

    return cdsvae_judge.load(directory.removeprefix("cdsvae:"))
  directory = os.path.abspath(os.path.expanduser(directory))
  try:
    with open(os.path.join(directory, INFO_FILE)) as file:
      info = json.load(file)
    with open(os.path.join(directory, PARAMS_FILE), "rb") as file:
      content = file.read()
  except (OSError, ValueError) as error:
    raise JudgeError(
        f"{directory} is not a readable judge folder ({error}); it must hold {INFO_FILE} and {PARAMS_FILE} "
        "as written by `python -m experiments.train_judge`."
    ) from error
  if sha256(content) != info["params_sha256"]:
    raise JudgeError(f"{os.path.join(directory, PARAMS_FILE)} does not match the sha256 in its {INFO_FILE}: the file is damaged.")
  model = judge.Judge(judge.JudgeConfig(
      image_shape=tuple(info["image_shape"]), heads=tuple((name, classes) for name, classes in info["heads"]),
      channels=tuple(info["channels"]), feature_size=info["feature_size"], lstm_size=info["lstm_size"],
      normalization=info.get("normalization", "layer"), pooled_heads=tuple(info.get("pooled_heads", ())),
      counted_heads=tuple(info.get("counted_heads", ())),
  ))
  videos = jax.ShapeDtypeStruct((1, info["num_frames"], *info["image_shape"]), jnp.float32)
  template = jax.eval_shape(lambda v: model.init(jax.random.key(0), v)["params"], videos)
  params = flax.serialization.from_bytes(jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), template), content)
  return TrainedJudge(model, jax.tree.map(jnp.asarray, params), info, directory)


def weak_heads(trained: TrainedJudge) -> dict[str, float]:
  """The heads whose test accuracy is under MINIMUM_ACCURACY."""
  return {name: value for name, value in trained.info["test_accuracy"].items() if value < MINIMUM_ACCURACY}
