"""Evaluators: plug-ins named in `config.evaluators`, each `run(codec, videos, key, num_frames, density_videos) -> {name: value}`.

videos are test videos; density_videos are training videos, for scores that fit an ex-post
density to their codes (`dsa_jax.code_density`).
"""

from collections.abc import Callable, Sequence

import jax

from dsa_jax.codecs import Codec
from dsa_jax.evaluation import pendulum

Evaluator = Callable[[Codec, object, jax.Array, int, object], dict[str, float]]
EVALUATORS: dict[str, Evaluator] = {"pendulum": pendulum.run}


def get(name: str) -> Evaluator:
  """The evaluator registered under name."""
  if name not in EVALUATORS:
    raise ValueError(f"Unknown evaluator {name!r} in config.evaluators; choose from {sorted(EVALUATORS)}.")
  return EVALUATORS[name]


def evaluate(names: Sequence[str], codec: Codec, videos, key: jax.Array, num_frames: int, density_videos) -> dict[str, float]:
  """The scores of every named evaluator on test videos [M, T, ...] (densities fitted to training videos [N, T, ...]), merged."""
  scores = {}
  for index, name in enumerate(names):
    scores.update(get(name)(codec, videos, jax.random.fold_in(key, index), num_frames, density_videos))
  return scores
