r"""Scores a trained run's checkpoint chosen on validation with a judge, on the test split: the standard and reverse
protocols, the judge's ceiling, VDSM's Table 1, the study's Table 1, the judge Frechet distance and the reconstruction MSE.

  python -m experiments.evaluate --workdir=RUN [--judge=JUDGE_DIR|cdsvae:PATH] [--rounds=5] [--save_videos]

The checkpoint is the one the run selected on its validation scores (RUN[/STAGE]/selection.json);
--step names another (the results then say it was not chosen on validation); a run without
config.evals is scored at its newest checkpoint, with a note. A RUN holding seed_N folders
(`experiments.run --seeds`) has each seed scored in turn.

--record=NAME also writes results/NAME.json (dsa_jax.evaluation.records: the config, the commands,
every seed's results, the commit and the hardware) from --train_command, the command that trained
RUN; then `python -m experiments.results_page` rebuilds docs/results.md.

Writes RUN[/STAGE]/evaluation/step_N/: results.json, results.md, the sample figures, and with
--save_videos protocol_videos.npz (uint8 videos of both protocols with the labels they should carry).
With --code_source=train_density the protocols draw codes from a mixture fitted to training videos'
codes instead of the priors (is a model's prior where its posterior puts codes?), written to
RUN[/STAGE]/evaluation/step_N_train_density/ and not comparable with published rows.
"""

import shlex
import sys

from absl import app, flags, logging

from dsa_jax import workdirs
from dsa_jax.evaluation import protocols, records, report
from experiments import entry

FLAGS = flags.FLAGS
entry.define_scoring_flags(5, "Prior draws of the protocols (mean and std over them).")
flags.DEFINE_integer("step", None, "Checkpoint step; default the one chosen on validation (else the newest intact one).")
flags.DEFINE_bool("save_videos", False, "Also save the protocols' generated videos as .npz.")
flags.DEFINE_enum("code_source", "prior", report.CODE_SOURCES, "Where the protocols draw codes: the priors (published) or train_density.")
flags.DEFINE_integer("density_components", 32, "Components of the train_density mixture, fitted to --num_train_codes videos.")
flags.DEFINE_string("record", None, "Also write results/RECORD.json: this row's record for docs/results.md.")
flags.DEFINE_string("train_command", None, "With --record: the `python -m experiments.run ...` command that trained RUN.")
flags.DEFINE_enum(
    "reverse", "field", protocols.REVERSE_DRAWS,
    "What the reverse protocol decodes: the prior's per-step means along a sampled rollout (the field's), or samples.",
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.ERROR)  # orbax logs every restore at INFO and read-only ones as warnings
  seed_dirs = workdirs.seed_dirs(FLAGS.workdir)
  if FLAGS.record and not (FLAGS.train_command and "--config=" in FLAGS.train_command):
    raise app.UsageError("--record needs --train_command: the `python -m experiments.run --config=...` that trained RUN.")
  per_seed = []
  for workdir in list(seed_dirs.values()) or [FLAGS.workdir]:
    results = report.evaluate_run(
        workdir, FLAGS.judge, FLAGS.rounds, FLAGS.seed, FLAGS.allow_weak_judge, FLAGS.save_videos, step=FLAGS.step,
        num_test_videos=FLAGS.num_test_videos, num_train_codes=FLAGS.num_train_codes, code_source=FLAGS.code_source,
        density_components=FLAGS.density_components, reverse=FLAGS.reverse,
    )
    per_seed.append(results)
    print(report.markdown_table(results))
  if FLAGS.record:
    evaluate_command = shlex.join(["python", "-m", "experiments.evaluate", *sys.argv[1:]])
    written = records.write_record(records.from_commands(FLAGS.record, FLAGS.train_command, evaluate_command, per_seed))
    print(f"Wrote {written}; rebuild the page: python -m experiments.results_page")


if __name__ == "__main__":
  app.run(entry.guarded(main))
