"""Ex-post code densities: a diagonal Gaussian mixture fitted by EM to posterior means of codes.

A VAE's prior can sit where its posteriors rarely put a video (VDSM's p(s), whose scale 1/ks
makes every pendulum generation faint). Fitting a mixture to the aggregate posterior of
encoded videos and decoding draws from it (Ghosh et al., 2020, "From variational to
deterministic autoencoders", ex-post density estimation) generates from where the decoder
was trained. Static and dynamic codes are fitted jointly, so a draw keeps their correlation.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dsa_jax.codecs import Codes
from dsa_jax.distributions import Gaussian

VARIANCE_FLOOR = 1e-3  # of each dimension's variance over the data, so no component collapses onto a point


class CodeDensity(NamedTuple):
  """A mixture of diagonal Gaussians over flattened [static, dynamics] codes."""

  log_weights: jax.Array  # [K]
  components: Gaussian  # loc, scale [K, D]
  static_size: int  # the first static_size dimensions are the static code
  dynamics_shape: tuple[int, ...]  # one video's dynamic code: DSA [T, Z], VDSM [D]


def flatten(codes: Codes) -> jax.Array:
  """[B, S + prod(dynamics)] per video."""
  return jnp.concatenate([codes.static, codes.dynamics.reshape(codes.dynamics.shape[0], -1)], axis=-1)


def component_log_probs(log_weights: jax.Array, components: Gaussian, points: jax.Array) -> jax.Array:
  """log w_k + log N(x_n; mu_k, sigma_k) [N, K] for points [N, D]."""
  return log_weights + components.log_prob(points[:, None, :])


def fit(points: jax.Array, key: jax.Array, num_components: int, num_iterations: int) -> tuple[jax.Array, Gaussian, jax.Array]:
  """EM for a diagonal mixture of points [N, D] from means at random points: (log weights [K], components, log-likelihood per iteration [I])."""
  count, _ = points.shape
  if num_components > count:
    raise ValueError(f"A mixture of {num_components} components needs at least as many videos; got {count}.")
  variance = points.var(axis=0)  # [D]
  floor = VARIANCE_FLOOR * variance + 1e-12  # [D]
  means = points[jax.random.choice(key, count, (num_components,), replace=False)]  # [K, D]
  spread = jnp.broadcast_to(jnp.sqrt(variance + floor), means.shape)  # [K, D]
  initial = (jnp.full((num_components,), -jnp.log(num_components)), Gaussian(means, spread))

  def em_step(state, _):
    log_weights, components = state
    joint = component_log_probs(log_weights, components, points)  # [N, K]
    log_likelihood = jax.nn.logsumexp(joint, axis=-1)  # [N]
    responsibilities = jnp.exp(joint - log_likelihood[:, None])  # [N, K]
    totals = responsibilities.sum(axis=0) + 1e-12  # [K]
    means = responsibilities.T @ points / totals[:, None]  # [K, D]
    variances = responsibilities.T @ points**2 / totals[:, None] - means**2  # [K, D]
    components = Gaussian(means, jnp.sqrt(jnp.maximum(variances, floor)))  # the constrained maximiser: EM stays monotone
    return (jnp.log(totals / count), components), log_likelihood.mean()

  (log_weights, components), trace = jax.lax.scan(em_step, initial, None, length=num_iterations)
  return log_weights, components, trace


def fit_codes(codes: Codes, key: jax.Array, num_components: int = 10, num_iterations: int = 100) -> CodeDensity:
  """The mixture fitted to a batch of videos' codes (e.g. `codec.encode(train_videos)`)."""
  log_weights, components, _ = fit(flatten(codes).astype(jnp.float32), key, num_components, num_iterations)
  return CodeDensity(log_weights, components, codes.static.shape[-1], tuple(codes.dynamics.shape[1:]))


def sample_codes(density: CodeDensity, key: jax.Array, num_videos: int) -> Codes:
  """Codes of num_videos videos drawn from the mixture."""
  component_key, noise_key = jax.random.split(key)
  chosen = jax.random.categorical(component_key, density.log_weights, shape=(num_videos,))  # [N]
  points = Gaussian(density.components.loc[chosen], density.components.scale[chosen]).sample(noise_key)  # [N, D]
  static, dynamics = points[:, : density.static_size], points[:, density.static_size :]
  return Codes(static, dynamics.reshape(num_videos, *density.dynamics_shape))
