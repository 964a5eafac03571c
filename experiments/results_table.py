r"""Several evaluated runs side by side, as the README's results table: a row per metric, a column per run; then,
for runs that are seeds of one config, the mean +- std over seeds beside the mean spread over protocol rounds.

  python -m experiments.results_table --results=NAME=RUN/evaluation/step_N/results.json[,NAME=...]
  python -m experiments.results_table --seeds_of=NAME=WORKDIR[,NAME=WORKDIR]

A run named NAME/seed_N is one of NAME's seeds. --seeds_of=NAME=WORKDIR names each seed's run WORKDIR/seed_N (its
results.json in the one folder WORKDIR/seed_N/[STAGE/]evaluation/step_M/ that holds one) NAME/seed_N.
"""

import glob
import json
import os
import re

from absl import app, flags

from dsa_jax.evaluation import records, report

FLAGS = flags.FLAGS
flags.DEFINE_list("results", [], "NAME=PATH pairs of results.json files written by experiments.evaluate.")
flags.DEFINE_list("seeds_of", [], "NAME=WORKDIR pairs: WORKDIR/seed_N/**/evaluation/step_M/results.json per seed.")

SEED_NAME = re.compile(r"(?P<name>.+)/seed_(?P<seed>\d+)")
SEED_RESULTS = re.compile(r"seed_(?P<seed>\d+)/(.+/)?evaluation/step_\d+/results\.json")


def split_pair(pair: str, flag: str) -> tuple[str, str]:
  """NAME=PATH (the name may hold '=', the path may not) as (name, path)."""
  name, separator, path = pair.rpartition("=")
  if not separator or not name:
    raise app.UsageError(f"--{flag} entry {pair!r} is not NAME=PATH.")
  return name, path


def read_named_results(pairs: list[str]) -> dict[str, dict]:
  """NAME=PATH pairs to each results.json's contents, by name."""
  named = {}
  for pair in pairs:
    name, path = split_pair(pair, "results")
    try:
      with open(path) as file:
        named[name] = json.load(file)
    except (OSError, json.JSONDecodeError) as error:
      raise app.UsageError(
          f"--results entry {name!r}: cannot read {path!r} ({error}); give the results.json that "
          "`python -m experiments.evaluate --workdir=RUN` wrote under RUN/evaluation/step_N/.") from error
  return named


def seed_results_paths(workdir: str) -> dict[int, str]:
  """Each seed's results.json under WORKDIR/seed_N/ (in an evaluation/step_M/ folder at any depth), by seed."""
  found: dict[int, list[str]] = {}
  for path in sorted(glob.glob(os.path.join(workdir, "seed_*", "**", "results.json"), recursive=True)):
    match = SEED_RESULTS.fullmatch(os.path.relpath(path, workdir).replace(os.sep, "/"))
    if match:
      found.setdefault(int(match["seed"]), []).append(path)
  if not found:
    raise app.UsageError(
        f"--seeds_of: no seed_N/.../evaluation/step_M/results.json under {workdir!r}; score each seed's run with "
        "`python -m experiments.evaluate --workdir=WORKDIR/seed_N`."
    )
  several = {seed: paths for seed, paths in found.items() if len(paths) > 1}
  if several:
    raise app.UsageError(
        f"--seeds_of: seeds under {workdir!r} with several evaluated steps {several}; "
        "name the one of each seed with --results=NAME/seed_N=PATH."
    )
  return {seed: paths[0] for seed, paths in sorted(found.items())}


def seed_entries(pairs: list[str]) -> list[str]:
  """--seeds_of's NAME=WORKDIR pairs as --results entries NAME/seed_N=PATH."""
  entries = []
  for pair in pairs:
    name, workdir = split_pair(pair, "seeds_of")
    entries += [f"{name}/seed_{seed}={path}" for seed, path in seed_results_paths(workdir).items()]
  return entries


def seeds_by_name(named: dict[str, dict]) -> dict[str, list[dict]]:
  """The results of the runs named NAME/seed_N, grouped by NAME in the order of their seeds."""
  groups: dict[str, dict[int, dict]] = {}
  for name, results in named.items():
    match = SEED_NAME.fullmatch(name)
    if match:
      groups.setdefault(match["name"], {})[int(match["seed"])] = results
  return {name: [by_seed[seed] for seed in sorted(by_seed)] for name, by_seed in groups.items()}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS.results and not FLAGS.seeds_of:
    raise app.UsageError("Give --results=NAME=PATH[,...], --seeds_of=NAME=WORKDIR[,...] or both.")
  named = read_named_results(FLAGS.results + seed_entries(FLAGS.seeds_of))
  print(report.comparison_table(named))
  seeds = seeds_by_name(named)
  if seeds:
    print("\nOver seeds (mean +- sample std over seeds of each run's round mean; rounds: the mean std over rounds):\n")
    print(records.seeds_table(seeds))


if __name__ == "__main__":
  app.run(main)
