r"""Training quality in bfloat16 against float32: swap statistics over seeds and the first steps' losses; prints tables.

  python -m benchmarks.precision [--seeds=0,1,2] [--vdsm_steps=20] [--workdir=DIR]

Part 1 trains dsa_pendulum.py:quick once per seed in each compute dtype and reports its swap
statistics (the README's main job) with their spread over seeds. Part 2 trains the first
--vdsm_steps steps of each stage of vdsm_sprites.py:quick (Sprites read from --sprites_dir) in
both dtypes from the same initial params and batches (both sequence stages from the first dtype's
pretraining), and reports the largest relative gap between the two loss curves.
"""

import json
import os
import tempfile

import numpy as np
from absl import app, flags

from benchmarks import tables
from dsa_jax import metric_writer, runs, train
from dsa_jax.evaluation import evaluators
from experiments import dsa_pendulum, vdsm_sprites

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of the pendulum :quick runs; empty skips part 1.")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Compute dtypes to compare.")
flags.DEFINE_integer("vdsm_steps", 20, "Steps of each VDSM Sprites :quick stage; 0 skips part 2.")
flags.DEFINE_string("sprites_dir", "../shared/data/lpc_sprites", "LPC layer sheets (config.data.manual_dir).")
flags.DEFINE_string("data_dir", None, "TFDS data dir; default: TFDS's own.")
flags.DEFINE_string("workdir", None, "Where the runs go; default: a new temporary folder.")

SWAP_STATISTICS = (
    "colour_follows_static_source", "colour_follows_dynamic_source", "swing_correlation_with_dynamic_source",
    "swing_correlation_with_static_source",
)


def pendulum_quick(seed: int, dtype: str, workdir: str) -> dict:
  """The swap statistics and wall time of one dsa_pendulum.py:quick run."""
  config = dsa_pendulum.get_config("quick")
  config.seed, config.train.compute_dtype, config.data.data_dir = seed, dtype, FLAGS.data_dir
  train.train_and_evaluate(config, workdir)
  with open(os.path.join(runs.sample_dir(workdir, config.train.num_steps), evaluators.EVALUATION_FILE)) as file:
    scores = json.load(file)
  steps_per_second = metric_writer.read_metrics(workdir)[config.train.num_steps]["steps_per_second"]
  return {"dtype": dtype, "seed": seed, **{name: scores[name] for name in SWAP_STATISTICS}, "steps_per_s": steps_per_second}


def spread(rows: list[dict]) -> list[dict]:
  """Per dtype: the min, mean and max over seeds of each swap statistic."""
  summary = []
  for dtype in FLAGS.dtypes:
    values = {name: [row[name] for row in rows if row["dtype"] == dtype] for name in SWAP_STATISTICS}
    summary.append({
        "dtype": dtype,
        **{name: f"{np.mean(v):.3f} [{min(v):.3f}, {max(v):.3f}]" for name, v in values.items()},
    })
  return summary


def vdsm_losses(dtype: str, workdir: str, init_from: str | None) -> dict[str, list[float]]:
  """The loss of every step of both vdsm_sprites.py:quick stages, cut to --vdsm_steps steps each; the
  sequence stage starts from init_from's pretraining (None: this run's own)."""
  config = vdsm_sprites.get_config("quick")
  config.train.compute_dtype, config.data.data_dir, config.data.manual_dir = dtype, FLAGS.data_dir, FLAGS.sprites_dir
  config.init_from = init_from
  for stage in (config.vdsm_pretrain, config.vdsm_sequence):
    stage.num_epochs, stage.steps_per_epoch = 1, FLAGS.vdsm_steps
  config.train.log_every = 1
  train.train_and_evaluate(config, workdir)
  return {
      stage: [metrics["loss"] for _, metrics in sorted(metric_writer.read_metrics(os.path.join(workdir, stage)).items())]
      for stage in ("pretrain", "sequence")
  }


def main(argv):
  del argv
  root = FLAGS.workdir or tempfile.mkdtemp(prefix="dsa_jax_precision_")
  seeds = [int(seed) for seed in FLAGS.seeds if seed]
  if seeds:
    rows = [
        pendulum_quick(seed, dtype, os.path.join(root, f"pendulum_{dtype}_{seed}")) for dtype in FLAGS.dtypes for seed in seeds
    ]
    print(f"\ndsa_pendulum.py:quick swap statistics per seed (runs in {root})")
    print(tables.markdown(["dtype", "seed", *SWAP_STATISTICS, "steps_per_s"], rows))
    print("\nmean [min, max] over seeds")
    print(tables.markdown(["dtype", *SWAP_STATISTICS], spread(rows)))
  if FLAGS.vdsm_steps:
    reference_dtype, other_dtype = FLAGS.dtypes[:2]
    reference_dir = os.path.join(root, f"vdsm_sprites_{reference_dtype}")
    reference = vdsm_losses(reference_dtype, reference_dir, None)
    other = vdsm_losses(other_dtype, os.path.join(root, f"vdsm_sprites_{other_dtype}"), reference_dir)
    gaps = [
        {"stage": stage, "steps": len(reference[stage]), "first_loss": reference[stage][0], "last_loss": reference[stage][-1],
         "max_relative_gap": float(np.max(np.abs(np.subtract(other[stage], reference[stage])) / np.abs(reference[stage])))}
        for stage in ("pretrain", "sequence")
    ]
    print(
        f"\nvdsm_sprites.py:quick loss curves, {other_dtype} against {reference_dtype} (same init and batches; both "
        f"sequence stages start from the {reference_dtype} pretraining)"
    )
    print(tables.markdown(["stage", "steps", "first_loss", "last_loss", "max_relative_gap"], gaps))


if __name__ == "__main__":
  app.run(main)
