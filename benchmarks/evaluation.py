r"""Wall time and memory of a full evaluation (`experiments.evaluate`) of trained runs; prints a table.

  python -m benchmarks.evaluation --workdirs=RUN[,RUN...] [--judge=DIR] [--rounds=5] [--num_test_videos=N]

Each run is scored as `experiments.evaluate` scores it (default: all test videos, 5 rounds, the
shipped judge), so its results are written too; the table splits the time into the protocols
(R rounds of decoding and judging both protocols), VDSM's Table 1, the study's Table 1 and the
generations (Frechet distance, reconstruction MSE), the rest being loading and figures.
"""

import os
import resource
import time

from absl import app, flags, logging

from benchmarks import tables
from dsa_jax.evaluation import report

FLAGS = flags.FLAGS
flags.DEFINE_list("workdirs", None, "Trained runs to evaluate.")
flags.DEFINE_string("judge", None, "Judge folder; default the one shipped for each run's dataset.")
flags.DEFINE_integer("rounds", 5, "Protocol rounds.")
flags.DEFINE_integer("num_test_videos", None, "Test videos scored (default all).")
flags.DEFINE_bool("allow_weak_judge", False, "Allow a judge under 99% on a head.")

PARTS = ("encoding", "protocols", "embedding_table", "swap_agreement", "generation")
HEADER = ("run", "step", "test_videos", "rounds", *(f"{part}_s" for part in PARTS), "other_s", "total_s", "cpu_s", "peak_rss_GB")


def cpu_name() -> str:
  """The CPU model of this machine (from /proc/cpuinfo) and the cores this process may use."""
  name = "unknown CPU"
  if os.path.isfile("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as file:
      name = next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), name)
  return f"{name}, {len(os.sched_getaffinity(0))} cores"


def measure(workdir: str, judge_dir: str | None, rounds: int, num_test_videos: int | None, allow_weak_judge: bool = False) -> dict:
  """One row of the table: evaluate_run's time per part, in all, its CPU time and the process's peak RSS."""
  started, cpu_started = time.perf_counter(), time.process_time()
  results = report.evaluate_run(workdir, judge_dir, rounds, allow_weak_judge=allow_weak_judge, num_test_videos=num_test_videos)
  total = time.perf_counter() - started
  seconds = results["seconds"]
  return {
      "run": os.path.basename(os.path.normpath(workdir)), "step": results["step"], "test_videos": results["test_videos"],
      "rounds": rounds, **{f"{part}_s": seconds[part] for part in PARTS}, "other_s": total - sum(seconds.values()),
      "total_s": total, "cpu_s": time.process_time() - cpu_started,
      "peak_rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
  }


def table(rows: list[dict]) -> str:
  """Rows as a Markdown table in HEADER's order."""
  return tables.markdown(HEADER, rows)


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)
  rows = [measure(workdir, FLAGS.judge, FLAGS.rounds, FLAGS.num_test_videos, FLAGS.allow_weak_judge) for workdir in FLAGS.workdirs]
  print(f"Full evaluation on {cpu_name()}")
  print(table(rows))


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdirs"])
  app.run(main)
