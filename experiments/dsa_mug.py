r"""DSA on MUG facial expressions (licensed: read from config.data.manual_dir, never downloaded).

  python -m experiments.run --config=experiments/dsa_mug.py --config.data.manual_dir=/path/to/MUG --workdir=/tmp/dsa_mug
  python -m experiments.run --config=experiments/dsa_mug.py:quick --config.data.manual_dir=/path/to/MUG --workdir=...

Without a MUG folder the run stops with the request instructions. The quick variant also runs
on the fake MUG tree of `data_pipelines/mug/fake.py` (as the tests do):
  python -c "from data_pipelines.mug import fake; fake.write_fake_mug_tree('/tmp/fake_mug')"
"""

from experiments import base


def get_config(variant: str | None = None):
  """DSA at the notes' sizes on MUG's 16-frame clips, batch 20; `quick`: small, 8 frames of 32x32, minutes on 2 CPUs."""
  config = base.dsa_paper_schedule(base.get_config())
  config.data.name = "mug"
  config.data.variant = "default"
  config.data.num_frames = 16
  if variant is None:
    return config
  if variant != "quick":
    raise ValueError(f"Unknown variant {variant!r} of dsa_mug.py; use none or 'quick'.")
  return base.dsa_quick(config, dim_f=32, dim_z=8)
