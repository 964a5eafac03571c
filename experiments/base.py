"""Every config field, with defaults; model x dataset files only override (locked).

A misspelt field in a config file or on the command line raises an error naming it.
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
  """The base config, locked: overriding works, adding fields raises."""
  config = config_dict.ConfigDict()
  config.model = "dsa"  # "vdsm", or "judge" (a classifier for evaluation)
  config.seed = 0

  config.data = config_dict.ConfigDict()
  config.data.name = "pendulum"
  config.data.variant = config_dict.placeholder(str)  # TFDS builder config; None = default
  config.data.data_dir = config_dict.placeholder(str)  # None = $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.data.manual_dir = config_dict.placeholder(str)  # source files of Sprites / MNIST / MUG
  config.data.random_crop = True  # train on a random window of num_frames of longer clips
  config.data.num_frames = 16
  config.data.image_size = config_dict.placeholder(int)  # mean-pool frames to this size; None = native
  config.data.validation_videos = 0  # train videos held out of training (judges select checkpoints on them)

  config.dsa = config_dict.ConfigDict()
  config.dsa.dim_f = 256
  config.dsa.dim_z = 32
  config.dsa.dim_h = 256
  config.dsa.dim_hidden = 512
  config.dsa.num_channels = 256
  config.dsa.channels_per_resolution = ()  # conv widths at H, H/2, ..., 4 (narrow at high resolution); () = num_channels at each
  config.dsa.posterior = "factorised"  # or "full"
  config.dsa.prior = "stable"  # or "lstm"
  config.dsa.likelihood = "bernoulli"  # or "gaussian"
  config.dsa.gaussian_scale = 1.0
  config.dsa.posterior_init_log_scale = 0.0  # < 0 starts q(f), q(z) less noisy

  config.stage = "both"  # VDSM: "pretrain", "sequence" or "both" (pretrain, then sequence)
  config.init_from = config_dict.placeholder(str)  # VDSM sequence stage: a workdir holding a pretrain run

  config.vdsm = config_dict.ConfigDict()  # supplementary Table 2 (Sprites) and SPEC
  config.vdsm.dim_z = 30
  config.vdsm.dim_s = 40
  config.vdsm.dim_d = 50
  config.vdsm.rnn_size = 512
  config.vdsm.rnn_layers = 3
  config.vdsm.combiner_size = 512
  config.vdsm.transition_size = 512
  config.vdsm.identity_hidden = 128
  config.vdsm.encoder_channels = (32, 32, 64, 64, 256)
  config.vdsm.decoder_channels = (512, 256, 128, 64)
  config.vdsm.encoder_negative_slope = 0.01
  config.vdsm.group_size = 2  # pretraining: clips of one identity per batch element

  config.vdsm_pretrain = config_dict.ConfigDict()  # stage 1 (Eq. 7), supplementary Table 1 / Fig. 1
  config.vdsm_pretrain.learning_rate = 8e-3
  config.vdsm_pretrain.batch_size = 20
  config.vdsm_pretrain.num_epochs = 300
  config.vdsm_pretrain.steps_per_epoch = 50
  config.vdsm_pretrain.lambda_z_schedule = "cosine"  # or "spline" (the public code's, dips to 0.005)
  config.vdsm_pretrain.lambda_z_start = 30.0
  config.vdsm_pretrain.lambda_z_end = 1.0
  config.vdsm_pretrain.lambda_s_start = 0.1
  config.vdsm_pretrain.lambda_s_end = 1.0
  config.vdsm_pretrain.tau_start = 1.0
  config.vdsm_pretrain.tau_end = 10.0

  config.vdsm_sequence = config_dict.ConfigDict()  # stage 2 (Eq. 4), supplementary Table 1 / Fig. 2
  config.vdsm_sequence.learning_rate = 1e-3
  config.vdsm_sequence.batch_size = 20
  config.vdsm_sequence.num_epochs = 200
  config.vdsm_sequence.steps_per_epoch = 50
  config.vdsm_sequence.lambda_z_start = 0.1
  config.vdsm_sequence.lambda_z_end = 1.0
  config.vdsm_sequence.lambda_d_start = 0.1
  config.vdsm_sequence.lambda_d_end = 1.0
  config.vdsm_sequence.lambda_s = 1.0
  config.vdsm_sequence.tau = 10.0

  config.judge = config_dict.ConfigDict()  # a video classifier with a head per label (experiments.train_judge)
  config.judge.heads = (("action", 9),)  # (label, number of classes) pairs
  config.judge.dynamic_heads = ("action",)  # the heads that read the dynamics; the others read the static code
  config.judge.channels = (32, 64, 128, 128)  # one stride-2 conv per halving of the frame down to 4x4
  config.judge.feature_size = 128
  config.judge.lstm_size = 128
  config.judge.normalization = "layer"  # after each conv: "layer" (per position) or "group" (per frame, for sparse frames)
  config.judge.pooled_heads = ()  # heads reading the time-mean of the bi-LSTM outputs (not its end states)
  config.judge.counted_heads = ()  # sorted classes of one multiset (digit_1 <= digit_2), counted in every frame

  config.loss = config_dict.ConfigDict()
  config.loss.beta_f = 1.0
  config.loss.beta_z = 1.0
  config.loss.kl_warmup_steps = 0  # > 0: KL weights ramp linearly from ~0 to 1 over these steps

  config.train = config_dict.ConfigDict()  # VDSM schedules its stages in vdsm_pretrain / vdsm_sequence instead
  config.train.num_steps = config_dict.placeholder(int)
  config.train.batch_size = config_dict.placeholder(int)
  config.train.learning_rate = config_dict.placeholder(float)
  config.train.grad_clip_norm = config_dict.placeholder(float)
  config.train.cooldown_steps = 0  # the learning rate falls to 0 on a half-cosine over the last steps (not VDSM)
  config.train.compute_dtype = "float32"  # or "bfloat16": activations and matmul/conv operands; params, optimizer and losses stay float32
  config.train.log_every = 50
  config.train.image_every = 1000
  config.train.checkpoint_every = 1000
  config.train.max_checkpoints = 3  # at least 1, counting steps on the checkpoint_every cadence; the newest is always kept
  config.train.model_parallelism = 1  # devices along the mesh's "model" axis: large parameters split over them
  config.train.shard_min_elements = 1 << 18  # leaves this large or larger are split when model_parallelism > 1

  config.sample = config_dict.ConfigDict()
  config.sample.num_videos = 8  # test videos shown in images and sample files
  config.sample.num_evaluation_videos = 64  # test videos scored at the end (e.g. pendulum swaps)
  config.sample.num_density_videos = 512  # training videos whose codes evaluators fit an ex-post density to
  config.sample.num_frames = config_dict.placeholder(int)  # generation horizon; None = data.num_frames
  config.sample.rollout_temperature = 1.0  # noise scale of the per-frame prior in samples (codecs.py); 0: its means

  config.evaluators = ()  # types in dsa_jax.evaluation.evaluators.TYPES, scored on test videos at the end of training
  # Scored on the validation split during training: {name: {type, every_steps, num_videos, rounds}} (validation_eval).
  config.evals = config_dict.ConfigDict()
  config.select = config_dict.ConfigDict()  # the reported checkpoint, chosen on config.evals' scores (dsa_jax.selection)
  config.select.metric = "validation/standard_action_accuracy"  # EVALUATOR/SCORE; unused unless config.evals has EVALUATOR
  config.select.mode = "max"  # or "min"; ties go to the later step

  config.lock()
  return config


def validation_eval(
    config: config_dict.ConfigDict, validation_videos: int, every_steps: int, num_videos: int, rounds: int = 1,
    judge: str | None = None,
) -> config_dict.ConfigDict:
  """Holds validation_videos out of training and scores the protocols on num_videos of them every every_steps."""
  config.data.validation_videos = validation_videos
  evaluation = {"type": "protocols", "every_steps": every_steps, "num_videos": num_videos, "rounds": rounds}
  if judge is not None:
    evaluation["judge"] = judge
  config.evals = config_dict.ConfigDict({"validation": evaluation})
  return config


def dsa_paper_schedule(config: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """The DSA notes' optimisation: 50k Adam steps of batch 20 at 2e-4."""
  config.train.num_steps = 50_000
  config.train.batch_size = 20
  config.train.learning_rate = 2e-4
  return config


def dsa_quick(config: config_dict.ConfigDict, dim_f: int, dim_z: int) -> config_dict.ConfigDict:
  """The small DSA of every `:quick` variant: 8 frames of 32x32, narrow layers, 1000 steps of 8 at 2e-3."""
  config.data.num_frames = 8
  config.data.image_size = 32
  config.dsa.dim_f = dim_f
  config.dsa.dim_z = dim_z
  config.dsa.dim_h = 64
  config.dsa.dim_hidden = 128
  config.dsa.num_channels = 32
  config.dsa.posterior_init_log_scale = -4.0
  config.loss.kl_warmup_steps = 600
  config.train.num_steps = 1000
  config.train.batch_size = 8
  config.train.learning_rate = 2e-3
  config.train.log_every = 100
  config.train.image_every = 500
  config.train.checkpoint_every = 500
  return config


def judge_config(dataset: str, heads, dynamic_heads, num_frames: int, num_steps: int) -> config_dict.ConfigDict:
  """A judge of `heads` on a dataset: batch 32 at learning rate 1e-3 for num_steps, a checkpoint every 500."""
  config = get_config()
  config.model = "judge"
  config.data.name = dataset
  config.data.num_frames = num_frames
  config.judge.heads = tuple(heads)
  config.judge.dynamic_heads = tuple(dynamic_heads)
  config.train.num_steps = num_steps
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  config.train.log_every = 50
  config.train.checkpoint_every = 500
  return config


def tiny_judge(
    config: config_dict.ConfigDict, num_steps: int, batch_size: int, validation_videos: int, checkpoint_every: int
) -> config_dict.ConfigDict:
  """The judge of every `:quick` variant: 32x32 frames, narrow layers, a checkpoint chosen on validation videos."""
  config.data.image_size = 32
  config.data.validation_videos = validation_videos
  config.judge.channels = (8, 16, 16)
  config.judge.feature_size = 32
  config.judge.lstm_size = 16
  config.train.num_steps = num_steps
  config.train.batch_size = batch_size
  config.train.checkpoint_every = checkpoint_every
  return config


def vdsm_cpu(config: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """The narrowed 64x64 VDSM of every `:cpu` variant: one 256-wide RNN layer, 256-wide combiner and transition, 128-feature encoder."""
  config.vdsm.rnn_size = 256
  config.vdsm.rnn_layers = 1
  config.vdsm.combiner_size = 256
  config.vdsm.transition_size = 256
  config.vdsm.encoder_channels = (32, 32, 64, 64, 128)
  config.vdsm.decoder_channels = (256, 128, 64, 32)
  config.vdsm_pretrain.num_epochs = 30
  config.vdsm_sequence.num_epochs = 40
  config.train.checkpoint_every = 400
  config.train.max_checkpoints = 5  # every checkpoint of a stage of up to 2000 steps kept, for the learning curves
  return config


def vdsm_quick(config: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """The small VDSM of every `:quick` variant: 8 frames of 16x16, narrow layers, 6 + 6 short epochs."""
  config.data.num_frames = 8
  config.data.image_size = 16
  config.vdsm.dim_z = 8
  config.vdsm.dim_d = 8
  config.vdsm.rnn_size = 64
  config.vdsm.rnn_layers = 1
  config.vdsm.combiner_size = 64
  config.vdsm.transition_size = 64
  config.vdsm.identity_hidden = 32
  config.vdsm.encoder_channels = (16, 32, 64)
  config.vdsm.decoder_channels = (64, 32)
  config.vdsm_pretrain.learning_rate = 2e-3
  config.vdsm_pretrain.batch_size = 16
  config.vdsm_pretrain.num_epochs = 6
  config.vdsm_sequence.batch_size = 16
  config.vdsm_sequence.num_epochs = 6
  config.sample.num_frames = 16
  config.train.log_every = 100
  config.train.image_every = 300
  config.train.checkpoint_every = 150
  return config
