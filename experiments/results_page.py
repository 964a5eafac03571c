r"""Writes docs/results.md from the committed records, published rows and history in results/.

  python -m experiments.results_page [--check]

With --check it writes nothing and exits with status 1 when the committed page is not what results/ generates.
"""

import sys

from absl import app, flags

from dsa_jax import visualize
from dsa_jax.evaluation import records, results_page

FLAGS = flags.FLAGS
flags.DEFINE_string("results_dir", records.RESULTS_DIR, "The folder of the records, published.json and history.json.")
flags.DEFINE_string("page", results_page.PAGE, "The page to write (or, with --check, to compare).")
flags.DEFINE_bool("check", False, "Only check that the page is what the records generate (exit status 1 if not).")


def committed_page(path: str) -> str | None:
  """The page's text, or None where it does not exist."""
  try:
    with open(path) as file:
      return file.read()
  except FileNotFoundError:
    return None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  page = results_page.from_directory(FLAGS.results_dir)
  if not FLAGS.check:
    visualize.write_atomically(FLAGS.page, page.encode())
  elif committed_page(FLAGS.page) != page:
    stale = f"{FLAGS.page} is not what {FLAGS.results_dir}/ generates: run python -m experiments.results_page"
    print(stale, file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
