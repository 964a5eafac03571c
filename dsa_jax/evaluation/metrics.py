"""The field's disentanglement metrics as pure functions of judge probabilities, codes or features.

Probabilities are p(y | x) [N, K] of one judge head; labels are integer classes [N].
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.linalg

EPSILON = 1e-12


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
  """The fraction of rows whose most probable class is the label."""
  return float(np.mean(np.argmax(probabilities, axis=-1) == np.asarray(labels)))


def entropy(probabilities: np.ndarray) -> np.ndarray:
  """Entropy in nats of each distribution [..., K] -> [...]."""
  probabilities = np.asarray(probabilities, np.float64)
  return -np.sum(probabilities * np.log(np.maximum(probabilities, EPSILON)), axis=-1)


def inception_statistics(probabilities: np.ndarray) -> dict[str, float]:
  """IS = exp(mean KL(p(y|x) || p(y))), H(y|x) (mean entropy) and H(y) (entropy of the mean), in nats."""
  probabilities = np.asarray(probabilities, np.float64)
  marginal = probabilities.mean(axis=0)  # p(y) [K]
  kl = np.sum(probabilities * (np.log(np.maximum(probabilities, EPSILON)) - np.log(np.maximum(marginal, EPSILON))), axis=-1)
  return {
      "inception_score": float(np.exp(kl.mean())),
      "h_y_given_x": float(entropy(probabilities).mean()),
      "h_y": float(entropy(marginal)),
  }


def balanced_indices(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """Indices of a class-balanced subset: the first m examples of each class, m the rarest class's count."""
  labels = np.asarray(labels)
  per_class = [np.flatnonzero(labels == k) for k in range(num_classes)]
  count = min(len(members) for members in per_class)
  return np.sort(np.concatenate([members[:count] for members in per_class]))


def disagreement(first: np.ndarray, second: np.ndarray) -> float:
  """How often two sets of predictions [N, K] of the same videos pick different classes."""
  return float(np.mean(np.argmax(first, axis=-1) != np.argmax(second, axis=-1)))


def mean_kl(p: np.ndarray, q: np.ndarray) -> float:
  """Mean over rows of KL(p || q) in nats, for distributions [N, K]."""
  p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
  return float(np.mean(np.sum(p * (np.log(np.maximum(p, EPSILON)) - np.log(np.maximum(q, EPSILON))), axis=-1)))


def random_baseline(reference: np.ndarray) -> dict[str, float]:
  """Disagreement and mean KL of a judge answering uniformly at random, against reference predictions [N, K]."""
  classes = reference.shape[-1]
  uniform = np.full_like(np.asarray(reference, np.float64), 1.0 / classes)
  return {"disagreement": 1.0 - 1.0 / classes, "kl": mean_kl(uniform, reference)}


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
  """||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^1/2) between two feature sets [N, F] and [M, F]."""
  first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
  mean_1, mean_2 = first.mean(axis=0), second.mean(axis=0)
  covariance_1, covariance_2 = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
  root = scipy.linalg.sqrtm(covariance_1 @ covariance_2)
  root = np.real(root)  # rounding leaves tiny imaginary parts
  return float(np.sum((mean_1 - mean_2) ** 2) + np.trace(covariance_1 + covariance_2 - 2.0 * root))


def mean_and_std(rounds: list[dict[str, float]]) -> dict[str, dict[str, float]]:
  """{metric: {"mean", "std"}} over rounds of {metric: value}."""
  return {
      name: {"mean": float(np.mean([r[name] for r in rounds])), "std": float(np.std([r[name] for r in rounds]))}
      for name in rounds[0]
  }


@functools.partial(jax.jit, static_argnames=("num_classes", "steps"))
def _fit_softmax_regression(inputs, labels, num_classes: int, steps: int):
  """Weights [F + 1, K] of a softmax regression fitted by full-batch Adam from zero."""
  inputs = jnp.concatenate([inputs, jnp.ones((inputs.shape[0], 1), inputs.dtype)], axis=1)
  optimizer = optax.adam(0.1)

  def loss(weights):
    return optax.softmax_cross_entropy_with_integer_labels(inputs @ weights, labels).mean() + 1e-4 * jnp.sum(weights**2)

  def step(carry, _):
    weights, state = carry
    updates, state = optimizer.update(jax.grad(loss)(weights), state)
    return (optax.apply_updates(weights, updates), state), None

  weights = jnp.zeros((inputs.shape[1], num_classes), inputs.dtype)
  (weights, _), _ = jax.lax.scan(step, (weights, optimizer.init(weights)), None, length=steps)
  return weights


def embedding_accuracy(
    train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray, test_labels: np.ndarray,
    num_classes: int, steps: int = 500,
) -> float:
  """Test accuracy of a softmax regression fitted on train-set codes [N, D] (standardised by the train set)."""
  train_codes = np.asarray(train_codes, np.float32).reshape(len(train_codes), -1)
  test_codes = np.asarray(test_codes, np.float32).reshape(len(test_codes), -1)
  mean, std = train_codes.mean(axis=0), train_codes.std(axis=0) + 1e-6
  weights = _fit_softmax_regression(
      jnp.asarray((train_codes - mean) / std), jnp.asarray(train_labels), num_classes, steps
  )
  test_inputs = np.concatenate([(test_codes - mean) / std, np.ones((len(test_codes), 1), np.float32)], axis=1)
  return accuracy(np.asarray(test_inputs @ np.asarray(weights)), test_labels)
