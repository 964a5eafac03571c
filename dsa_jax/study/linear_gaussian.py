"""The study's linear-Gaussian sequential model (its section 3) and three exact log-likelihoods.

Latents f, z_1..z_T and observations x_1..x_T all live in R^D:

  p(f) = N(0, sf^2 I),  p(z_1) = N(0, sz^2 I),  p(z_t | z_{t-1}) = N(z_{t-1}, sz^2 I),
  p(x_t | z_t, f) = N(f + z_t, sx^2 I).

The study uses D = 2 and T = 3. log p(x | theta) comes from a Kalman filter on the state
s_t = [f, z_t], from the dense joint Gaussian of x, or from TFP's LinearGaussianStateSpaceModel
(the tests check all three agree).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import tensorflow_probability.substrates.jax as tfp

tfd = tfp.distributions

NUM_STEPS = 3
DIM = 2


class Theta(NamedTuple):
  """The model's three scales (standard deviations, all positive)."""

  sf: float | jax.Array  # static code f
  sz: float | jax.Array  # each step of the random walk z
  sx: float | jax.Array  # observation noise


class Sample(NamedTuple):
  """Sequences drawn from the model, with the latents that made them."""

  f: jax.Array  # [N, D]
  z: jax.Array  # [N, T, D]
  x: jax.Array  # [N, T, D]


class KalmanBelief(NamedTuple):
  """A Gaussian belief over the state s_t = [f, z_t]."""

  mean: jax.Array  # [2D]
  cov: jax.Array  # [2D, 2D]


def _is_positive_or_traced(value: jax.Array) -> bool:
  """True for a positive scale and for a traced one (under jit, grad or vmap its value is unknown)."""
  try:
    return bool(value > 0)
  except jax.errors.ConcretizationTypeError:
    return True


def checked_theta(theta: Theta) -> Theta:
  """theta as scalar float arrays; raises ValueError for a non-scalar or (when concrete) non-positive scale."""
  arrays = Theta(*(jnp.asarray(value, jnp.result_type(value, float)) for value in theta))
  for name, value in zip(Theta._fields, arrays):
    if value.ndim != 0:
      raise ValueError(f"theta.{name} must be a scalar scale, got shape {value.shape}")
    if not _is_positive_or_traced(value):
      raise ValueError(f"theta.{name} must be a positive scale, got {value}")
  return arrays


def _checked_sequence(x: jax.Array) -> jax.Array:
  """x as an array of one sequence [T, D]; raises ValueError for another rank or an empty axis."""
  x = jnp.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"x must be one sequence of shape [T, D], got shape {x.shape}; vmap over a batch of sequences")
  if 0 in x.shape:
    raise ValueError(f"x must have T >= 1 steps and D >= 1 dimensions, got shape {x.shape}")
  return x


def _check_sizes(**sizes: int) -> None:
  """Raises ValueError naming the first size below 1."""
  for name, size in sizes.items():
    if size < 1:
      raise ValueError(f"{name} must be at least 1, got {size}")


def sample(
    key: jax.Array, theta: Theta, num_sequences: int, num_steps: int = NUM_STEPS, dim: int = DIM
) -> Sample:
  """Draws num_sequences sequences x [N, T, D] and their latents f, z from the model at theta."""
  theta = checked_theta(theta)
  _check_sizes(num_sequences=num_sequences, num_steps=num_steps, dim=dim)
  dtype = jnp.result_type(*theta)
  f_key, z_key, x_key = jax.random.split(key, 3)
  f = theta.sf * jax.random.normal(f_key, (num_sequences, dim), dtype)  # [N, D]
  z_steps = theta.sz * jax.random.normal(z_key, (num_sequences, num_steps, dim), dtype)  # [N, T, D]
  z = jnp.cumsum(z_steps, axis=1)  # [N, T, D]
  x = f[:, None] + z + theta.sx * jax.random.normal(x_key, z.shape, dtype)  # [N, T, D]
  return Sample(f=f, z=z, x=x)


def marginal_covariance(theta: Theta, num_steps: int, dim: int = DIM) -> jax.Array:
  """Cov of x.reshape(T * D): block (s, t) is (sf^2 + min(s, t) sz^2 + [s == t] sx^2) I, steps counted from 1."""
  theta = checked_theta(theta)
  _check_sizes(num_steps=num_steps, dim=dim)
  steps = jnp.arange(1, num_steps + 1)  # [T]
  shared_steps = jnp.minimum(steps[:, None], steps[None, :])  # [T, T]
  step_cov = theta.sf**2 + shared_steps * theta.sz**2 + theta.sx**2 * jnp.eye(num_steps)  # [T, T]
  return jnp.kron(step_cov, jnp.eye(dim, dtype=step_cov.dtype))  # [T * D, T * D]


def _zero_mean_log_prob(y: jax.Array, cholesky: jax.Array) -> jax.Array:
  """log N(y; 0, L L^T) for y [K] and the lower Cholesky factor L [K, K]."""
  whitened = jax.scipy.linalg.solve_triangular(cholesky, y, lower=True)  # [K]
  log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(cholesky)))
  return -0.5 * (y.shape[0] * jnp.log(2 * jnp.pi) + log_det + whitened @ whitened)


def dense_log_likelihood(theta: Theta, x: jax.Array) -> jax.Array:
  """log p(x | theta) of one sequence x [T, D] from its joint Gaussian, by a Cholesky of the covariance."""
  x = _checked_sequence(x)
  num_steps, dim = x.shape
  cov = marginal_covariance(theta, num_steps, dim)  # [T * D, T * D]
  return _zero_mean_log_prob(x.reshape(-1), jax.scipy.linalg.cholesky(cov, lower=True))


def initial_belief(theta: Theta, dim: int, dtype: jnp.dtype) -> KalmanBelief:
  """The belief over s_0 = [f, z_0]: f ~ N(0, sf^2 I) and z_0 = 0, so one predict step gives z_1 ~ N(0, sz^2 I)."""
  state_var = jnp.concatenate([jnp.full(dim, theta.sf**2, dtype), jnp.zeros(dim, dtype)])  # [2D]
  return KalmanBelief(mean=jnp.zeros(2 * dim, dtype), cov=jnp.diag(state_var))


def kalman_step(theta: Theta, belief: KalmanBelief, x_t: jax.Array) -> tuple[KalmanBelief, jax.Array]:
  """Predicts s_t from the belief over s_{t-1}, conditions on x_t [D]; returns the new belief and log p(x_t | x_<t)."""
  dim = x_t.shape[0]
  eye = jnp.eye(dim, dtype=belief.cov.dtype)
  zero = jnp.zeros_like(eye)
  transition_noise = jnp.block([[zero, zero], [zero, theta.sz**2 * eye]])  # [2D, 2D]; f is kept, z_t walks
  observation = jnp.concatenate([eye, eye], axis=1)  # [D, 2D]; x_t = f + z_t + noise
  predicted_cov = belief.cov + transition_noise  # [2D, 2D]; the identity transition keeps the mean
  innovation = x_t - observation @ belief.mean  # [D]
  innovation_cov = observation @ predicted_cov @ observation.T + theta.sx**2 * eye  # [D, D]
  innovation_cholesky = jax.scipy.linalg.cholesky(innovation_cov, lower=True)  # [D, D]
  gain = jax.scipy.linalg.cho_solve((innovation_cholesky, True), observation @ predicted_cov).T  # [2D, D]
  residual = jnp.eye(2 * dim, dtype=eye.dtype) - gain @ observation  # [2D, 2D]
  # Joseph form: stays symmetric positive semi-definite when sx is small.
  cov = residual @ predicted_cov @ residual.T + theta.sx**2 * gain @ gain.T  # [2D, 2D]
  belief = KalmanBelief(mean=belief.mean + gain @ innovation, cov=cov)
  return belief, _zero_mean_log_prob(innovation, innovation_cholesky)


def kalman_filter(theta: Theta, x: jax.Array) -> tuple[KalmanBelief, jax.Array]:
  """Filters one sequence x [T, D]; returns the belief over s_T and log p(x_t | x_<t) for each step [T]."""
  x = _checked_sequence(x)
  theta = checked_theta(theta)
  dtype = jnp.result_type(*theta, x)
  x = x.astype(dtype)
  return jax.lax.scan(functools.partial(kalman_step, theta), initial_belief(theta, x.shape[1], dtype), x)


def kalman_log_likelihood(theta: Theta, x: jax.Array) -> jax.Array:
  """log p(x | theta) of one sequence x [T, D] by the Kalman filter."""
  _, step_log_likelihoods = kalman_filter(theta, x)  # [T]
  return jnp.sum(step_log_likelihoods)


def tfp_state_space_model(theta: Theta, num_steps: int, dim: int = DIM) -> tfd.LinearGaussianStateSpaceModel:
  """TFP's LinearGaussianStateSpaceModel of the same model on s_t = [f, z_t], a reference for the tests."""
  theta = checked_theta(theta)
  _check_sizes(num_steps=num_steps, dim=dim)
  dtype = jnp.result_type(*theta)
  ones = jnp.ones(dim, dtype)
  eye = jnp.eye(dim, dtype=dtype)
  return tfd.LinearGaussianStateSpaceModel(
      num_timesteps=num_steps,
      transition_matrix=jnp.eye(2 * dim, dtype=dtype),
      transition_noise=tfd.MultivariateNormalDiag(scale_diag=jnp.concatenate([jnp.zeros(dim, dtype), theta.sz * ones])),
      observation_matrix=jnp.concatenate([eye, eye], axis=1),
      observation_noise=tfd.MultivariateNormalDiag(scale_diag=theta.sx * ones),
      initial_state_prior=tfd.MultivariateNormalDiag(scale_diag=jnp.concatenate([theta.sf * ones, theta.sz * ones])),
  )
