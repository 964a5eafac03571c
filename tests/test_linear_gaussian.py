"""The linear-Gaussian model's oracles: Kalman filter == dense joint Gaussian == TFP's LGSSM, and its sampler.

Oracle tests run in float64 through `jax.enable_x64`, entered per test by a fixture: setting
jax_enable_x64 at import would switch every test module in the session to float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dsa_jax.study import linear_gaussian as lg

THETAS = {
    "study": lg.Theta(sf=1.0, sz=0.5, sx=0.3),
    "small_sx": lg.Theta(sf=0.7, sz=1.3, sx=0.01),
    "large_sx": lg.Theta(sf=0.5, sz=0.2, sx=4.0),
}
SHAPES = [(1, 2), (3, 2), (7, 3)]  # (T, D)
BATCH = 5


@pytest.fixture
def float64():
  with jax.enable_x64(True):
    yield


def sequences(theta: lg.Theta, num_steps: int, dim: int) -> jax.Array:
  """A batch of sequences [B, T, D] from the model itself."""
  return lg.sample(jax.random.key(num_steps * 10 + dim), theta, BATCH, num_steps, dim).x


kalman_batch = jax.jit(jax.vmap(lg.kalman_log_likelihood, in_axes=(None, 0)))
dense_batch = jax.jit(jax.vmap(lg.dense_log_likelihood, in_axes=(None, 0)))


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("num_steps, dim", SHAPES)
def test_kalman_dense_and_tfp_agree(num_steps, dim):
  tfp_batch = jax.jit(lambda theta, x: lg.tfp_state_space_model(theta, num_steps, dim).log_prob(x))
  for name, theta in THETAS.items():
    x = sequences(theta, num_steps, dim)  # [B, T, D]
    kalman, dense, tfp = kalman_batch(theta, x), dense_batch(theta, x), tfp_batch(theta, x)
    assert kalman.shape == dense.shape == tfp.shape == (BATCH,) and kalman.dtype == jnp.float64
    np.testing.assert_allclose(kalman, dense, rtol=1e-5, atol=1e-5, err_msg=f"Kalman vs dense at {name}")
    np.testing.assert_allclose(tfp, dense, rtol=1e-5, atol=1e-5, err_msg=f"TFP vs dense at {name}")


@pytest.mark.usefixtures("float64")
def test_kalman_gradient_matches_dense():
  num_steps, dim = 3, 2
  for name, theta in THETAS.items():
    x = sequences(theta, num_steps, dim)
    kalman = jax.grad(lambda theta: kalman_batch(theta, x).sum())(theta)
    dense = jax.grad(lambda theta: dense_batch(theta, x).sum())(theta)
    assert np.all(np.isfinite(kalman)), kalman
    np.testing.assert_allclose(kalman, dense, rtol=1e-6, atol=1e-6, err_msg=f"gradient at {name}")


@pytest.mark.usefixtures("float64")
def test_scan_matches_a_python_loop_over_the_step():
  theta = THETAS["study"]
  x = sequences(theta, 3, 2)[0]  # [T, D]
  belief, step_log_likelihoods = lg.kalman_filter(theta, x)
  loop_belief = lg.initial_belief(theta, dim=2, dtype=jnp.float64)
  loop_log_likelihoods = []
  for x_t in x:
    loop_belief, log_likelihood = lg.kalman_step(theta, loop_belief, x_t)
    loop_log_likelihoods.append(log_likelihood)
  np.testing.assert_allclose(step_log_likelihoods, loop_log_likelihoods, rtol=1e-12)
  np.testing.assert_allclose(belief.mean, loop_belief.mean, rtol=1e-12)
  np.testing.assert_allclose(belief.cov, loop_belief.cov, rtol=1e-12, atol=1e-15)


def test_float32_kalman_matches_dense():
  theta = THETAS["study"]
  x = sequences(theta, 3, 2)
  kalman, dense = kalman_batch(theta, x), dense_batch(theta, x)
  assert kalman.dtype == jnp.float32
  np.testing.assert_allclose(kalman, dense, rtol=1e-5, atol=1e-5)


def test_sampled_covariance_matches_closed_form():
  """Each empirical (co)variance lies within 4 standard errors of the closed form, sqrt((S_ii S_jj + S_ij^2) / N)."""
  theta, num_steps, dim, num_sequences = THETAS["study"], 3, 2, 20_000
  drawn = lg.sample(jax.random.key(0), theta, num_sequences, num_steps, dim)
  assert drawn.f.shape == (num_sequences, dim) and drawn.z.shape == drawn.x.shape == (num_sequences, num_steps, dim)
  flat = np.asarray(drawn.x, np.float64).reshape(num_sequences, num_steps * dim)  # [N, T * D]
  expected = np.asarray(lg.marginal_covariance(theta, num_steps, dim), np.float64)  # [T * D, T * D]
  variances = np.diag(expected)
  standard_error = np.sqrt((variances[:, None] * variances[None, :] + expected**2) / num_sequences)
  np.testing.assert_array_less(np.abs(np.cov(flat, rowvar=False) - expected), 4 * standard_error)
  np.testing.assert_array_less(np.abs(flat.mean(0)), 4 * np.sqrt(variances / num_sequences))
  noise = np.asarray(drawn.x - drawn.f[:, None] - drawn.z)  # [N, T, D]
  np.testing.assert_allclose(noise.std(), theta.sx, rtol=0.01)


@pytest.mark.parametrize(
    "theta, message",
    [
        (lg.Theta(sf=1.0, sz=0.5, sx=0.0), "theta.sx must be a positive scale"),
        (lg.Theta(sf=-1.0, sz=0.5, sx=0.3), "theta.sf must be a positive scale"),
        (lg.Theta(sf=1.0, sz=np.ones(2), sx=0.3), r"theta.sz must be a scalar scale, got shape \(2,\)"),
    ],
)
def test_bad_theta_raises(theta, message):
  x = jnp.zeros((3, 2))
  for call in (
      lambda: lg.kalman_log_likelihood(theta, x),
      lambda: lg.dense_log_likelihood(theta, x),
      lambda: lg.sample(jax.random.key(0), theta, 4),
      lambda: lg.tfp_state_space_model(theta, 3),
  ):
    with pytest.raises(ValueError, match=message):
      call()


@pytest.mark.parametrize(
    "x, message",
    [
        (jnp.zeros((4, 3, 2)), r"x must be one sequence of shape \[T, D\], got shape \(4, 3, 2\)"),
        (jnp.zeros(3), r"x must be one sequence of shape \[T, D\], got shape \(3,\)"),
        (jnp.zeros((0, 2)), r"x must have T >= 1 steps"),
    ],
)
def test_bad_sequence_raises(x, message):
  for log_likelihood in (lg.kalman_log_likelihood, lg.dense_log_likelihood):
    with pytest.raises(ValueError, match=message):
      log_likelihood(THETAS["study"], x)


def test_bad_sizes_raise():
  with pytest.raises(ValueError, match="num_steps must be at least 1, got 0"):
    lg.sample(jax.random.key(0), THETAS["study"], 4, num_steps=0)
  with pytest.raises(ValueError, match="num_sequences must be at least 1, got 0"):
    lg.sample(jax.random.key(0), THETAS["study"], 0)
