r"""Several evaluated runs side by side, as the README's results table: a row per metric, a column per run.

  python -m experiments.results_table --results=NAME=RUN/evaluation/step_N/results.json[,NAME=...]
"""

import json

from absl import app, flags

from dsa_jax.evaluation import report

FLAGS = flags.FLAGS
flags.DEFINE_list("results", None, "NAME=PATH pairs of results.json files written by experiments.evaluate.")
flags.mark_flags_as_required(["results"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  named = {}
  for pair in FLAGS.results:
    name, separator, path = pair.partition("=")
    if not separator:
      raise app.UsageError(f"--results entry {pair!r} is not NAME=PATH.")
    with open(path) as file:
      named[name] = json.load(file)
  print(report.comparison_table(named))


if __name__ == "__main__":
  app.run(main)
