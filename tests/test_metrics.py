"""The disentanglement metrics on fixed inputs: exact values, identities and closed forms."""

import numpy as np
import pytest
import scipy.linalg
from absl import app

from dsa_jax.evaluation import metrics, report
from experiments import results_table


def random_probabilities(rows: int, classes: int, seed: int = 0) -> np.ndarray:
  logits = np.random.default_rng(seed).normal(size=(rows, classes)) * 2
  return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_accuracy_counts_the_argmax_matches():
  probabilities = np.array([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
  assert metrics.accuracy(probabilities, np.array([0, 1, 1])) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_inception_score_is_h_y_minus_h_y_given_x(seed):
  scores = metrics.inception_statistics(random_probabilities(37, 9, seed))
  assert np.log(scores["inception_score"]) == pytest.approx(scores["h_y"] - scores["h_y_given_x"], abs=1e-9)


def test_confident_balanced_predictions_reach_the_ceilings():
  one_hot = np.eye(9)[np.repeat(np.arange(9), 4)]
  scores = metrics.inception_statistics(one_hot)
  assert scores["inception_score"] == pytest.approx(9.0)
  assert scores["h_y"] == pytest.approx(np.log(9)) and scores["h_y_given_x"] == pytest.approx(0.0, abs=1e-9)
  uniform = metrics.inception_statistics(np.full((5, 9), 1 / 9))
  assert uniform["inception_score"] == pytest.approx(1.0) and uniform["h_y_given_x"] == pytest.approx(np.log(9))


def test_balanced_indices_keep_the_first_examples_of_each_class_up_to_the_rarest_count():
  labels = np.array([2, 0, 0, 1, 2, 0, 1, 2, 2])
  np.testing.assert_array_equal(metrics.balanced_indices(labels, 3), [0, 1, 2, 3, 4, 6])


def test_disagreement_kl_and_the_random_baseline():
  first = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
  second = np.array([[0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
  assert metrics.disagreement(first, second) == pytest.approx(1 / 3)
  expected_kl = np.mean([np.sum(p * np.log(p / q)) for p, q in zip(first, second)])
  assert metrics.mean_kl(first, second) == pytest.approx(expected_kl)
  baseline = metrics.random_baseline(second)
  assert baseline["disagreement"] == 0.5
  assert baseline["kl"] == pytest.approx(np.mean([np.sum(0.5 * np.log(0.5 / q)) for q in second]))


def test_frechet_distance_of_a_set_with_itself_is_zero_and_of_gaussians_is_the_closed_form():
  rng = np.random.default_rng(0)
  features = rng.normal(size=(400, 3))
  assert metrics.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
  shifted = features * np.array([1.0, 2.0, 0.5]) + np.array([1.0, -1.0, 0.0])
  mean_1, mean_2 = features.mean(0), shifted.mean(0)
  cov_1, cov_2 = np.cov(features, rowvar=False), np.cov(shifted, rowvar=False)
  closed_form = np.sum((mean_1 - mean_2) ** 2) + np.trace(cov_1 + cov_2 - 2 * np.real(scipy.linalg.sqrtm(cov_1 @ cov_2)))
  assert metrics.frechet_distance(features, shifted) == pytest.approx(closed_form, rel=1e-9)
  variances = np.array([1.0, 4.0, 0.25])  # N(0, I) against N([1, -1, 0], diag(variances)):
  exact = 2.0 + np.sum(1.0 + variances - 2.0 * np.sqrt(variances))  # ||mu_1 - mu_2||^2 + trace term
  standard = rng.normal(size=(200_000, 3))
  other = rng.normal(size=(200_000, 3)) * np.sqrt(variances) + np.array([1.0, -1.0, 0.0])
  assert metrics.frechet_distance(standard, other) == pytest.approx(exact, abs=0.03)


def test_embedding_accuracy_finds_a_factor_planted_in_one_code_only():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 4, 600)
  planted = np.eye(4)[labels] * 3 + rng.normal(size=(600, 4))  # the factor lives here
  unrelated = rng.normal(size=(600, 5))
  train, test = slice(0, 400), slice(400, 600)
  assert metrics.embedding_accuracy(planted[train], labels[train], planted[test], labels[test], 4) > 0.95
  chance = metrics.embedding_accuracy(unrelated[train], labels[train], unrelated[test], labels[test], 4)
  assert abs(chance - 0.25) < 0.1


def test_mean_and_std_over_rounds():
  summary = metrics.mean_and_std([{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 2.0}])
  assert summary == {"a": {"mean": 2.0, "std": 1.0}, "b": {"mean": 2.0, "std": 0.0}}


def test_the_comparison_table_puts_each_run_in_a_column_and_leaves_missing_metrics_blank():
  first = {"step": 4, "rounds": 2, "test_videos": 45, "standard_protocol": {"action_accuracy": {"mean": 0.5, "std": 0.25}},
           "generation": {"reconstruction_mse": 0.125}}
  second = {"step": 6, "rounds": 5, "test_videos": 2664, "standard_protocol": {"action_accuracy": {"mean": 1.0, "std": 0.0}},
            "embedding_table": {"hair_from_static": 0.75}}
  assert report.comparison_table({"a": first, "b": second}).splitlines() == [
      "| group | metric | a | b |", "|---|---|---|---|",
      "| run | step | 4 | 6 |", "| run | rounds | 2 | 5 |", "| run | test_videos | 45 | 2664 |",
      "| standard_protocol | action_accuracy | 0.5000 +- 0.2500 | 1.0000 +- 0.0000 |",
      "| generation | reconstruction_mse | 0.1250 |  |",
      "| embedding_table | hair_from_static |  | 0.7500 |",
  ]
  from_density = second | {"code_source": "train_density"}
  assert report.comparison_table({"a": first, "b": from_density}).splitlines()[5:6] == ["| run | code_source | prior | train_density |"]


def test_the_results_table_reads_names_holding_equals_signs_and_names_a_missing_file(tmp_path):
  path = tmp_path / "results.json"
  path.write_text('{"step": 4}')
  assert results_table.read_named_results([f"--config.dsa.prior=lstm={path}"]) == {"--config.dsa.prior=lstm": {"step": 4}}
  with pytest.raises(app.UsageError, match=r"'b': cannot read .*missing.json.*experiments.evaluate"):
    results_table.read_named_results([f"a={path}", f"b={tmp_path / 'missing.json'}"])
  with pytest.raises(app.UsageError, match="is not NAME=PATH"):
    results_table.read_named_results([str(path)])
