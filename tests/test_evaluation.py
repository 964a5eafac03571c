"""Judges and experiments.evaluate end to end on the Sprites :quick configs (a tiny judge trained here)."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from benchmarks import evaluation as benchmark
from dsa_jax import runs, train
from dsa_jax.evaluation import curves, evaluators, judge, judges, protocols, report
from experiments import dsa_sprites, judge_sprites, vdsm_sprites
from tests.conftest import REPO, subprocess_env
from tests.test_sprites import built  # noqa: F401 - the session's Sprites build, a fixture
from tests.test_vdsm_quick import assert_both_stages_ran, shortened


def tfds_dir(builder) -> str:
  return os.path.dirname(os.path.dirname(os.path.dirname(builder.data_dir)))


@pytest.fixture(scope="module")
def tiny_judge(built, tmp_path_factory):  # noqa: F811
  config = judge_sprites.get_config("quick")
  config.data.data_dir = tfds_dir(built)
  config.train.num_steps = 40
  config.train.log_every = 20
  config.train.checkpoint_every = 20
  workdir = str(tmp_path_factory.mktemp("judge"))
  train.train_and_evaluate(config, workdir)
  info = judges.export(workdir, train_seconds=1.0)
  return workdir, info


def test_judge_outputs_and_cross_entropy_of_perfect_logits():
  config = judge.JudgeConfig(image_shape=(16, 16, 3), heads=(("action", 3), ("hair", 5)), channels=(4, 6), feature_size=7, lstm_size=11)
  model = judge.Judge(config)
  videos = np.random.default_rng(0).random((2, 3, 16, 16, 3)).astype(np.float32)
  output = model.apply(model.init(jax.random.key(0), videos), videos)
  assert output.logits["action"].shape == (2, 3) and output.logits["hair"].shape == (2, 5) and output.features.shape == (2, 22)
  grouped = judge.Judge(dataclasses.replace(config, normalization="group"))
  grouped_params = grouped.init(jax.random.key(0), videos)["params"]
  assert jax.tree.structure(grouped_params) == jax.tree.structure(model.init(jax.random.key(0), videos)["params"])
  faint, full = videos * 0.01, videos  # a per-frame GroupNorm sees a uniformly fainter video as the same one
  np.testing.assert_allclose(
      grouped.apply({"params": grouped_params}, faint).features, grouped.apply({"params": grouped_params}, full).features, atol=2e-3
  )
  with pytest.raises(ValueError, match="Unknown judge normalization 'batch'"):
    judge.JudgeConfig(normalization="batch")
  confident = judge.JudgeOutput({"action": np.array([[50.0, 0, 0], [0, 0, 50.0]])}, output.features)
  loss, scores = judge.cross_entropy(confident, {"action": np.array([0, 2])})
  assert float(scores["accuracy_action"]) == 1.0 and float(loss) < 1e-6


def test_multiset_marginals_match_the_enumerated_joint_of_per_class_counts():
  rng = np.random.default_rng(0)
  count_log_probs = np.log(rng.dirichlet(np.ones(3), size=(2, 4)))  # [B, K, 3]: 0, 1 or 2 copies of 4 classes
  first, second = judge.multiset_log_marginals(count_log_probs, 2)
  for b in range(2):
    joint = np.zeros((4, 4))
    for low in range(4):
      for high in range(low, 4):
        counts = np.bincount([low, high], minlength=4)
        joint[low, high] = np.exp(sum(count_log_probs[b, k, counts[k]] for k in range(4)))
    joint /= joint.sum()
    np.testing.assert_allclose(np.exp(first[b]), joint.sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(np.exp(second[b]), joint.sum(axis=0), rtol=1e-5)
  assert judge.sorted_multisets(10, 2).shape == (55, 2) and judge.sorted_multisets(10, 1).shape == (10, 1)


def test_counted_heads_give_normalised_marginals_and_a_frame_count_loss():
  config = judge.JudgeConfig(
      image_shape=(16, 16, 1), heads=(("digit_1", 4), ("digit_2", 4), ("direction", 3)), channels=(4, 6),
      feature_size=7, lstm_size=5, counted_heads=("digit_1", "digit_2"),
  )
  model = judge.Judge(config)
  videos = np.random.default_rng(0).random((3, 5, 16, 16, 1)).astype(np.float32)
  output = model.apply(model.init(jax.random.key(0), videos), videos)
  assert list(output.logits) == ["digit_1", "digit_2", "direction"] and output.frame_count_log_probs.shape == (3, 5, 4, 3)
  np.testing.assert_allclose(np.exp(output.logits["digit_2"]).sum(axis=-1), 1.0, rtol=1e-5)
  labels = {"digit_1": np.array([0, 1, 3]), "digit_2": np.array([2, 1, 3]), "direction": np.array([0, 1, 2])}
  counts = np.array([[1, 0, 1, 0], [0, 2, 0, 0], [0, 0, 0, 2]])  # [B, K] copies of each class in the labels
  certain = np.where(np.arange(3) == counts[:, None, :, None], 0.0, -60.0) * np.ones((3, 5, 4, 3))  # [B, T, K, 3]
  marginals = judge.multiset_log_marginals(certain.mean(axis=1), 2)
  perfect = judge.JudgeOutput(
      {"digit_1": marginals[0], "digit_2": marginals[1], "direction": 50.0 * np.eye(3)}, output.features, certain
  )
  loss, scores = judge.cross_entropy(perfect, labels, config.counted_heads)
  assert float(scores["accuracy_digit_1"]) == float(scores["accuracy_digit_2"]) == 1.0 and float(loss) < 1e-6
  loss, scores = judge.cross_entropy(output, labels, config.counted_heads)
  np.testing.assert_allclose(float(loss), (float(scores["loss_direction"]) + float(scores["loss_frame_counts"])) / 2, rtol=1e-6)
  with pytest.raises(ValueError, match="must share one number of classes"):
    judge.JudgeConfig(heads=(("digit_1", 4), ("digit_2", 5)), counted_heads=("digit_1", "digit_2"))
  with pytest.raises(ValueError, match="must be heads"):
    judge.JudgeConfig(heads=(("digit_1", 4),), counted_heads=("digit_1", "digit_2"))


def test_exported_judge_reloads_bit_identically_and_refuses_a_damaged_file(tiny_judge, tmp_path):
  workdir, info = tiny_judge
  assert set(info["test_accuracy"]) == {"action", "body", "bottom", "top", "hair"}
  assert info["dynamic_heads"] == ["action"] and info["image_shape"] == [32, 32, 3]
  validation = info["validation_accuracy"]
  assert set(validation) == {"20", "40"} and info["validation_videos"] == 100
  best = max(validation, key=lambda step: (min(validation[step].values()), np.mean(list(validation[step].values())), int(step)))
  assert info["train_steps"] == int(best)
  loaded, restored = judges.load(workdir), runs.restore(workdir, int(best))
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(restored.params)))
  damaged = tmp_path / "damaged"
  damaged.mkdir()
  for name in (judges.INFO_FILE, judges.PARAMS_FILE):
    content = open(os.path.join(workdir, name), "rb").read()
    (damaged / name).write_bytes(content[:-10] + b"0123456789" if name == judges.PARAMS_FILE else content)
  with pytest.raises(judges.JudgeError, match="does not match the sha256"):
    judges.load(str(damaged))


def evaluate_command(workdir: str, judge_dir: str, *extra: str) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, "-m", "experiments.evaluate", f"--workdir={workdir}", f"--judge={judge_dir}", "--rounds=2",
       "--num_test_videos=45", "--num_train_codes=45", *extra],
      cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600,
  )


def evaluate(workdir: str, judge_dir: str, **options) -> dict:
  return report.evaluate_run(workdir, judge_dir, rounds=2, num_test_videos=45, num_train_codes=45, **options)


def test_in_loop_protocols_score_what_evaluate_scores_on_the_same_videos(built, tiny_judge, tmp_path):  # noqa: F811
  judge_dir, _ = tiny_judge
  config = dsa_sprites.get_config("quick")
  config.data.data_dir = tfds_dir(built)
  config.train.num_steps, config.train.log_every, config.train.checkpoint_every = 2, 2, 2
  config.evals.validation.num_videos = 90
  workdir = str(tmp_path / "dsa")
  train.train_and_evaluate(config, workdir)
  assert report.choice(workdir, None)["chosen_on"] == "validation"
  settings = evaluators.Settings(config.data, "test", 45, 8, 16, rounds=2, judge=judge_dir)
  in_loop = evaluators.make("protocols", settings).run(runs.restore(workdir).codec, jax.random.fold_in(jax.random.key(0), 0))
  scored = evaluate(workdir, judge_dir, allow_weak_judge=True)
  for group, prefix in (("standard_protocol", "standard_"), ("reverse_protocol", "reverse_")):
    assert {f"{prefix}{name}": value["mean"] for name, value in scored[group].items()} == {
        name: value for name, value in in_loop.items() if name.startswith(prefix)
    }
  assert scored["selection"]["chosen_on"] == "validation" and scored["reverse_draws"] == "field"
  assert scored["ceiling"]["action_accuracy"] > 0.1 and "action_inception_score_fraction" in scored["fraction_of_ceiling"]


def test_evaluate_scores_a_dsa_quick_run_and_writes_results_per_step(built, tiny_judge, tmp_path):  # noqa: F811
  judge_dir, _ = tiny_judge
  config = dsa_sprites.get_config("quick")
  config.data.data_dir = tfds_dir(built)
  config.train.num_steps, config.train.log_every, config.train.checkpoint_every = 4, 2, 2
  workdir = str(tmp_path / "dsa")
  train.train_and_evaluate(config, workdir)
  with pytest.raises(judges.JudgeError, match="pass --allow_weak_judge"):
    evaluate(workdir, judge_dir)
  result = evaluate_command(workdir, judge_dir, "--allow_weak_judge", "--save_videos")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "| standard_protocol | action_accuracy |" in result.stdout
  out_dir = os.path.join(workdir, "evaluation", "step_4")
  results = json.load(open(os.path.join(out_dir, report.RESULTS_FILE)))
  assert results["step"] == 4 and results["test_videos"] == 45 and results["notes"][0].startswith("weak judge")
  assert set(results["standard_protocol"]) == {"action_accuracy", "action_inception_score", "action_h_y_given_x", "action_h_y"}
  assert {"body_accuracy", "action_accuracy"} <= set(results["reverse_protocol"])
  assert {"hair_from_static", "action_from_dynamics"} <= set(results["embedding_table"])
  assert {"judge_frechet_distance", "reconstruction_mse"} == set(results["generation"])
  assert results["judge"]["params_sha256"] == tiny_judge[1]["params_sha256"]
  videos = np.load(os.path.join(out_dir, report.VIDEOS_FILE))
  assert videos["standard_videos"].shape == (45, 8, 32, 32, 3) and videos["standard_videos"].dtype == np.uint8
  _, labels = report.load_labelled(config.data, "test", {"heads": [["action", 9]]}, 45)
  np.testing.assert_array_equal(videos["label_action"], labels["action"])
  assert os.path.isfile(os.path.join(out_dir, report.TABLE_FILE)) and os.path.isfile(os.path.join(out_dir, "swap_grid.gif"))
  step_4_results = os.path.join(out_dir, report.RESULTS_FILE)
  evaluated_at = os.stat(step_4_results).st_mtime_ns
  copy = str(tmp_path / "docs" / "curve")
  command = [sys.executable, "-m", "experiments.learning_curve", "--source=test", f"--workdir={workdir}", f"--judge={judge_dir}", "--rounds=2",
             "--num_test_videos=45", "--num_train_codes=45", "--allow_weak_judge", f"--copy_to={copy}"]
  curve_run = subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert curve_run.returncode == 0, curve_run.stderr[-3000:]
  assert "Evaluating step 2 " in curve_run.stdout and "Evaluating step 4 " not in curve_run.stdout
  curve = json.load(open(copy + ".json"))
  assert os.stat(step_4_results).st_mtime_ns == evaluated_at  # step 4 was scored above with these settings: reused
  assert [point["step"] for point in curve["points"]] == [2, 4] and curve["test_videos"] == 45
  assert 0 < curve["points"][0]["wall_seconds"] < curve["points"][1]["wall_seconds"]
  assert curve["points"][1]["standard_protocol"] == results["standard_protocol"]
  assert json.load(open(os.path.join(workdir, "evaluation", curves.CURVE_FILE))) == curve
  assert open(os.path.join(workdir, "evaluation", curves.FIGURE_FILE), "rb").read() == open(copy + ".png", "rb").read()
  assert open(copy + ".png", "rb").read(4) == b"\x89PNG"
  rows = curves.table(curve).splitlines()
  assert rows == curve_run.stdout.strip().splitlines()[-4:]
  assert rows[0].startswith("| step | wall | Acc action | IS action | reverse ") and rows[3].startswith("| 4 | 0m")
  one_round = curves.learning_curve(workdir, judge_dir, rounds=1, allow_weak_judge=True, num_test_videos=45, num_train_codes=45)
  assert os.stat(step_4_results).st_mtime_ns == evaluated_at  # experiments.evaluate's results are never overwritten
  curve_results = json.load(open(os.path.join(workdir, "evaluation", curves.CURVE_DIR, "step_4", report.RESULTS_FILE)))
  assert curve_results["rounds"] == 1 and one_round["points"][1]["standard_protocol"] == curve_results["standard_protocol"]
  with pytest.raises(judges.JudgeError, match=r"The 20 test videos scored have no action of class \[1\]"):
    report.evaluate_run(workdir, judge_dir, rounds=1, allow_weak_judge=True, num_test_videos=20)
  row = benchmark.measure(workdir, judge_dir, rounds=1, num_test_videos=45, allow_weak_judge=True)
  assert (row["step"], row["test_videos"], row["rounds"]) == (4, 45, 1)
  assert all(row[f"{part}_s"] > 0 for part in benchmark.PARTS) and row["total_s"] >= sum(row[f"{part}_s"] for part in benchmark.PARTS)
  lines = benchmark.table([row]).splitlines()
  assert lines[0] == "| " + " | ".join(benchmark.HEADER) + " |" and lines[2].startswith(f"| {os.path.basename(workdir)} | 4 | 45 | 1 |")


def test_evaluate_scores_a_vdsm_quick_run_resized_to_the_judge(built, tiny_judge, tmp_path):  # noqa: F811
  config = shortened(vdsm_sprites.get_config("quick"), tfds_dir(built))
  config.sample.rollout_temperature = 0.5
  workdir = str(tmp_path / "vdsm")
  train.train_and_evaluate(config, workdir)
  assert_both_stages_ran(workdir)
  results = evaluate(workdir, tiny_judge[0], allow_weak_judge=True)
  assert results["stage"] == "sequence" and results["step"] == 3
  assert "the run's [16, 16, 3] frames were resized to the judge's [32, 32, 3]" in results["notes"]
  assert any(note.startswith("sampled at rollout temperature 0.5 ") for note in results["notes"])
  assert all(np.isfinite(value["mean"]) for value in results["standard_protocol"].values())
  assert {"body_accuracy", "action_accuracy"} <= set(results["reverse_protocol"])
  assert results["generation"]["reconstruction_mse"] < 0.25
  assert os.path.isfile(os.path.join(workdir, "sequence", "evaluation", "step_3", report.RESULTS_FILE))
  again = evaluate(workdir, tiny_judge[0], allow_weak_judge=True)  # the seeds are fixed: a rerun gives the same numbers
  groups = ("standard_protocol", "reverse_protocol", "embedding_table", "swap_agreement", "generation")
  assert {group: again[group] for group in groups} == {group: results[group] for group in groups}
  from_density = evaluate(workdir, tiny_judge[0], allow_weak_judge=True, code_source="train_density", density_components=4)
  assert any(note.startswith("the protocols drew codes from a 4-component mixture fitted to 45 training videos") for note in from_density["notes"])
  assert (from_density["code_source"], from_density["density_components"], results["code_source"]) == ("train_density", 4, "prior")
  assert from_density["standard_protocol"] != results["standard_protocol"]
  assert from_density["embedding_table"] == results["embedding_table"]  # only the protocols' draws change
  assert os.path.isfile(os.path.join(workdir, "sequence", "evaluation", "step_3_train_density", report.RESULTS_FILE))
  with pytest.raises(judges.JudgeError, match="raise num_train_codes to at least 46"):
    evaluate(workdir, tiny_judge[0], allow_weak_judge=True, code_source="train_density", density_components=46)


def test_evaluate_refuses_bad_input_with_one_line(tiny_judge, tmp_path):
  judge_dir, _ = tiny_judge
  no_run = evaluate_command(str(tmp_path / "nothing"), judge_dir)
  assert no_run.returncode == 1 and no_run.stderr.strip().splitlines()[-1].startswith("CheckpointError: No checkpoint in")
  with pytest.raises(judges.JudgeError, match="rounds=0"):
    report.evaluate_run(str(tmp_path), judge_dir, rounds=0)
  with pytest.raises(judges.JudgeError, match="code_source='posterior' is not one of"):
    report.evaluate_run(str(tmp_path), judge_dir, code_source="posterior")


def test_the_shipped_sprites_judge_is_intact_strong_and_right_on_real_test_videos(built):  # noqa: F811
  shipped = judges.load(judges.shipped("sprites"))
  assert shipped.info["dataset"] == "sprites" and shipped.info["image_shape"] == [64, 64, 3]
  assert judges.weak_heads(shipped) == {} and set(shipped.info["test_accuracy"]) == {"action", "body", "bottom", "top", "hair"}
  config = judge_sprites.get_config()
  config.data.data_dir = tfds_dir(built)
  videos, labels = report.load_labelled(config.data, "test", shipped.info)  # all 2664: the ceiling row
  probabilities, features = shipped.predict(videos)
  assert features.shape == (2664, 2 * shipped.info["lstm_size"])
  for head, truth in labels.items():
    assert np.mean(probabilities[head].argmax(axis=-1) == truth) == shipped.info["test_accuracy"][head] == 1.0, head
  ceiling = protocols.standard_round(shipped, videos, labels)
  assert ceiling["action_accuracy"] == 1.0 and ceiling["action_h_y"] == pytest.approx(np.log(9))
  assert ceiling["action_inception_score"] > 8.8
  with pytest.raises(judges.JudgeError, match="No judge ships for dataset 'mug'"):
    judges.shipped("mug")
