"""distrax behind dsa_jax.distributions against closed forms and Monte Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dsa_jax import distributions as dist


def closed_form_kl(q_loc, q_scale, p_loc, p_scale):
  """KL between diagonal Gaussians, summed over the last axis, in numpy float64."""
  q_loc, q_scale, p_loc, p_scale = (np.asarray(a, np.float64) for a in (q_loc, q_scale, p_loc, p_scale))
  per_dim = np.log(p_scale / q_scale) + (q_scale**2 + (q_loc - p_loc) ** 2) / (2 * p_scale**2) - 0.5
  return per_dim.sum(-1)


@pytest.fixture
def gaussians():
  keys = jax.random.split(jax.random.key(0), 4)
  shape = (3, 7)
  q = dist.Gaussian(jax.random.normal(keys[0], shape), jnp.exp(0.3 * jax.random.normal(keys[1], shape)))
  p = dist.Gaussian(jax.random.normal(keys[2], shape), jnp.exp(0.3 * jax.random.normal(keys[3], shape)))
  return q, p


def test_kl_matches_closed_form(gaussians):
  q, p = gaussians
  np.testing.assert_allclose(dist.kl_divergence(q, p), closed_form_kl(*q, *p), rtol=1e-5, atol=1e-6)


def test_kl_to_standard_normal_closed_form():
  q = dist.Gaussian(jnp.array([[0.5, -1.0]]), jnp.array([[2.0, 0.25]]))
  expected = 0.5 * np.sum([2.0**2 + 0.5**2 - 1 - np.log(4.0), 0.25**2 + 1.0 - 1 - np.log(0.0625)])
  np.testing.assert_allclose(dist.kl_divergence(q, dist.standard_normal((1, 2))), [expected], rtol=1e-6)


def test_kl_matches_monte_carlo(gaussians):
  q, p = gaussians
  samples = q.loc + q.scale * jax.random.normal(jax.random.key(1), (200_000, *q.loc.shape))
  monte_carlo = jnp.mean(q.log_prob(samples) - p.log_prob(samples), axis=0)
  analytic = dist.kl_divergence(q, p)
  standard_error = jnp.std(q.log_prob(samples) - p.log_prob(samples), axis=0) / np.sqrt(200_000)
  assert np.all(np.abs(monte_carlo - analytic) < 5 * standard_error + 1e-3)


def test_gaussian_log_prob_and_sample_moments():
  g = dist.Gaussian(jnp.array([1.0, -2.0]), jnp.array([0.5, 3.0]))
  x = jnp.array([0.2, 1.0])
  expected = np.sum(-0.5 * ((x - g.loc) / g.scale) ** 2 - np.log(g.scale) - 0.5 * np.log(2 * np.pi))
  np.testing.assert_allclose(g.log_prob(x), expected, rtol=1e-6)
  samples = jax.vmap(g.sample)(jax.random.split(jax.random.key(2), 50_000))
  np.testing.assert_allclose(samples.mean(0), g.loc, atol=0.05)
  np.testing.assert_allclose(samples.std(0), g.scale, rtol=0.02)


def test_gaussian_from_raw_splits_and_clips():
  raw = jnp.array([[1.0, 2.0, 0.5, -100.0]])
  g = dist.gaussian_from_raw(raw)
  np.testing.assert_allclose(g.loc, [[1.0, 2.0]])
  np.testing.assert_allclose(g.scale, [[np.exp(0.5), np.exp(dist.MIN_LOG_SCALE)]], rtol=1e-6)


def test_bernoulli_log_prob_on_continuous_pixels():
  logits = jnp.array([-2.0, 0.0, 3.0])
  pixels = jnp.array([0.1, 0.5, 1.0])
  p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
  expected = pixels * np.log(p) + (1 - pixels) * np.log(1 - p)
  np.testing.assert_allclose(dist.bernoulli_log_prob(logits, pixels), expected, rtol=1e-6)


def test_gaussian_pixel_log_prob():
  logits, pixels, scale = jnp.array([0.0, 2.0]), jnp.array([0.3, 0.9]), 0.1
  mean = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
  expected = -0.5 * ((pixels - mean) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)
  np.testing.assert_allclose(dist.gaussian_pixel_log_prob(logits, pixels, scale), expected, rtol=1e-5)
