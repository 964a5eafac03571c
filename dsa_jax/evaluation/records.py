r"""Records: the committed results of the reported rows, and their aggregation over seeds.

A record is a small JSON file `results/<name>.json`, one per reported row: one config trained over one or more
seeds, each seed's checkpoint chosen on the validation split and scored on test once (`experiments.evaluate`).

  name          the row's name, also the file's stem
  config        the config string: "experiments/dsa_sprites.py:cpu"
  overrides     the command-line overrides: ["--config.dsa.prior=lstm"]
  commands      {role: command line}: "train" and "evaluate" (SEED stands for each seed)
  seeds         the training seeds (config.seed), in the order of per_seed
  judge         {dataset, params_sha256}: the judge that scored every seed
  rounds, test_videos, code_source, reverse_draws
                the protocols' settings, the same for every seed (reverse_draws null in results.json before it)
  per_seed      one per seed, from the results.json that `report.evaluate_run` wrote:
                  seed, step, notes [str], train_seconds (training wall time, or null)
                  standard_protocol, reverse_protocol: {metric: {mean, std}} over protocol rounds
                  embedding_table, swap_agreement, generation: {metric: value}
                  ceiling, fraction_of_ceiling (optional): the judge's scores on real test videos, and the
                    standard protocol's IS and H(y|x) over them
                  selection (optional): {step, chosen_on ("validation", "--step" or "newest"),
                    rule {metric, mode, ties}, validation_scores}, how the step was chosen
  commit        `git rev-parse HEAD` where the record was made ("-dirty" with uncommitted changes), or null
  hardware      {processor, cpu_count, jax_backend, device_kind} of the machine that made the record

`results/published.json` holds the published rows and `results/history.json` the rows of older code; every
other JSON file in `results/` is a record. Add one from a notebook:

  records.write_record(records.make_record("dsa_sprites_cpu", "experiments/dsa_sprites.py:cpu", [], commands,
                                           [0, 1, 2], [results_0, results_1, results_2], train_seconds))
"""

import json
import os
import platform
import shlex
import subprocess
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from dsa_jax import visualize
from dsa_jax.evaluation import curves

RESULTS_DIR = "results"
PUBLISHED_FILE = "published.json"
HISTORY_FILE = "history.json"
# Groups of results.json whose metrics are aggregated over seeds; the ceiling's only where evaluate_run wrote them.
METRIC_GROUPS = (
    "standard_protocol", "reverse_protocol", "embedding_table", "swap_agreement", "generation", "ceiling",
    "fraction_of_ceiling",
)
REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def git(*arguments: str) -> str | None:
  """The stripped output of a git command in this repository, or None where git or the repository is missing."""
  try:
    completed = subprocess.run(["git", "-C", REPOSITORY, *arguments], capture_output=True, text=True, check=False)
  except FileNotFoundError:
    return None
  return completed.stdout.strip() if completed.returncode == 0 else None


def current_commit() -> str | None:
  """HEAD's commit, with "-dirty" appended when tracked files have uncommitted changes; None outside a git checkout."""
  commit = git("rev-parse", "HEAD")
  if commit is None:
    return None
  return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo, else platform.processor() or platform.machine()."""
  try:
    with open("/proc/cpuinfo") as file:
      for line in file:
        if line.startswith("model name"):
          return line.partition(":")[2].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def current_hardware() -> dict[str, Any]:
  """The processor, the CPUs this process may use, JAX's backend and its first device's kind."""
  usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return {
      "processor": cpu_model(), "cpu_count": usable, "jax_backend": jax.default_backend(),
      "device_kind": jax.devices()[0].device_kind,
  }


def shared_settings(per_seed_results: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """The judge and protocol settings of the seeds' results, which must agree (else ValueError naming the setting)."""
  settings = [
      {
          "judge": {key: results["judge"][key] for key in ("dataset", "params_sha256")}, "rounds": results["rounds"],
          "test_videos": results["test_videos"],
          "code_source": results.get("code_source", "prior"),  # results before the option drew from the priors
          "reverse_draws": results.get("reverse_draws"),
      }
      for results in per_seed_results
  ]
  for name, value in settings[0].items():
    values = [each[name] for each in settings]
    if any(other != value for other in values):
      raise ValueError(f"The seeds' results differ in {name} ({values}): a row's seeds must be scored alike.")
  return settings[0]


def seed_entry(seed: int, results: dict[str, Any], train_seconds: float | None) -> dict[str, Any]:
  """What a record keeps of one seed's results.json."""
  trained_seed = results.get("config", {}).get("seed", seed)
  if trained_seed != seed:
    raise ValueError(f"The results given for seed {seed} are of a run trained with config.seed={trained_seed}.")
  entry = {"seed": seed, "step": results["step"], "notes": list(results["notes"]), "train_seconds": train_seconds}
  entry |= {group: results[group] for group in METRIC_GROUPS if group in results}
  if "selection" in results:
    entry["selection"] = results["selection"]
  return entry


def make_record(
    name: str, config: str, overrides: Sequence[str], commands: dict[str, str], seeds: Sequence[int],
    per_seed_results: Sequence[dict[str, Any]], train_seconds: Sequence[float] | None = None,
) -> dict[str, Any]:
  """A record (the module docstring's schema) of one row from each seed's results.json, made on this machine."""
  if not name or os.sep in name or f"{name}.json" in (PUBLISHED_FILE, HISTORY_FILE):
    raise ValueError(
        f"{name!r} cannot name a record: it is the stem of results/<name>.json, not {PUBLISHED_FILE} or {HISTORY_FILE}."
    )
  if not seeds or len(set(seeds)) != len(seeds):
    raise ValueError(f"seeds={list(seeds)}: a record needs one or more distinct seeds.")
  train_seconds = [None] * len(seeds) if train_seconds is None else list(train_seconds)
  if not len(per_seed_results) == len(train_seconds) == len(seeds):
    raise ValueError(
        f"{len(seeds)} seeds, {len(per_seed_results)} results and {len(train_seconds)} training times: one per seed."
    )
  return {
      "name": name, "config": config, "overrides": list(overrides), "commands": dict(commands), "seeds": list(seeds),
      **shared_settings(per_seed_results),
      "per_seed": [
          seed_entry(seed, results, seconds) for seed, results, seconds in zip(seeds, per_seed_results, train_seconds)
      ],
      "commit": current_commit(), "hardware": current_hardware(),
  }


def from_commands(name: str, train_command: str, evaluate_command: str, per_seed_results: Sequence[dict]) -> dict:
  """make_record of evaluated seeds, the config and overrides read from the `experiments.run` command that trained them.

  Overrides that only say where this machine keeps data (data.manual_dir, data.data_dir) are not settings and are
  left out; each seed's training time is its run's logged wall time (every stage's).
  """
  arguments = shlex.split(train_command)
  configs = [argument.partition("=")[2] for argument in arguments if argument.startswith("--config=")]
  if len(configs) != 1:
    raise ValueError(f"The training command {train_command!r} must name one --config=FILE[:VARIANT].")
  locations = ("--config.data.manual_dir=", "--config.data.data_dir=")
  overrides = [argument for argument in arguments if argument.startswith("--config.") and not argument.startswith(locations)]
  train_seconds = [
      max(curves.run_wall_seconds(results["run"], results["stage"], results["config"]["model"]).values(), default=None)
      for results in per_seed_results
  ]
  seeds = [results["config"]["seed"] for results in per_seed_results]
  commands = {"train": train_command, "evaluate": evaluate_command}
  return make_record(name, configs[0], overrides, commands, seeds, per_seed_results, train_seconds)


def write_record(record: dict[str, Any], directory: str = RESULTS_DIR) -> str:
  """Writes the record to DIRECTORY/<name>.json atomically; returns the path."""
  path = os.path.join(directory, f"{record['name']}.json")
  return visualize.write_atomically(path, (json.dumps(record, indent=2) + "\n").encode())


def read_json(path: str) -> Any:
  """A JSON file's contents."""
  with open(path) as file:
    return json.load(file)


def load_records(directory: str = RESULTS_DIR) -> list[dict[str, Any]]:
  """Every record in the directory, by file name (the published rows and the history are not records)."""
  names = sorted(
      name for name in os.listdir(directory) if name.endswith(".json") and name not in (PUBLISHED_FILE, HISTORY_FILE)
  )
  return [read_json(os.path.join(directory, name)) for name in names]


def load_published(directory: str = RESULTS_DIR) -> list[dict[str, Any]]:
  """The published rows: label, dataset, group, scores {metric: as printed}, judge, source, checked and note."""
  return read_json(os.path.join(directory, PUBLISHED_FILE))


def load_history(directory: str = RESULTS_DIR) -> list[dict[str, Any]]:
  """The rows of older code: label, code, acc, is, h_y_given_x, h_y (as printed, or null) and note."""
  return read_json(os.path.join(directory, HISTORY_FILE))


def round_mean_and_std(value: float | dict[str, float]) -> tuple[float, float | None]:
  """A metric's mean and std over protocol rounds ({mean, std}), or a value computed once and None."""
  if isinstance(value, dict):
    return value["mean"], value["std"]
  return value, None


def over_seeds(values: list[tuple[float, float | None]]) -> dict[str, Any]:
  """{mean, std_over_seeds, mean_round_std, seeds} of one metric's (round mean, round std) per seed."""
  means = np.asarray([mean for mean, _ in values], np.float64)
  round_stds = [std for _, std in values if std is not None]
  return {
      "mean": float(means.mean()),
      "std_over_seeds": float(means.std(ddof=1)) if len(means) > 1 else 0.0,
      "mean_round_std": float(np.mean(round_stds)) if round_stds else None,
      "seeds": len(means),
  }


def aggregate(per_seed_results: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
  """{group: {metric: {mean, std_over_seeds, mean_round_std, seeds}}} over seeds' results.json (or record entries).

  mean and std_over_seeds (sample std, ddof=1) are over each seed's round mean; with one seed std_over_seeds is 0,
  which measures nothing. mean_round_std is the mean over seeds of each run's std over protocol rounds (None for a
  metric computed once, such as the embedding table). seeds counts the seeds that have the metric.
  """
  table = {}
  for group in METRIC_GROUPS:
    by_metric: dict[str, list[tuple[float, float | None]]] = {}
    for results in per_seed_results:
      for metric, value in results.get(group, {}).items():
        by_metric.setdefault(metric, []).append(round_mean_and_std(value))
    if by_metric:
      table[group] = {metric: over_seeds(values) for metric, values in by_metric.items()}
  return table


def seeds_table(named_seeds: dict[str, Sequence[dict[str, Any]]]) -> str:
  """Rows' seeds side by side, a column per row: per metric, mean +- std over seeds and the mean std over rounds."""
  names = list(named_seeds)
  rows: dict[tuple[str, str], list[str]] = {}
  for column, per_seed_results in enumerate(named_seeds.values()):
    for group, summaries in aggregate(per_seed_results).items():
      for metric, summary in summaries.items():
        cell = f"{summary['mean']:.4f} +- {summary['std_over_seeds']:.4f}"
        if summary["mean_round_std"] is not None:
          cell += f" (rounds +- {summary['mean_round_std']:.4f})"
        rows.setdefault((group, metric), [""] * len(names))[column] = cell
  header = ["group", "metric", *(f"{name} (n={len(named_seeds[name])})" for name in names)]
  run_rows = {
      name: [", ".join(str(results[name]) for results in per_seed_results) for per_seed_results in named_seeds.values()]
      for name in ("step", "rounds", "test_videos")
  }
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += [f"| run | {name} | " + " | ".join(cells) + " |" for name, cells in run_rows.items()]
  lines += [f"| {group} | {metric} | " + " | ".join(cells) + " |" for (group, metric), cells in rows.items()]
  return "\n".join(lines)
