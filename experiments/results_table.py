r"""Several evaluated runs side by side, as the README's results table: a row per metric, a column per run.

  python -m experiments.results_table --results=NAME=RUN/evaluation/step_N/results.json[,NAME=...]
"""

import json

from absl import app, flags

from dsa_jax.evaluation import report

FLAGS = flags.FLAGS
flags.DEFINE_list("results", None, "NAME=PATH pairs of results.json files written by experiments.evaluate.")
flags.mark_flags_as_required(["results"])


def read_named_results(pairs: list[str]) -> dict[str, dict]:
  """NAME=PATH pairs (the name may hold '=', the path may not) to each results.json's contents, by name."""
  named = {}
  for pair in pairs:
    name, separator, path = pair.rpartition("=")
    if not separator or not name:
      raise app.UsageError(f"--results entry {pair!r} is not NAME=PATH.")
    try:
      with open(path) as file:
        named[name] = json.load(file)
    except (OSError, json.JSONDecodeError) as error:
      raise app.UsageError(
          f"--results entry {name!r}: cannot read {path!r} ({error}); give the results.json that "
          "`python -m experiments.evaluate --workdir=RUN` wrote under RUN/evaluation/step_N/.") from error
  return named


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  print(report.comparison_table(read_named_results(FLAGS.results)))


if __name__ == "__main__":
  app.run(main)
