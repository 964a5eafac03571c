r"""The MUG judge: the expression (6) of real training clips.

  python -m experiments.train_judge --config=experiments/judge_mug.py --config.data.manual_dir=/path/to/MUG --workdir=runs/judge_mug
  python -m experiments.train_judge --config=experiments/judge_mug.py:quick --config.data.manual_dir=/tmp/fake_mug --workdir=...

MUG's test subjects are held out of training (15% of subjects, data_pipelines/mug), so a
subject head could only ever score chance on test videos and would make the judge refuse to
score: the judge has the expression head alone, as the field's MUG protocol uses. No MUG judge
ships (MUG is licence-gated); train one on your copy. The quick variant runs on the fake tree
of data_pipelines/mug/fake.py.
"""

from experiments import base


def get_config(variant: str | None = None):
  """A judge for 64x64 MUG clips; `quick`: a tiny 32x32 judge (the fake tree in tests) in about a minute."""
  config = base.judge_config("mug", (("expression", 6),), ("expression",), num_frames=20, num_steps=1500)
  config.data.variant = "clips20"
  config.data.validation_videos = 100
  config.train.checkpoint_every = 250
  config.train.max_checkpoints = 6
  if variant is None:
    return config
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of judge_mug.py; use none or 'quick'.")
  config.data.variant = "default"
  config.data.num_frames = 8
  return base.tiny_judge(config, num_steps=60, batch_size=8, validation_videos=6, checkpoint_every=30)
