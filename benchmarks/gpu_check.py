r"""The GPU check in one command: step times at the papers' settings, then VDSM Sprites trained in the time left and evaluated.

  bash benchmarks/gpu_check.sh OUT_DIR         # on a GPU machine: at most 8 minutes
  python -m benchmarks.gpu_check --out_dir=OUT_DIR [--budget_seconds=480] [--timed_steps=200]

Times --timed_steps steps of each VDSM stage (the authors' timing settings and pretraining as
vdsm_sprites.py trains) and of DSA at the notes' sizes, in bfloat16; then trains vdsm_sprites.py
with both stages' epochs scaled alike to fit the budget left (schedules follow the epochs), and
scores it with experiments.evaluate's protocols and the shipped judge. Writes OUT_DIR/gpu_check.md
and gpu_check.json; the run is kept in --run_dir.
"""

import json
import math
import os
import time

import jax
from absl import app, flags, logging

from benchmarks import train_step
from dsa_jax import metric_writer, train, visualize
from dsa_jax.evaluation import report
from experiments import vdsm_sprites

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", None, "Where gpu_check.md and gpu_check.json go.")
flags.DEFINE_string("run_dir", "/tmp/gpu_check/vdsm_sprites", "The training run's workdir (its evaluation is kept there).")
flags.DEFINE_integer("budget_seconds", 480, "Wall time of the whole check; training gets what timing and evaluation leave.")
flags.DEFINE_integer("timed_steps", 200, "Timed steps per case.")
flags.DEFINE_list("step_cases", ["vdsm_pretrain", "vdsm_sequence", "vdsm_sprites_pretrain", "dsa_notes"], "Step-time cases.")
flags.DEFINE_string("compute_dtype", "bfloat16", "Compute dtype of the timed steps and the run.")
flags.DEFINE_integer("evaluation_seconds", 150, "Time kept back for the evaluation (and start-up of each stage).")
flags.DEFINE_integer("evaluation_rounds", 5, "Prior draws of the protocols.")
flags.DEFINE_string("manual_dir", "../shared/data/lpc_sprites", "The LPC layers the Sprites set is composited from.")
flags.mark_flags_as_required(["out_dir"])


def fitted_epochs(config, seconds: float, pretrain_step: float, sequence_step: float) -> tuple[int, int]:
  """Both stages' epochs, scaled by one factor (at most 1) from the config's so that their steps take `seconds`."""
  pretrain, sequence = config.vdsm_pretrain, config.vdsm_sequence
  full = pretrain.num_epochs * pretrain.steps_per_epoch * pretrain_step + sequence.num_epochs * sequence.steps_per_epoch * sequence_step
  scale = min(1.0, max(seconds, 0.0) / full)
  return max(1, math.floor(pretrain.num_epochs * scale)), max(1, math.floor(sequence.num_epochs * scale))


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)
  started = time.perf_counter()
  out_dir = os.path.abspath(FLAGS.out_dir)
  os.makedirs(out_dir, exist_ok=True)
  rows = [train_step.measure_in_subprocess(name, FLAGS.timed_steps, FLAGS.compute_dtype) for name in FLAGS.step_cases]
  step_table = train_step.report(rows, FLAGS.timed_steps)
  print(step_table, flush=True)
  seconds = {row["case"]: row["s_per_step"] for row in rows}
  config = vdsm_sprites.get_config()
  config.data.manual_dir = FLAGS.manual_dir
  config.train.compute_dtype = FLAGS.compute_dtype
  left = FLAGS.budget_seconds - (time.perf_counter() - started) - FLAGS.evaluation_seconds
  epochs = fitted_epochs(config, left, seconds["vdsm_sprites_pretrain"], seconds["vdsm_sequence"])
  config.vdsm_pretrain.num_epochs, config.vdsm_sequence.num_epochs = epochs
  config.train.checkpoint_every = 10**9  # the last step of each stage is always kept
  workdir = FLAGS.run_dir
  print(f"Training vdsm_sprites.py for {epochs[0]} + {epochs[1]} epochs (of the paper's 300 + 200) in the {left:.0f} s left.", flush=True)
  train_started = time.perf_counter()
  train.train_and_evaluate(config, workdir)
  train_seconds = time.perf_counter() - train_started
  results = report.evaluate_run(workdir, rounds=FLAGS.evaluation_rounds)
  walls = {stage: max(metric_writer.wall_seconds_by_step(os.path.join(workdir, stage)).values()) for stage in ("pretrain", "sequence")}
  summary = {
      "device": str(jax.devices()[0].device_kind), "jax": jax.__version__, "dtype": FLAGS.compute_dtype, "step_times": rows,
      "epochs": {"pretrain": epochs[0], "sequence": epochs[1]}, "train_seconds": train_seconds, "stage_wall_seconds": walls,
      "total_seconds": time.perf_counter() - started, "results": {k: results[k] for k in ("standard_protocol", "reverse_protocol", "embedding_table", "generation")},
  }
  text = "\n\n".join([
      step_table,
      f"vdsm_sprites.py, {epochs[0]} + {epochs[1]} epochs of 50 steps in {FLAGS.compute_dtype}: {train_seconds:.0f} s with start-up "
      f"(stages {walls['pretrain']:.0f} s + {walls['sequence']:.0f} s); whole check {summary['total_seconds']:.0f} s.",
      report.markdown_table(results),
  ])
  visualize.write_atomically(os.path.join(out_dir, "gpu_check.md"), text.encode())
  visualize.write_atomically(os.path.join(out_dir, "gpu_check.json"), json.dumps(summary, indent=2, default=str).encode())
  print(text)


if __name__ == "__main__":
  app.run(main)
