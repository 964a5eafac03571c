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
  config = base.get_config()
  config.model = "judge"
  config.data.name = "mug"
  config.data.variant = "clips20"
  config.data.num_frames = 20
  config.data.validation_videos = 100
  config.judge.heads = (("expression", 6),)
  config.judge.dynamic_heads = ("expression",)
  config.train.num_steps = 1500
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  config.train.log_every = 50
  config.train.checkpoint_every = 250
  config.train.max_checkpoints = 6
  if variant is None:
    return config
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of judge_mug.py; use none or 'quick'.")
  config.data.variant = "default"
  config.data.num_frames = 8
  config.data.image_size = 32
  config.data.validation_videos = 6
  config.judge.channels = (8, 16, 16)
  config.judge.feature_size = 32
  config.judge.lstm_size = 16
  config.train.num_steps = 60
  config.train.batch_size = 8
  config.train.checkpoint_every = 30
  return config
