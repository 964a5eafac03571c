"""The ELBO-bias study end to end (`run`): the sweeps of Figs. 3-4, joint learning, their JSON, tables and plots."""

import json
import os
import sys
from typing import Any

import jax
import ml_collections
import numpy as np
import tqdm

from dsa_jax import visualize
from dsa_jax.tasks import ConfigError
from dsa_jax.study import elbo_bias, linear_gaussian
from dsa_jax.study.linear_gaussian import Theta

RESULTS_FILE = "elbo_bias.json"
TABLE_FILE = "elbo_bias.md"


def truth(config: ml_collections.ConfigDict, parameter: str | None = None, value: float | None = None) -> Theta:
  """The config's true theta, with one parameter set to a true value of its sweep."""
  theta = Theta(config.truth.sf, config.truth.sz, config.truth.sx)
  return theta if parameter is None else elbo_bias.with_parameter(theta, parameter, value)


def grid(config: ml_collections.ConfigDict, true_value: float) -> np.ndarray:
  """Candidate values [G]: the true value times a geometric grid from grid_low to grid_high."""
  return true_value * np.geomspace(config.grid_low, config.grid_high, config.grid_size)


def data(config: ml_collections.ConfigDict, theta: Theta, seed: int, num_sequences: int | None = None) -> jax.Array:
  """Sequences x [N, T, D] drawn from the model at theta with a data seed."""
  key = jax.random.key(seed)
  return linear_gaussian.sample(key, theta, num_sequences or config.num_sequences, config.num_steps, config.dim).x


def fit_config(config: ml_collections.ConfigDict) -> elbo_bias.FitConfig:
  """The encoder fitting schedule of the config."""
  return elbo_bias.FitConfig(config.fit.num_steps, config.fit.learning_rate)


def sweep(config: ml_collections.ConfigDict, parameter: str, true_value: float, seed: int) -> dict[str, Any]:
  """One curve set: the exact mean log-likelihood and every family's optimal mean ELBO over the grid, and their maximisers."""
  theta, values = truth(config, parameter, true_value), grid(config, true_value)
  x = data(config, theta, seed)
  log_likelihood = np.asarray(elbo_bias.log_likelihood_curve(theta, parameter, values, x))
  elbos = {family: np.asarray(elbo_bias.elbo_curve(family, theta, parameter, values, x, fit_config(config))) for family in config.families}
  return {
      "grid": values.tolist(), "log_likelihood": log_likelihood.tolist(), "elbo": {k: v.tolist() for k, v in elbos.items()},
      "maximiser": {"log_likelihood": elbo_bias.grid_maximiser(values, log_likelihood)}
      | {family: elbo_bias.grid_maximiser(values, curve) for family, curve in elbos.items()},
      "largest_excess": {family: float(np.max(curve - log_likelihood)) for family, curve in elbos.items()},
      "mean_gap": {family: float(np.mean(log_likelihood - curve)) for family, curve in elbos.items()},
  }


def joint(config: ml_collections.ConfigDict, parameter: str, true_value: float, size: int, seed: int) -> dict[str, list[float]]:
  """theta learned with each family's encoder, and the maximum-likelihood theta, from one data set."""
  x = data(config, truth(config, parameter, true_value), seed, size)
  start = Theta(*config.joint.start)
  fit = elbo_bias.FitConfig(config.joint.num_steps, config.fit.learning_rate)
  learned = {family: elbo_bias.fit_jointly(family, x, start, fit)[0] for family in config.families}
  learned["maximum_likelihood"] = elbo_bias.fit_maximum_likelihood(x, start, fit)[0]
  return {name: [float(value) for value in theta] for name, theta in learned.items()}


def spread(values: list[float]) -> dict[str, float]:
  """Mean and standard deviation over seeds."""
  return {"mean": float(np.mean(values)), "std": float(np.std(values))}


def maximiser_table(sweeps: dict[str, Any], families) -> list[str]:
  """Markdown rows: per swept parameter and true value, each maximiser's mean +- std over data seeds."""
  names = ["log_likelihood", *families]
  lines = ["| parameter | true | " + " | ".join(f"argmax {name}" for name in names) + " |", "|---|---|" + "---|" * len(names)]
  for parameter, by_value in sweeps.items():
    for true_value, runs in by_value.items():
      cells = [spread([run["maximiser"][name] for run in runs]) for name in names]
      lines.append(f"| {parameter} | {true_value} | " + " | ".join(f"{c['mean']:.3f} +- {c['std']:.3f}" for c in cells) + " |")
  return lines


def joint_table(joint_results: dict[str, Any]) -> list[str]:
  """Markdown rows: per true setting and data size, each learner's theta (mean +- std over seeds)."""
  lines = ["| true (sf, sz, sx) | N | learner | sf | sz | sx |", "|---|---|---|---|---|---|"]
  for setting, by_size in joint_results.items():
    for size, runs in by_size.items():
      for learner in runs[0]:
        cells = [spread([run[learner][index] for run in runs]) for index in range(3)]
        lines.append(f"| {setting} | {size} | {learner} | " + " | ".join(f"{c['mean']:.3f} +- {c['std']:.3f}" for c in cells) + " |")
  return lines


def plot(sweeps: dict[str, Any], path: str) -> str:
  """One panel per swept parameter and true value (the first data seed): the curves, both maximisers and the truth."""
  panels = [(parameter, true_value, runs[0]) for parameter, by_value in sweeps.items() for true_value, runs in by_value.items()]
  figure, axes = visualize.pyplot().subplots(len(panels), 1, figsize=(7, 3.2 * len(panels)), squeeze=False)
  for axis, (parameter, true_value, run) in zip(axes[:, 0], panels):
    axis.plot(run["grid"], run["log_likelihood"], color="black", linewidth=4, alpha=0.35, label="log p(x) (Kalman)")
    axis.axvline(run["maximiser"]["log_likelihood"], color="black", linestyle="--")
    for index, (family, curve) in enumerate(run["elbo"].items()):
      colour = f"C{index}"
      axis.plot(run["grid"], curve, color=colour, label=f"ELBO, {family}")
      axis.axvline(run["maximiser"][family], color=colour, linestyle="--")
    axis.axvline(float(true_value), color="grey", linestyle=":", label="truth")
    low = min(min(run["log_likelihood"]), *(min(c) for c in run["elbo"].values()))
    axis.set_ylim(max(low, max(run["log_likelihood"]) - 15), max(run["log_likelihood"]) + 1)
    axis.set_xscale("log")
    axis.set_xlabel(parameter)
    axis.set_ylabel("per sequence")
    axis.set_title(f"{parameter}, true {true_value} (dashed: maximisers)")
    axis.legend(fontsize=7)
  figure.tight_layout()
  return visualize.save_figure(figure, path, dpi=90)


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first field of a study config that is out of range."""
  unknown = [name for name in config.families if name not in elbo_bias.FAMILIES]
  if unknown:
    raise ConfigError(f"config.families has unknown posterior families {unknown}; choose from {elbo_bias.FAMILIES}.")
  parameters = [*config.sweeps.keys(), *(parameter for parameter, _ in config.joint.settings)]
  for parameter in parameters:
    if parameter not in elbo_bias.PARAMETERS:
      raise ConfigError(f"config.sweeps / config.joint.settings name {parameter!r}; sweep one of {elbo_bias.PARAMETERS}.")
  values = [*config.truth.values(), *(v for vs in config.sweeps.values() for v in vs), *(v for _, v in config.joint.settings)]
  if min(values) <= 0:
    raise ConfigError(f"Every scale in config.truth, config.sweeps and config.joint.settings must be above 0; got {min(values)}.")
  for field, value, least in (
      ("grid_size", config.grid_size, 3), ("num_sequences", config.num_sequences, 1), ("data_seeds", config.data_seeds, 1),
      ("num_steps", config.num_steps, 1), ("dim", config.dim, 1), ("fit.num_steps", config.fit.num_steps, 1),
      ("joint.seeds", config.joint.seeds, 0), ("joint.num_steps", config.joint.num_steps, 1),
  ):
    if value < least:
      raise ConfigError(f"config.{field}={value} is out of range: it must be at least {least}.")
  if not 0 < config.grid_low < config.grid_high:
    raise ConfigError(f"config.grid_low={config.grid_low} and grid_high={config.grid_high} must satisfy 0 < grid_low < grid_high.")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs the sweeps and joint learning of a study config; writes elbo_bias.json, elbo_bias.md and one PNG per sweep."""
  validate(config)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  tasks = [(parameter, value, seed) for parameter, values in config.sweeps.items() for value in values for seed in range(config.data_seeds)]
  sweeps: dict[str, dict[str, list]] = {}
  for parameter, value, seed in tqdm.tqdm(tasks, desc="sweeps", file=sys.stderr):
    sweeps.setdefault(parameter, {}).setdefault(str(value), []).append(sweep(config, parameter, value, seed))
  joint_tasks = [
      (parameter, value, size, seed) for parameter, value in config.joint.settings for size in config.joint.sizes
      for seed in range(config.joint.seeds)
  ]
  joint_results: dict[str, dict[str, list]] = {}
  for parameter, value, size, seed in tqdm.tqdm(joint_tasks, desc="joint learning", file=sys.stderr):
    setting = str(tuple(float(v) for v in truth(config, parameter, value)))
    joint_results.setdefault(setting, {}).setdefault(str(size), []).append(joint(config, parameter, value, size, seed))
  results = {"config": config.to_dict(), "sweeps": sweeps, "joint": joint_results}
  table = "\n".join([
      f"Maximisers over {config.data_seeds} data seeds of {config.num_sequences} sequences (T={config.num_steps}, D={config.dim}):",
      "", *maximiser_table(sweeps, config.families), "",
      f"Joint learning from start theta {tuple(config.joint.start)}, {config.joint.seeds} data seeds:", "", *joint_table(joint_results), "",
  ])
  for parameter in sweeps:
    plot({parameter: sweeps[parameter]}, os.path.join(workdir, f"elbo_bias_{parameter}.png"))
  visualize.write_atomically(os.path.join(workdir, TABLE_FILE), table.encode())
  visualize.write_atomically(os.path.join(workdir, RESULTS_FILE), json.dumps(results, indent=1).encode())
  return results


def check_lower_bound(results: dict[str, Any], tolerance: float = 1e-3) -> list[str]:
  """The (parameter, true value, family) curves whose ELBO exceeds the exact log-likelihood anywhere by more than tolerance."""
  return [
      f"{parameter}={value} {family}: +{excess:.2g}"
      for parameter, by_value in results["sweeps"].items() for value, runs in by_value.items() for run in runs
      for family, excess in run["largest_excess"].items() if excess > tolerance
  ]

