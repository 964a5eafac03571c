"""The train-step benchmark runs and its table reports each case against the targets."""

import subprocess
import sys

from benchmarks import train_step
from tests.test_readme import REPO


def test_target_verdicts_name_what_misses():
  row = {"case": "vdsm_pretrain", "s_per_step": 1.91, "peak_rss_GB": 3.88}
  assert train_step.target_verdict(row, "cpu") == "missed: s_per_step 1.91 > 1"
  assert train_step.target_verdict({**row, "s_per_step": 0.9}, "cpu") == "met"
  assert train_step.target_verdict({**row, "peak_rss_GB": 4.5}, "cpu") == (
      "missed: s_per_step 1.91 > 1, peak_rss_GB 4.5 > 4"
  )
  assert train_step.target_verdict({**row, "s_per_step": 0.019}, "gpu") == "met"
  assert train_step.target_verdict({**row, "case": "dsa_quick"}, "cpu") == ""


def test_benchmark_prints_a_row_per_case():
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.train_step", "--cases=dsa_quick", "--steps=1"],
      cwd=REPO, capture_output=True, text=True, check=True,
  )
  table = [line for line in result.stdout.splitlines() if line.startswith("|")]
  header = [cell.strip() for cell in table[0].strip("|").split("|")]
  row = dict(zip(header, (cell.strip() for cell in table[2].strip("|").split("|"))))
  assert len(table) == 3 and len(row) == len(header) == 14
  assert row["case"] == "dsa_quick" and row["batch"] == "8x8x16^2" and row["target"] == ""
  assert float(row["s_per_step"]) > 0 and float(row["GFLOP_per_step"]) > 0 and float(row["peak_rss_GB"]) > 0
  assert abs(float(row["sequences_per_s"]) - 8 / float(row["s_per_step"])) <= 0.01 * float(row["sequences_per_s"])
