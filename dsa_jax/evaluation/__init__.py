"""Evaluators: plug-ins named in `config.evaluators`, each `run(codec, videos, key, num_frames) -> {name: value}`."""

from collections.abc import Callable, Sequence

import jax

from dsa_jax.codecs import Codec
from dsa_jax.evaluation import pendulum

Evaluator = Callable[[Codec, object, jax.Array, int], dict[str, float]]
EVALUATORS: dict[str, Evaluator] = {"pendulum": pendulum.run}


def get(name: str) -> Evaluator:
  """The evaluator registered under name."""
  if name not in EVALUATORS:
    raise ValueError(f"Unknown evaluator {name!r} in config.evaluators; choose from {sorted(EVALUATORS)}.")
  return EVALUATORS[name]


def evaluate(names: Sequence[str], codec: Codec, videos, key: jax.Array, num_frames: int) -> dict[str, float]:
  """The scores of every named evaluator on test videos [M, T, ...], merged."""
  scores = {}
  for index, name in enumerate(names):
    scores.update(get(name)(codec, videos, jax.random.fold_in(key, index), num_frames))
  return scores
