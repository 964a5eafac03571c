"""Reductions of per-example model terms to one scalar loss plus logged metrics.

Models return per-example terms; weights (beta, annealing lambdas) and the batch mean are
applied here and nowhere else.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dsa_jax.models.dsa import DSAOutput
from dsa_jax.models.vdsm import PretrainOutput, SequenceOutput
from dsa_jax.schedules import Weights

Metrics = dict[str, jax.Array]


class DSAWeights(NamedTuple):
  """KL weights of the DSA objective; beta = 1 is the ELBO, beta > 1 a beta-VAE.

  With kl_warmup_steps > 0 both KLs are scaled by a linear ramp from ~0 to 1 over that many
  steps (a common remedy for early posterior collapse); 0 keeps the plain objective.
  """

  beta_f: float = 1.0
  beta_z: float = 1.0
  kl_warmup_steps: int = 0


def kl_warmup(step: jax.Array, warmup_steps: int) -> jax.Array:
  """The KL scale at `step`: (step + 1) / warmup_steps, capped at 1 (1 without warm-up)."""
  if warmup_steps <= 0:
    return jnp.ones((), jnp.float32)
  return jnp.minimum(1.0, (step + 1.0) / warmup_steps)


def dsa_loss(output: DSAOutput, weights: DSAWeights, step: jax.Array = 0) -> tuple[jax.Array, Metrics]:
  """Batch-mean of -log p(x|z,f) + w beta_f KL_f + w beta_z sum_t KL_z_t (w the warm-up
  scale at `step`), with per-term metrics; the ELBO is reported unweighted."""
  reconstruction = -output.log_likelihood  # [B]
  kl_z = output.kl_z.sum(axis=-1)  # [B]
  scale = kl_warmup(step, weights.kl_warmup_steps)
  loss = reconstruction + scale * (weights.beta_f * output.kl_f + weights.beta_z * kl_z)  # [B]
  elbo = output.log_likelihood - output.kl_f - kl_z  # [B]
  metrics = {
      "loss": loss,
      "elbo": elbo,
      "reconstruction": reconstruction,
      "kl_f": output.kl_f,
      "kl_z": kl_z,
  }
  means = {name: jnp.mean(value) for name, value in metrics.items()}
  return jnp.mean(loss), {**means, "kl_weight": scale}


def vdsm_pretrain_loss(output: PretrainOutput, weights: Weights) -> tuple[jax.Array, Metrics]:
  """Batch-mean of Eq. 7: -log p(x|z,s) + lambda_z sum_t KL_z_t + lambda_s KL_s, with metrics."""
  reconstruction = -output.log_likelihood  # [B]
  kl_z = output.kl_z.sum(axis=-1)  # [B]
  loss = reconstruction + weights.lambda_z * kl_z + weights.lambda_s * output.kl_s  # [B]
  metrics = {
      "loss": loss,
      "elbo": output.log_likelihood - kl_z - output.kl_s,
      "reconstruction": reconstruction,
      "kl_z": kl_z,
      "kl_s": output.kl_s,
  }
  means = {name: jnp.mean(value) for name, value in metrics.items()}
  return jnp.mean(loss), {**means, "lambda_z": weights.lambda_z, "lambda_s": weights.lambda_s, "tau": weights.tau}


def vdsm_sequence_loss(output: SequenceOutput, weights: Weights) -> tuple[jax.Array, Metrics]:
  """Batch-mean of Eq. 4: -log p(x|z,s) + lambda_d KL_d + lambda_s KL_s + lambda_z sum_t KL_z_t."""
  reconstruction = -output.log_likelihood  # [B]
  kl_z = output.kl_z.sum(axis=-1)  # [B]
  loss = reconstruction + weights.lambda_d * output.kl_d + weights.lambda_s * output.kl_s + weights.lambda_z * kl_z
  metrics = {
      "loss": loss,
      "elbo": output.log_likelihood - output.kl_d - output.kl_s - kl_z,
      "reconstruction": reconstruction,
      "kl_z": kl_z,
      "kl_s": output.kl_s,
      "kl_d": output.kl_d,
  }
  means = {name: jnp.mean(value) for name, value in metrics.items()}
  named_weights = {"lambda_z": weights.lambda_z, "lambda_s": weights.lambda_s, "lambda_d": weights.lambda_d, "tau": weights.tau}
  return jnp.mean(loss), {**means, **named_weights}
