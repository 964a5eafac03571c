"""Every config field, with defaults; model x dataset files only override (locked).

A misspelt field in a config file or on the command line raises an error naming it.
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
  """The base config, locked: overriding works, adding fields raises."""
  config = config_dict.ConfigDict()
  config.model = "dsa"
  config.seed = 0

  config.data = config_dict.ConfigDict()
  config.data.name = "pendulum"
  config.data.variant = config_dict.placeholder(str)  # TFDS builder config; None = default
  config.data.data_dir = config_dict.placeholder(str)  # None = $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.data.manual_dir = config_dict.placeholder(str)  # source files of Sprites / MNIST / MUG
  config.data.num_frames = 16
  config.data.image_size = config_dict.placeholder(int)  # mean-pool frames to this size; None = native

  config.dsa = config_dict.ConfigDict()
  config.dsa.dim_f = 256
  config.dsa.dim_z = 32
  config.dsa.dim_h = 256
  config.dsa.dim_hidden = 512
  config.dsa.num_channels = 256
  config.dsa.posterior = "factorised"  # or "full"
  config.dsa.prior = "stable"  # or "lstm"
  config.dsa.likelihood = "bernoulli"  # or "gaussian"
  config.dsa.gaussian_scale = 1.0
  config.dsa.posterior_init_log_scale = 0.0  # < 0 starts q(f), q(z) less noisy

  config.loss = config_dict.ConfigDict()
  config.loss.beta_f = 1.0
  config.loss.beta_z = 1.0
  config.loss.kl_warmup_steps = 0  # > 0: KL weights ramp linearly from ~0 to 1 over these steps

  config.train = config_dict.ConfigDict()
  config.train.num_steps = 50_000
  config.train.batch_size = 20
  config.train.learning_rate = 2e-4
  config.train.grad_clip_norm = config_dict.placeholder(float)
  config.train.log_every = 50
  config.train.image_every = 1000
  config.train.checkpoint_every = 1000
  config.train.max_checkpoints = 3

  config.sample = config_dict.ConfigDict()
  config.sample.num_videos = 8  # test videos shown in images and sample files
  config.sample.num_evaluation_videos = 64  # test videos scored at the end (e.g. pendulum swaps)
  config.sample.num_frames = config_dict.placeholder(int)  # generation horizon; None = data.num_frames

  config.lock()
  return config
