"""The ex-post code density: EM on a known mixture, its monotone likelihood, and codes drawn from it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dsa_jax import code_density, sampling
from dsa_jax.codecs import Codes


def two_clusters(count: int = 3000) -> np.ndarray:
  """[N, 3] from 0.3 N([-4, 0, 2], diag(0.5^2)) + 0.7 N([3, 1, -1], diag(1, 0.2^2, 2^2))."""
  rng = np.random.default_rng(0)
  first = rng.random(count) < 0.3
  points = np.where(
      first[:, None],
      np.array([-4.0, 0.0, 2.0]) + 0.5 * rng.standard_normal((count, 3)),
      np.array([3.0, 1.0, -1.0]) + np.array([1.0, 0.2, 2.0]) * rng.standard_normal((count, 3)),
  )
  return points.astype(np.float32)


def test_em_recovers_a_two_component_mixture_and_never_lowers_the_likelihood():
  log_weights, components, trace = code_density.fit(jnp.asarray(two_clusters()), jax.random.key(1), 2, 50)
  order = np.argsort(np.asarray(components.loc[:, 0]))
  np.testing.assert_allclose(np.exp(log_weights)[order], [0.3, 0.7], atol=0.02)
  np.testing.assert_allclose(components.loc[order], [[-4.0, 0.0, 2.0], [3.0, 1.0, -1.0]], atol=0.1)
  np.testing.assert_allclose(components.scale[order], [[0.5, 0.5, 0.5], [1.0, 0.2, 2.0]], rtol=0.06)
  assert np.all(np.diff(np.asarray(trace)) > -1e-4), trace
  with pytest.raises(ValueError, match="3 components needs at least as many videos; got 2"):
    code_density.fit(jnp.zeros((2, 3)), jax.random.key(0), 3, 5)


def test_codes_drawn_from_a_fitted_density_keep_the_code_shapes_and_the_data_moments():
  points = two_clusters(2000)
  codes = Codes(jnp.asarray(points[:, :1]), jnp.asarray(np.stack([points[:, 1:], 2.0 * points[:, 1:]], axis=1)))  # dynamics [N, 2, 2]
  density = code_density.fit_codes(codes, jax.random.key(0), num_components=3, num_iterations=60)
  assert density.static_size == 1 and density.dynamics_shape == (2, 2)
  drawn = code_density.sample_codes(density, jax.random.key(2), 20000)
  assert drawn.static.shape == (20000, 1) and drawn.dynamics.shape == (20000, 2, 2)
  flat = np.asarray(code_density.flatten(drawn))
  np.testing.assert_allclose(flat.mean(axis=0), np.asarray(code_density.flatten(codes)).mean(axis=0), atol=0.1)
  np.testing.assert_allclose(flat.std(axis=0), np.asarray(code_density.flatten(codes)).std(axis=0), rtol=0.05)


class IdentityCodec:
  """Decodes codes to themselves, so a generation shows the codes it was drawn with."""

  static_name, dynamics_name, train_frames = "s", "d", 1

  def decode(self, codes, key=None, num_frames=None):
    return jnp.concatenate([codes.static, codes.dynamics], axis=-1)


def test_generation_from_a_density_decodes_codes_drawn_from_it():
  codes = Codes(jnp.arange(6.0).reshape(6, 1), 10.0 + jnp.arange(6.0).reshape(6, 1))
  density = code_density.fit_codes(codes, jax.random.key(0), num_components=6, num_iterations=20)
  generated = np.asarray(sampling.generate_from_density(IdentityCodec(), density, jax.random.key(1), 200, 1))  # [N, 2]
  nearest = np.rint(generated)  # the variance floor keeps draws within a small fraction of a unit of a fitted video
  np.testing.assert_allclose(generated, nearest, atol=0.3)
  assert set(map(tuple, nearest)) == {(i, 10.0 + i) for i in range(6)}
