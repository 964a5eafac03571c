r"""VDSM on MUG facial expressions (licensed: read from config.data.manual_dir, never downloaded).

  python -m experiments.run --config=experiments/vdsm_mug.py --config.data.manual_dir=/path/to/MUG --workdir=/tmp/vdsm_mug
  python -m experiments.run --config=experiments/vdsm_mug.py:quick --config.data.manual_dir=/path/to/MUG --workdir=...

Without a MUG folder the run stops with the download instructions. The quick variant also
runs on the fake MUG tree of `data_pipelines/mug/fake.py` (as the tests do):
  python -c "from data_pipelines.mug import fake; fake.write_fake_mug_tree('/tmp/fake_mug')"
"""

from experiments import base
from experiments.base import vdsm_quick


def get_config(variant: str | None = None):
  """Supplementary Tables 1-2 for MUG; `quick`: both stages in minutes on 2 CPU cores."""
  config = base.get_config()
  config.model = "vdsm"
  config.data.name = "mug"
  config.data.variant = "clips20"
  config.data.num_frames = 20
  config.vdsm.dim_s = 15
  config.vdsm_pretrain.learning_rate = 1e-3
  config.vdsm_pretrain.batch_size = 20
  config.vdsm_pretrain.num_epochs = 250
  config.vdsm_sequence.learning_rate = 1e-3
  config.vdsm_sequence.batch_size = 20
  config.vdsm_sequence.num_epochs = 200
  config.train.log_every = 50
  config.train.image_every = 500
  config.train.checkpoint_every = 500
  config.sample.num_frames = 40
  if variant is None:
    return config
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of vdsm_mug.py; use none or 'quick'.")
  vdsm_quick(config)
  config.data.variant = "default"
  config.vdsm.dim_s = 6
  config.vdsm_pretrain.batch_size = 8
  config.vdsm_sequence.batch_size = 8
  config.sample.num_videos = 4
  config.sample.num_evaluation_videos = 4
  return config
