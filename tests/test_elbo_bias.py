"""The ELBO-bias study: the closed-form ELBO against Monte Carlo and the exact posterior, fitting, maximisers, the run."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dsa_jax.study import elbo_bias, linear_gaussian, report
from dsa_jax.study.linear_gaussian import Theta
from experiments import elbo_bias as elbo_bias_config

THETA = Theta(1.0, 0.7, 0.4)


def sequences(count: int, seed: int = 0, num_steps: int = 3) -> jax.Array:
  return linear_gaussian.sample(jax.random.key(seed), THETA, count, num_steps).x


def random_phi(family: str, num_steps: int, dim: int, seed: int) -> dict:
  leaves, tree = jax.tree.flatten(elbo_bias.init_phi(family, num_steps, dim))
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [0.3 * jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves)])


def exact_posterior(theta: Theta, x: jax.Array) -> elbo_bias.Posterior:
  """p(u | x) by conditioning the dense joint Gaussian of (u, x)."""
  num_steps, dim = x.shape
  steps = np.arange(1, num_steps + 1)
  z_cov = np.kron(theta.sz**2 * np.minimum(steps[:, None], steps[None, :]), np.eye(dim))
  prior = jax.scipy.linalg.block_diag(theta.sf**2 * jnp.eye(dim), z_cov)  # [U, U]
  observe = jnp.asarray(np.kron(np.concatenate([np.ones((num_steps, 1)), np.eye(num_steps)], 1), np.eye(dim)))
  x_cov = observe @ prior @ observe.T + theta.sx**2 * jnp.eye(num_steps * dim)
  gain = jnp.linalg.solve(x_cov, observe @ prior).T  # [U, T * D]
  covariance = prior - gain @ observe @ prior
  return elbo_bias.Posterior(gain @ x.reshape(-1), jnp.linalg.cholesky(0.5 * (covariance + covariance.T)))


@pytest.mark.parametrize("family", elbo_bias.FAMILIES)
def test_closed_form_elbo_equals_its_monte_carlo_estimate_and_stays_below_log_p(family):
  x = sequences(1, seed=3)[0]  # [T, D]
  q = elbo_bias.posterior(family, random_phi(family, 3, 2, seed=1), x)
  eps = jax.random.normal(jax.random.key(2), (50_000, q.mean.shape[0]))
  u = q.mean + eps @ q.cholesky.T  # [S, U]
  f, z = u[:, :2], u[:, 2:].reshape(-1, 3, 2)
  log_joint = (
      jax.scipy.stats.norm.logpdf(f, 0, THETA.sf).sum(-1)
      + jax.scipy.stats.norm.logpdf(jnp.diff(z, axis=1, prepend=0.0), 0, THETA.sz).sum((-1, -2))
      + jax.scipy.stats.norm.logpdf(x, f[:, None] + z, THETA.sx).sum((-1, -2))
  )
  log_q = jax.scipy.stats.multivariate_normal.logpdf(u, q.mean, q.cholesky @ q.cholesky.T)
  samples = log_joint - log_q
  closed_form = elbo_bias.gaussian_elbo(THETA, q, x)
  assert abs(float(closed_form - samples.mean())) < 4 * float(samples.std()) / np.sqrt(len(samples))
  assert float(closed_form) < float(linear_gaussian.kalman_log_likelihood(THETA, x))


def test_the_exact_posterior_has_elbo_log_p_and_the_exact_family_learns_it():
  x = sequences(64, seed=4)
  for sequence in x[:3]:
    np.testing.assert_allclose(
        elbo_bias.gaussian_elbo(THETA, exact_posterior(THETA, sequence), sequence),
        linear_gaussian.kalman_log_likelihood(THETA, sequence), atol=1e-4,
    )
  log_p = elbo_bias.mean_log_likelihood(THETA, x)
  gaps = {family: float(log_p - elbo_bias.fit_encoder(family, THETA, x, elbo_bias.FitConfig(2000, 0.2))[1]) for family in elbo_bias.FAMILIES}
  assert abs(gaps["exact"]) < 1e-3
  assert gaps["factorised"] > gaps["full"] > 1e-3  # the families DSA uses stay below


def test_grid_maximiser_finds_a_parabolas_vertex_and_stops_at_the_grid_ends():
  grid = np.geomspace(0.2, 2.0, 11)
  assert elbo_bias.grid_maximiser(grid, -((grid - 0.77) ** 2)) == pytest.approx(0.77, abs=1e-9)
  assert elbo_bias.grid_maximiser(grid, grid) == 2.0 and elbo_bias.grid_maximiser(grid, -grid) == 0.2


def test_joint_learning_with_the_exact_family_finds_the_maximum_likelihood_theta():
  x = sequences(300, seed=5)
  start, fit = Theta(1.0, 1.0, 1.0), elbo_bias.FitConfig(2000, 0.2)
  ml_theta, ml_value = elbo_bias.fit_maximum_likelihood(x, start, fit)
  jointly, _ = elbo_bias.fit_jointly("exact", x, start, fit)
  np.testing.assert_allclose(jointly, ml_theta, rtol=2e-3)
  for scale in (0.9, 1.1):
    for index in range(3):
      moved = Theta(*(value * (scale if i == index else 1.0) for i, value in enumerate(ml_theta)))
      assert float(elbo_bias.mean_log_likelihood(moved, x)) < float(ml_value)


def test_bad_names_are_refused():
  with pytest.raises(ValueError, match="Unknown posterior family 'mean_field'"):
    elbo_bias.init_phi("mean_field", 3, 2)
  with pytest.raises(ValueError, match="Unknown parameter 'sy'"):
    elbo_bias.with_parameter(THETA, "sy", 1.0)


@pytest.mark.parametrize("field, value, message", [
    ("families", ("factorised", "mean_field"), "unknown posterior families"),
    ("grid_size", 2, "config.grid_size=2 is out of range"),
    ("grid_high", 0.3, "must satisfy 0 < grid_low < grid_high"),
    ("sweeps", {"sy": (1.0,)}, "name 'sy'"),
])
def test_a_bad_study_config_names_the_field(field, value, message, tmp_path):
  config = elbo_bias_config.get_config("quick")
  config[field] = value
  with pytest.raises(report.ConfigError, match=message):
    report.run(config, str(tmp_path))
  assert os.listdir(tmp_path) == []


def test_study_run_writes_curves_tables_and_plots(tmp_path):
  config = elbo_bias_config.get_config("quick")
  config.sweeps = {"sx": (0.5,)}
  config.num_sequences, config.grid_size, config.fit.num_steps = 64, 5, 1000
  config.joint.sizes, config.joint.num_steps = (64,), 300
  results = report.run(config, str(tmp_path))
  run = results["sweeps"]["sx"]["0.5"][0]
  assert len(run["grid"]) == 5 and set(run["elbo"]) == set(elbo_bias.FAMILIES) and report.check_lower_bound(results) == []
  assert run["mean_gap"]["exact"] < 1e-3 < run["mean_gap"]["full"] < run["mean_gap"]["factorised"]
  assert run["maximiser"]["exact"] == pytest.approx(run["maximiser"]["log_likelihood"], rel=1e-3)
  assert set(results["joint"]["(1.0, 1.0, 0.5)"]["64"][0]) == {*elbo_bias.FAMILIES, "maximum_likelihood"}
  assert json.load(open(tmp_path / report.RESULTS_FILE))["sweeps"] == json.loads(json.dumps(results["sweeps"]))
  table = (tmp_path / report.TABLE_FILE).read_text()
  assert "| sx | 0.5 |" in table and "| (1.0, 1.0, 0.5) | 64 | maximum_likelihood |" in table
  assert os.path.getsize(tmp_path / "elbo_bias_sx.png") > 10_000
