"""The ELBO of amortised Gaussian encoders on the linear-Gaussian model, and what its maximiser estimates.

Every posterior family is a Gaussian over u = [f, z_1, ..., z_T] (U = (T + 1) D numbers) whose
mean is linear in the sequence and whose covariance is constant, parametrised by phi:

- `factorised`: DSA's q(f | x_1:T) q(z_t | x_t), with one q(z_t | x_t) for every t (the study's);
- `full`: DSA's q(f | x_1:T) q(z_t | x_1:T, f), the z_t independent given f and x;
- `exact`: any Gaussian (full covariance), which holds the exact posterior of this model, so its
  optimal ELBO is log p(x | theta).

The ELBO of a Gaussian q = N(m, L L^T) is computed in closed form (no sampling), and an encoder
is fitted to a data set by full-batch Adam with the decoder fixed at a candidate theta.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dsa_jax.study import linear_gaussian
from dsa_jax.study.linear_gaussian import Theta

FAMILIES = ("factorised", "full", "exact")
PARAMETERS = ("sf", "sz", "sx")


class Posterior(NamedTuple):
  """q(u | x) = N(mean, cholesky cholesky^T) over u = [f, z_1, ..., z_T]."""

  mean: jax.Array  # [U]
  cholesky: jax.Array  # [U, U] lower triangular, positive diagonal


class FitConfig(NamedTuple):
  """How an encoder is fitted: Adam steps and the learning rate's cosine decay from its peak."""

  num_steps: int = 3000
  learning_rate: float = 0.2


def check_family(family: str) -> None:
  """Raises ValueError naming the families when `family` is not one."""
  if family not in FAMILIES:
    raise ValueError(f"Unknown posterior family {family!r}; choose from {FAMILIES}.")


def init_phi(family: str, num_steps: int, dim: int) -> dict[str, jax.Array]:
  """The encoder parameters of a family at their start: means 0, standard deviations 1."""
  check_family(family)
  inputs, latents = num_steps * dim, (num_steps + 1) * dim
  if family == "exact":
    return {"weights": jnp.zeros((latents, inputs)), "bias": jnp.zeros(latents), "log_diagonal": jnp.zeros(latents),
            "lower": jnp.zeros((latents, latents))}
  phi = {"f_weights": jnp.zeros((dim, inputs)), "f_bias": jnp.zeros(dim), "f_log_scale": jnp.zeros(dim)}
  if family == "factorised":
    return phi | {"z_weights": jnp.zeros((dim, dim)), "z_bias": jnp.zeros(dim), "z_log_scale": jnp.zeros(dim)}
  return phi | {
      "z_weights": jnp.zeros((num_steps, dim, inputs)), "z_from_f": jnp.zeros((num_steps, dim, dim)),
      "z_bias": jnp.zeros((num_steps, dim)), "z_log_scale": jnp.zeros((num_steps, dim)),
  }


def posterior(family: str, phi: dict[str, jax.Array], x: jax.Array) -> Posterior:
  """q(u | x) of one sequence x [T, D] under a family's parameters."""
  num_steps, dim = x.shape
  flat = x.reshape(-1)  # [T * D]
  if family == "exact":
    lower = jnp.tril(phi["lower"], -1) + jnp.diag(jnp.exp(phi["log_diagonal"]))  # [U, U]
    return Posterior(phi["weights"] @ flat + phi["bias"], lower)
  f_mean = phi["f_weights"] @ flat + phi["f_bias"]  # [D]
  f_scale = jnp.exp(phi["f_log_scale"])  # [D]
  if family == "factorised":
    z_mean = x @ phi["z_weights"].T + phi["z_bias"]  # [T, D]
    scales = jnp.concatenate([f_scale, jnp.tile(jnp.exp(phi["z_log_scale"]), num_steps)])  # [U]
    return Posterior(jnp.concatenate([f_mean, z_mean.reshape(-1)]), jnp.diag(scales))
  # full: z_t = A_t x + B_t f + c_t + s_t eps_t, so u = mean + L eps with L = [[S_f, 0], [B S_f, diag(s)]]
  z_from_f = phi["z_from_f"]  # [T, D, D]
  z_mean = phi["z_weights"] @ flat + z_from_f @ f_mean + phi["z_bias"]  # [T, D]
  top = jnp.concatenate([jnp.diag(f_scale), jnp.zeros((dim, num_steps * dim))], axis=1)  # [D, U]
  bottom = jnp.concatenate(
      [(z_from_f * f_scale).reshape(num_steps * dim, dim), jnp.diag(jnp.exp(phi["z_log_scale"]).reshape(-1))], axis=1
  )  # [T * D, U]
  return Posterior(jnp.concatenate([f_mean, z_mean.reshape(-1)]), jnp.concatenate([top, bottom]))


def _innovations(num_steps: int, dim: int) -> jnp.ndarray:
  """The matrix [U, U] taking u = [f, z_1..T] to [f, z_1, z_2 - z_1, ..., z_T - z_{T-1}], independent under p(u)."""
  steps = np.eye(num_steps) - np.eye(num_steps, k=-1)  # [T, T]
  blocks = np.zeros((num_steps + 1, num_steps + 1))
  blocks[0, 0] = 1.0
  blocks[1:, 1:] = steps
  return jnp.asarray(np.kron(blocks, np.eye(dim)))


def _observation(num_steps: int, dim: int) -> jnp.ndarray:
  """The matrix [T * D, U] taking u to the noise-free observations f + z_t."""
  return jnp.asarray(np.kron(np.concatenate([np.ones((num_steps, 1)), np.eye(num_steps)], axis=1), np.eye(dim)))


def gaussian_elbo(theta: Theta, q: Posterior, x: jax.Array) -> jax.Array:
  """E_q[log p(x, u | theta)] + H[q] of one sequence x [T, D], in closed form."""
  num_steps, dim = x.shape
  latents = (num_steps + 1) * dim
  covariance = q.cholesky @ q.cholesky.T  # [U, U]
  observe = _observation(num_steps, dim)  # [T * D, U]
  residual = x.reshape(-1) - observe @ q.mean  # [T * D]
  observed_spread = jnp.trace(observe @ covariance @ observe.T)
  log_likelihood = -0.5 * (
      num_steps * dim * jnp.log(2 * jnp.pi * theta.sx**2) + (residual @ residual + observed_spread) / theta.sx**2
  )
  innovate = _innovations(num_steps, dim)  # [U, U]
  prior_variances = jnp.concatenate([jnp.full(dim, theta.sf**2), jnp.full(num_steps * dim, theta.sz**2)])  # [U]
  innovation_mean = innovate @ q.mean  # [U]
  innovation_second_moment = innovation_mean**2 + jnp.diagonal(innovate @ covariance @ innovate.T)  # [U]
  log_prior = -0.5 * jnp.sum(jnp.log(2 * jnp.pi * prior_variances) + innovation_second_moment / prior_variances)
  entropy = 0.5 * latents * (1 + jnp.log(2 * jnp.pi)) + jnp.sum(jnp.log(jnp.abs(jnp.diagonal(q.cholesky))))
  return log_likelihood + log_prior + entropy


def mean_elbo(family: str, phi: dict[str, jax.Array], theta: Theta, x: jax.Array) -> jax.Array:
  """The ELBO per sequence, averaged over sequences x [N, T, D]."""
  return jnp.mean(jax.vmap(lambda sequence: gaussian_elbo(theta, posterior(family, phi, sequence), sequence))(x))


def mean_log_likelihood(theta: Theta, x: jax.Array) -> jax.Array:
  """The exact log p(x | theta) per sequence (Kalman filter), averaged over sequences x [N, T, D]."""
  return jnp.mean(jax.vmap(functools.partial(linear_gaussian.kalman_log_likelihood, theta))(x))


def _maximise(objective, params, fit: FitConfig):
  """params after fit.num_steps of Adam (cosine-decayed learning rate) ascending objective(params), under lax.scan."""
  tx = optax.adam(optax.cosine_decay_schedule(fit.learning_rate, fit.num_steps, alpha=1e-3))

  def step(carry, _):
    params, opt_state = carry
    grads = jax.grad(lambda p: -objective(p))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=fit.num_steps)
  return params


@functools.partial(jax.jit, static_argnames=("family", "fit"))
def fit_encoder(family: str, theta: Theta, x: jax.Array, fit: FitConfig = FitConfig()) -> tuple[dict, jax.Array]:
  """The encoder of a family fitted to sequences x [N, T, D] with the decoder fixed at theta, and its mean ELBO."""
  phi = _maximise(lambda p: mean_elbo(family, p, theta, x), init_phi(family, *x.shape[1:]), fit)
  return phi, mean_elbo(family, phi, theta, x)


def with_parameter(theta: Theta, parameter: str, value) -> Theta:
  """theta with one scale replaced."""
  if parameter not in PARAMETERS:
    raise ValueError(f"Unknown parameter {parameter!r}; choose from {PARAMETERS}.")
  return theta._replace(**{parameter: value})


def elbo_curve(family: str, theta: Theta, parameter: str, grid: jax.Array, x: jax.Array, fit: FitConfig = FitConfig()) -> jax.Array:
  """The optimal mean ELBO [G] at each grid value of one parameter (the others at theta), one encoder fitted per point."""
  check_family(family)
  fit_at = jax.vmap(lambda value: fit_encoder(family, with_parameter(theta, parameter, value), x, fit)[1])
  return fit_at(jnp.asarray(grid))


def log_likelihood_curve(theta: Theta, parameter: str, grid: jax.Array, x: jax.Array) -> jax.Array:
  """The exact mean log-likelihood [G] at each grid value of one parameter."""
  return jax.vmap(lambda value: mean_log_likelihood(with_parameter(theta, parameter, value), x))(jnp.asarray(grid))


def grid_maximiser(grid, values) -> float:
  """The maximiser of a curve sampled on a grid: the best point refined by the parabola through it and its neighbours."""
  grid, values = np.asarray(grid, np.float64), np.asarray(values, np.float64)
  best = int(np.argmax(values))
  if best in (0, len(grid) - 1):
    return float(grid[best])
  (x0, x1, x2), (y0, y1, y2) = grid[best - 1 : best + 2], values[best - 1 : best + 2]
  slope_left, slope_right = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)  # secant slopes at the two midpoints
  left_mid, right_mid = (x0 + x1) / 2, (x1 + x2) / 2
  vertex = left_mid - slope_left * (right_mid - left_mid) / (slope_right - slope_left)  # where the slope is 0
  return float(np.clip(vertex, x0, x2))


def _log_theta(theta: Theta) -> jax.Array:
  return jnp.log(jnp.stack([jnp.asarray(value, jnp.float32) for value in theta]))  # [3]


@functools.partial(jax.jit, static_argnames=("family", "fit"))
def fit_jointly(family: str, x: jax.Array, start: Theta, fit: FitConfig = FitConfig()) -> tuple[Theta, jax.Array]:
  """theta learned together with the encoder by gradient ascent on the mean ELBO of x [N, T, D], as a VAE trains; and that ELBO."""

  def objective(params):
    return mean_elbo(family, params["phi"], Theta(*jnp.exp(params["log_theta"])), x)

  params = _maximise(objective, {"log_theta": _log_theta(start), "phi": init_phi(family, *x.shape[1:])}, fit)
  return Theta(*jnp.exp(params["log_theta"])), objective(params)


@functools.partial(jax.jit, static_argnames=("fit",))
def fit_maximum_likelihood(x: jax.Array, start: Theta, fit: FitConfig = FitConfig()) -> tuple[Theta, jax.Array]:
  """The maximum-likelihood theta of x [N, T, D] by gradient ascent on the exact (Kalman) log-likelihood, and that mean log-likelihood."""
  log_theta = _maximise(lambda v: mean_log_likelihood(Theta(*jnp.exp(v)), x), _log_theta(start), fit)
  theta = Theta(*jnp.exp(log_theta))
  return theta, mean_log_likelihood(theta, x)
