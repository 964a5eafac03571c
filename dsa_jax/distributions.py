"""Diagonal Gaussians, their KLs and pixel likelihoods, over distrax.

distrax rides on a TFP nightly and has broken on jax upgrades before; everything in
dsa_jax goes through this module so a breakage is fixed in one place and caught by
tests/test_distributions.py (distrax KL against the closed form).
"""

from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp


class Gaussian(NamedTuple):
  """A diagonal Gaussian as plain arrays, so it can live in scans and pytrees."""

  loc: jax.Array  # [..., D]
  scale: jax.Array  # [..., D]

  def distribution(self) -> distrax.MultivariateNormalDiag:
    """The distrax distribution with these parameters."""
    return distrax.MultivariateNormalDiag(self.loc, self.scale)

  def sample(self, key: jax.Array) -> jax.Array:
    """One reparameterised sample."""
    return self.loc + self.scale * jax.random.normal(key, self.loc.shape, self.loc.dtype)

  def log_prob(self, value: jax.Array) -> jax.Array:
    """Log density summed over the last axis."""
    return self.distribution().log_prob(value)


MIN_LOG_SCALE = -10.0
MAX_LOG_SCALE = 5.0


def gaussian_from_raw(raw: jax.Array) -> Gaussian:
  """Splits [..., 2D] network output (any float dtype) into float32 loc and log-scale (clipped) halves."""
  loc, log_scale = jnp.split(raw.astype(jnp.float32), 2, axis=-1)
  return Gaussian(loc, jnp.exp(jnp.clip(log_scale, MIN_LOG_SCALE, MAX_LOG_SCALE)))


def standard_normal(shape: tuple[int, ...], dtype=jnp.float32) -> Gaussian:
  """N(0, I) with the given batch + event shape."""
  return Gaussian(jnp.zeros(shape, dtype), jnp.ones(shape, dtype))


def kl_divergence(q: Gaussian, p: Gaussian) -> jax.Array:
  """Analytic KL(q || p) between diagonal Gaussians, summed over the last axis."""
  return q.distribution().kl_divergence(p.distribution())


def bernoulli_log_prob(logits: jax.Array, pixels: jax.Array) -> jax.Array:
  """Bernoulli log-likelihood of pixels in [0, 1], per pixel (no reduction)."""
  return distrax.Bernoulli(logits=logits, dtype=pixels.dtype).log_prob(pixels)


def gaussian_pixel_log_prob(logits: jax.Array, pixels: jax.Array, scale: float) -> jax.Array:
  """Gaussian log-likelihood with mean sigmoid(logits) and a fixed scale, per pixel."""
  return distrax.Normal(jax.nn.sigmoid(logits), scale).log_prob(pixels)
