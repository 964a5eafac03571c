"""The train-step benchmark runs and its table reports each case against the targets."""

import re
import subprocess
import sys

from benchmarks import gpu_check, train_step
from experiments import vdsm_sprites
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


def test_benchmark_prints_a_row_per_case_and_dtype():
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.train_step", "--cases=dsa_quick", "--steps=1", "--dtypes=float32,bfloat16"],
      cwd=REPO, capture_output=True, text=True, check=True,
  )
  assert re.search(r"A 2048\^3 matmul runs here at \d+ GFLOP/s in float32, \d+ GFLOP/s in bfloat16\.", result.stdout)
  table = [line for line in result.stdout.splitlines() if line.startswith("|")]
  header = [cell.strip() for cell in table[0].strip("|").split("|")]
  rows = [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in table[2:]]
  assert len(table) == 4 and len(header) == 16 and [row["dtype"] for row in rows] == ["float32", "bfloat16"]
  for row in rows:
    assert row["case"] == "dsa_quick" and row["batch"] == "8x8x16^2" and row["target"] == ""
    assert float(row["s_per_step"]) > 0 and float(row["GFLOP_per_step"]) > 0 and float(row["peak_rss_GB"]) > 0
    assert abs(float(row["sequences_per_s"]) - 8 / float(row["s_per_step"])) <= 0.01 * float(row["sequences_per_s"])
    assert 0 < float(row["matmul_fraction"]) < 1.5


def test_the_gpu_check_scales_both_stages_epochs_alike_to_fit_the_time_left():
  config = vdsm_sprites.get_config()  # 300 x 50 pretraining steps, 200 x 50 sequence steps
  assert gpu_check.fitted_epochs(config, 200.0, pretrain_step=0.02, sequence_step=0.01) == (150, 100)  # 400 s in full
  assert gpu_check.fitted_epochs(config, 1000.0, pretrain_step=0.02, sequence_step=0.01) == (300, 200)
  assert gpu_check.fitted_epochs(config, -5.0, pretrain_step=0.02, sequence_step=0.01) == (1, 1)
