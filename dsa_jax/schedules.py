"""Training schedules, pure functions of the training step (jit-safe): a learning-rate cooldown, and VDSM's annealing.

The cooldown keeps the learning rate until the last steps of a stage, then lowers it along a
half-cosine towards 0. Before it starts its factor is exactly 1, so a run with a cooldown is the
run without one up to there, and a cooldown can be branched from any checkpoint before it.

VDSM's weights change once per epoch (steps_per_epoch batches, 50 in the paper). Pretraining
(supplementary Fig. 1): lambda_z 30 -> 1, lambda_s 0.1 -> 1 and the inverse temperature
tau 1 -> 10 on half-cosine ramps over the stage's epochs. Sequence training (Fig. 2):
lambda_z and lambda_d 0.1 -> 1 by quadratic interpolation (monotone: slow start),
lambda_s 1, tau 10. The public code's lambda_z for pretraining, a quadratic spline that
dips to 0.005 mid-training, is the `spline` option.
"""

from typing import NamedTuple

import jax.numpy as jnp
import ml_collections

from dsa_jax import visualize

SPLINE_DIP = 0.005


class Weights(NamedTuple):
  """The KL weights and inverse temperature at one step."""

  lambda_z: jnp.ndarray
  lambda_s: jnp.ndarray
  lambda_d: jnp.ndarray
  tau: jnp.ndarray


def progress(step, steps_per_epoch: int, num_epochs: int):
  """Fraction of the stage's epochs completed at the start of the step's epoch, in [0, 1]."""
  epoch = jnp.floor_divide(jnp.asarray(step, jnp.float32), steps_per_epoch)
  return jnp.clip(epoch / max(num_epochs - 1, 1), 0.0, 1.0)


def half_cosine(start: float, end: float, fraction):
  """start -> end along half a cosine period (flat at both ends)."""
  return start + (end - start) * 0.5 * (1.0 - jnp.cos(jnp.pi * fraction))


def quadratic(start: float, end: float, fraction):
  """start -> end along fraction^2 (monotone, slow start)."""
  return start + (end - start) * fraction**2


def dipping_spline(start: float, end: float, fraction):
  """start -> SPLINE_DIP at mid-training -> end, two quadratic pieces with zero slope at the dip."""
  first = SPLINE_DIP + (start - SPLINE_DIP) * (1.0 - 2.0 * fraction) ** 2
  second = SPLINE_DIP + (end - SPLINE_DIP) * (2.0 * fraction - 1.0) ** 2
  return jnp.where(fraction < 0.5, first, second)


def cooldown(step, num_steps: int, cooldown_steps: int):
  """The learning-rate factor at a (0-based) step: 1 before the last cooldown_steps of num_steps, then 1 -> 0 on a half-cosine."""
  started = (jnp.asarray(step, jnp.float32) - (num_steps - cooldown_steps)) / max(cooldown_steps, 1)
  return half_cosine(1.0, 0.0, jnp.clip(started, 0.0, 1.0))


def pretrain_weights(step, stage: ml_collections.ConfigDict) -> Weights:
  """lambda_z, lambda_s and tau of pretraining at a step (lambda_d unused: 0)."""
  fraction = progress(step, stage.steps_per_epoch, stage.num_epochs)
  ramp = {"cosine": half_cosine, "spline": dipping_spline}[stage.lambda_z_schedule]
  return Weights(
      lambda_z=ramp(stage.lambda_z_start, stage.lambda_z_end, fraction),
      lambda_s=half_cosine(stage.lambda_s_start, stage.lambda_s_end, fraction),
      lambda_d=jnp.zeros_like(fraction),
      tau=half_cosine(stage.tau_start, stage.tau_end, fraction),
  )


def sequence_weights(step, stage: ml_collections.ConfigDict) -> Weights:
  """lambda_z, lambda_d (quadratic ramps), lambda_s and tau (constant) of sequence training."""
  fraction = progress(step, stage.steps_per_epoch, stage.num_epochs)
  return Weights(
      lambda_z=quadratic(stage.lambda_z_start, stage.lambda_z_end, fraction),
      lambda_s=jnp.full_like(fraction, stage.lambda_s),
      lambda_d=quadratic(stage.lambda_d_start, stage.lambda_d_end, fraction),
      tau=jnp.full_like(fraction, stage.tau),
  )


def plot(config: ml_collections.ConfigDict, path: str) -> str:
  """Plots both stages' schedules over their steps to a PNG (cf. supplementary Figs. 1-2)."""
  figure, axes = visualize.pyplot().subplots(1, 2, figsize=(11, 4))
  for axis, (title, stage, weights_at) in zip(
      axes,
      (("pretraining", config.vdsm_pretrain, pretrain_weights), ("sequence training", config.vdsm_sequence, sequence_weights)),
  ):
    steps = jnp.arange(stage.num_epochs * stage.steps_per_epoch)
    weights = weights_at(steps, stage)
    epochs = steps / stage.steps_per_epoch
    for name in ("lambda_z", "lambda_s", "lambda_d", "tau"):
      if name == "lambda_d" and title == "pretraining":
        continue
      axis.plot(epochs, getattr(weights, name), label=name)
    axis.set_yscale("symlog", linthresh=0.01)
    axis.set_xlabel("epoch")
    axis.set_title(f"VDSM {title}")
    axis.legend()
  figure.tight_layout()
  return visualize.save_figure(figure, path, dpi=100)
