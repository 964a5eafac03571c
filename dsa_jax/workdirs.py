"""A run's workdir: path expansion, the lock that keeps a second process out, and resume checks."""

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import ml_collections

from dsa_jax import checkpointing, file_locks

LOCK_FILE = ".lock"
# Config fields that fix the parameters' shapes (and the model's section): resume needs the same.
STRUCTURAL_FIELDS = ("model", "data.image_size")


class WorkdirLockedError(RuntimeError):
  """Another process is training in the same workdir."""


def expand(path: str) -> str:
  """An absolute path with ~ and environment variables expanded."""
  return os.path.abspath(os.path.expandvars(os.path.expanduser(path)))


SEED_PREFIX = "seed_"


def seed_dir(workdir: str, seed: int) -> str:
  """Where a run of several seeds keeps the run of one: WORKDIR/seed_N."""
  return os.path.join(expand(workdir), f"{SEED_PREFIX}{seed}")


def seed_dirs(workdir: str) -> dict[int, str]:
  """{seed: folder} of the seed_N folders a workdir holds (empty for a run of one seed)."""
  workdir = expand(workdir)
  if not os.path.isdir(workdir):
    return {}
  seeds = [name[len(SEED_PREFIX) :] for name in os.listdir(workdir) if name.startswith(SEED_PREFIX)]
  return {seed: seed_dir(workdir, seed) for seed in sorted(int(digits) for digits in seeds if digits.isdigit())}


def _holder(path: str) -> str:
  try:
    with open(path) as file:
      holder = json.load(file)
    return f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
  except (OSError, ValueError, KeyError):
    return "a process that has not written its name yet"


@contextlib.contextmanager
def locked(workdir: str) -> Iterator[None]:
  """Holds an exclusive lock on workdir while training; a killed holder's lock is released with it."""
  path = os.path.join(workdir, LOCK_FILE)

  def refuse() -> None:
    raise WorkdirLockedError(
        f"{workdir} is in use by another training process ({_holder(path)}). Wait for it to finish, "
        "stop it, or train into another --workdir."
    )

  with file_locks.exclusive(path, refuse) as descriptor:
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(holder).encode(), 0)
    yield


def flat_fields(config: Any, prefix: str) -> dict[str, Any]:
  """The leaves of a config section as {"section.field": value}."""
  if not isinstance(config, ml_collections.ConfigDict):
    return {prefix: config}
  flat = {}
  for name, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      flat.update(flat_fields(value, f"{prefix}.{name}"))
    else:
      flat[f"{prefix}.{name}"] = json.loads(json.dumps(value))  # as saved in JSON: tuples, nested too, become lists
  return flat


def dotted_get(config: ml_collections.ConfigDict, path: str) -> Any:
  """config["a"]["b"] for path "a.b"; None where a part is absent."""
  for part in path.split("."):
    if not isinstance(config, ml_collections.ConfigDict) or part not in config:
      return None
    config = config[part]
  return config


def check_resumable(
    saved: ml_collections.ConfigDict, saved_metadata: dict[str, Any],
    config: ml_collections.ConfigDict, metadata: dict[str, Any], directory: str,
) -> None:
  """Raises CheckpointError naming every model field or frame size where the checkpoint differs from the run."""
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
  trained, now = saved_metadata.get("image_shape"), metadata["image_shape"]
  if trained is not None and list(trained) != list(now):
    raise checkpointing.CheckpointError(
        f"The checkpoints in {directory} were trained on frames of shape {list(trained)} (height, width, "
        f"channels), but {config.data.name} now gives {list(now)}. Use a new --workdir for this dataset, or "
        "point config.data at the data the run was trained on."
    )
