r"""Trains a model: `python -m experiments.run --config=experiments/<model>_<data>.py[:variant] --workdir=DIR`.

Rerunning the same command resumes from the newest intact checkpoint in DIR. Any config field
can be overridden, e.g. `--config.train.num_steps=1000` (VDSM: `--config.vdsm_pretrain.num_epochs=10`).

Several processes (hosts) train as one run when each gets the same command with
`--coordinator_address=HOST:PORT` (process 0's host), `--num_processes=N` and its own
`--process_id` (or $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES, $JAX_PROCESS_ID), and DIR is
one folder all of them see.

`--seeds=0,1,2` trains one run per seed, one after another, each in DIR/seed_N with
config.seed = N; rerunning the same command resumes each (finished seeds only rewrite their samples).
"""

from absl import app, flags, logging
from ml_collections import config_flags

from dsa_jax import distributed, train, workdirs
from experiments import entry

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, path[:variant].", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard summaries and samples.")
flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 in a multi-process run (default $JAX_COORDINATOR_ADDRESS).")
flags.DEFINE_integer("num_processes", None, "Processes of a multi-process run (default $JAX_NUM_PROCESSES).")
flags.DEFINE_integer("process_id", None, "This process's index, 0 on the coordinator's host (default $JAX_PROCESS_ID).")
flags.DEFINE_integer("distributed_timeout_seconds", 300, "How long a process waits for the coordinator and the others to join.")
flags.DEFINE_integer("heartbeat_timeout_seconds", 100, "How long a silent process is waited for before the run stops.")
flags.DEFINE_list("seeds", None, "Train one run per seed, one after another, each in WORKDIR/seed_N (config.seed = N).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  distributed.initialize(
      FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id, FLAGS.distributed_timeout_seconds,
      FLAGS.heartbeat_timeout_seconds,
  )
  if FLAGS.seeds is None:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    return
  for seed in entry.parse_seeds(FLAGS.seeds):
    FLAGS.config.seed = seed
    print(f"Seed {seed}: {workdirs.seed_dir(FLAGS.workdir, seed)}", flush=True)
    train.train_and_evaluate(FLAGS.config, workdirs.seed_dir(FLAGS.workdir, seed))


if __name__ == "__main__":
  app.run(entry.guarded(main))
