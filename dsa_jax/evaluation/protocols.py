"""The field's evaluation protocols over a codec and a judge, written once for every model.

Test videos are floats [N, T, H, W, C]; labels are {head: [N]} integer classes of the judge's
heads. Dynamic heads (the action) read the dynamics; static heads (identity attributes) the
static code. A judge is anything with `classes` ({head: K}), `dynamic_heads` and
`predict(videos) -> ({head: p(y|x) [N, K]}, features [N, F])`, e.g. `judges.TrainedJudge`.
The protocols draw codes from the codec's priors, as published; given a `code_density.CodeDensity`
they draw from its marginals instead (a diagnostic, not comparable with published rows).
The reverse protocol decodes, as the field's code does (C-DSVAE's
`forward_fixed_content_for_classification`, copied by SPYL and DBSE), the dynamic prior's
per-step means along a sampled rollout (`reverse="field"`; from a density, its drawn components'
means), or the samples themselves ("samples", the draws of the code before this option).
`ceiling` scores the real test videos as if they were generated: what a perfect model would reach.
"""

import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from dsa_jax import code_density, sampling
from dsa_jax.codecs import Codec, Codes
from dsa_jax.distributions import Gaussian
from dsa_jax.evaluation import metrics

BATCH = 128  # videos decoded at once
REVERSE_DRAWS = ("field", "samples")  # the reverse protocol decodes the prior's per-step means, or its samples
CEILING_FRACTIONS = {"inception_score": "inception_score_fraction", "h_y_given_x": "conditional_entropy_ratio"}
Judge = Any


def head_roles(trained: Judge) -> tuple[list[str], list[str]]:
  """(dynamic heads, static heads) of a judge."""
  dynamic = [name for name in trained.classes if name in trained.dynamic_heads]
  static = [name for name in trained.classes if name not in trained.dynamic_heads]
  return dynamic, static


def encode_all(codec: Codec, videos: np.ndarray) -> Codes:
  """Posterior means of every video's codes, in batches."""
  parts = [codec.encode(videos[start : start + BATCH]) for start in range(0, len(videos), BATCH)]
  return Codes(np.concatenate([np.asarray(p.static) for p in parts]), np.concatenate([np.asarray(p.dynamics) for p in parts]))


def decode_all(codec: Codec, codes: Codes, key: jax.Array, num_frames: int) -> np.ndarray:
  """Frame means [N, num_frames, ...] of codes, in batches."""
  parts = [
      codec.decode(Codes(codes.static[start : start + BATCH], codes.dynamics[start : start + BATCH]), jax.random.fold_in(key, start), num_frames)
      for start in range(0, len(codes.static), BATCH)
  ]
  return np.concatenate([np.asarray(part) for part in parts])


def standard_scores(trained: Judge, probabilities: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict:
  """Each dynamic head's accuracy, and IS, H(y|x), H(y) on its class-balanced subset, from the judge's p(y|x)."""
  scores = {}
  for head in head_roles(trained)[0]:
    scores[f"{head}_accuracy"] = metrics.accuracy(probabilities[head], labels[head])
    balanced = metrics.balanced_indices(labels[head], trained.classes[head])
    for name, value in metrics.inception_statistics(probabilities[head][balanced]).items():
      scores[f"{head}_{name}"] = value
  return scores


def reverse_scores(probabilities: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, float]:
  """Every head's accuracy from the judge's p(y|x)."""
  return {f"{head}_accuracy": metrics.accuracy(probabilities[head], labels[head]) for head in probabilities}


def standard_round(trained: Judge, generated: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, float]:
  """One round of the standard protocol on videos that kept the test videos' dynamics (static from the prior)."""
  return standard_scores(trained, trained.predict(generated)[0], labels)


def reverse_round(trained: Judge, generated: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, float]:
  """One round of the reverse protocol on videos that kept the static code (dynamics from the prior): every head's accuracy."""
  return reverse_scores(trained.predict(generated)[0], labels)


def ceiling(trained: Judge, real_probabilities: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, float]:
  """The judge's p(y|x) on real test videos scored as generations: standard_round's and reverse_round's scores."""
  return standard_scores(trained, real_probabilities, labels) | reverse_scores(real_probabilities, labels)


def fraction_of_ceiling(standard: dict[str, dict[str, float]], ceiling_scores: dict[str, float]) -> dict:
  """Per dynamic head, `protocols`' standard IS and H(y|x) over the ceiling's ({mean, std} each; inf over a 0)."""
  fractions = {}
  for metric, value in standard.items():
    for statistic, name in CEILING_FRACTIONS.items():
      if metric.endswith(f"_{statistic}"):
        head, bound = metric.removesuffix(f"_{statistic}"), ceiling_scores[metric]
        fractions[f"{head}_{name}"] = {part: float(np.divide(value[part], bound)) for part in ("mean", "std")}
  return fractions


def draw_static(codec: Codec, density: code_density.CodeDensity | None, key: jax.Array, num_videos: int) -> np.ndarray:
  """Static codes [N, S] from the codec's prior, or from the density's static marginal."""
  if density is None:
    return np.asarray(codec.sample_static(key, num_videos))
  return np.asarray(code_density.sample_codes(density, key, num_videos).static)


def component_means(density: code_density.CodeDensity) -> code_density.CodeDensity:
  """The density with zero-width components: a draw is its drawn component's mean (the same component for a key)."""
  return density._replace(components=Gaussian(density.components.loc, jnp.zeros_like(density.components.scale)))


def draw_dynamics(
    codec: Codec, density: code_density.CodeDensity | None, key: jax.Array, num_videos: int, num_frames: int,
    means: bool = False,
) -> np.ndarray:
  """Dynamic codes [N, ...] from the codec's prior or the density's dynamic marginal; with means, the draw's means."""
  if density is None:
    draw = codec.sample_dynamics_means if means else codec.sample_dynamics
    return np.asarray(draw(key, num_videos, num_frames))
  return np.asarray(code_density.sample_codes(component_means(density) if means else density, key, num_videos).dynamics)


def protocols(
    codec: Codec, trained: Judge, codes: Codes, labels: dict[str, np.ndarray], num_frames: int, key: jax.Array, rounds: int,
    density: code_density.CodeDensity | None = None, reverse: str = "field",
) -> tuple[dict, dict, dict[str, np.ndarray]]:
  """Both protocols over `rounds` draws (the reverse decodes `reverse` draws): {metric: mean, std} each, last videos."""
  if reverse not in REVERSE_DRAWS:
    raise ValueError(f"reverse must be one of {REVERSE_DRAWS}; got {reverse!r}.")
  num_videos = len(codes.static)
  standard_rounds, reverse_rounds, last = [], [], {}
  for round_index in tqdm.trange(rounds, desc="protocol rounds", file=sys.stderr):
    static_key, dynamics_key, decode_key = jax.random.split(jax.random.fold_in(key, round_index), 3)
    drawn_static = draw_static(codec, density, static_key, num_videos)
    kept_dynamics = decode_all(codec, Codes(drawn_static, codes.dynamics), decode_key, num_frames)
    drawn_dynamics = draw_dynamics(codec, density, dynamics_key, num_videos, num_frames, means=reverse == "field")
    kept_static = decode_all(codec, Codes(codes.static, drawn_dynamics), decode_key, num_frames)
    standard_rounds.append(standard_round(trained, kept_dynamics, labels))
    reverse_rounds.append(reverse_round(trained, kept_static, labels))
    last = {"standard": kept_dynamics, "reverse": kept_static}
  return metrics.mean_and_std(standard_rounds), metrics.mean_and_std(reverse_rounds), last


def swap_agreement(trained: Judge, real_probabilities: dict[str, np.ndarray], generated: dict[str, np.ndarray]) -> dict[str, float]:
  """The study's Table 1: per head, disagreement and mean KL(p_generated || p_real), beside the random baseline.

  generated["standard"] kept each video's dynamics (scored on the dynamic heads), generated["reverse"]
  its static code (scored on the static heads).
  """
  dynamic, static = head_roles(trained)
  scores = {}
  for source, heads in (("standard", dynamic), ("reverse", static)):
    probabilities, _ = trained.predict(generated[source])
    for head in heads:
      baseline = metrics.random_baseline(real_probabilities[head])
      scores[f"{head}_disagreement"] = metrics.disagreement(probabilities[head], real_probabilities[head])
      scores[f"{head}_kl"] = metrics.mean_kl(probabilities[head], real_probabilities[head])
      scores[f"{head}_random_disagreement"] = baseline["disagreement"]
      scores[f"{head}_random_kl"] = baseline["kl"]
  return scores


def embedding_table(
    trained: Judge, train_codes: Codes, train_labels: dict[str, np.ndarray], test_codes: Codes, test_labels: dict[str, np.ndarray],
) -> dict[str, float]:
  """VDSM's Table 1: every label classified from the static and from the dynamic codes (`encode_all`; fitted on train codes)."""
  table = {}
  for head, count in trained.classes.items():
    for part in ("static", "dynamics"):
      table[f"{head}_from_{part}"] = metrics.embedding_accuracy(
          getattr(train_codes, part), train_labels[head], getattr(test_codes, part), test_labels[head], count
      )
  return table


def frechet_and_reconstruction(
    codec: Codec, trained: Judge, videos: np.ndarray, codes: Codes, real_features: np.ndarray, key: jax.Array,
) -> dict[str, float]:
  """The judge Frechet distance of generations from the priors to the test videos' features, and the reconstruction MSE from their codes."""
  generate_key, reconstruct_key = jax.random.split(key)
  num_frames = videos.shape[1]
  generated = np.concatenate([
      np.asarray(sampling.generate(codec, jax.random.fold_in(generate_key, start), len(videos[start : start + BATCH]), num_frames))
      for start in range(0, len(videos), BATCH)
  ])
  _, generated_features = trained.predict(generated)
  reconstructed = decode_all(codec, codes, reconstruct_key, num_frames)
  return {
      "judge_frechet_distance": metrics.frechet_distance(real_features, generated_features),
      "reconstruction_mse": float(np.mean((reconstructed - videos) ** 2)),
  }
