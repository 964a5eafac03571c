"""Validation splits, in-loop evaluators and the checkpoint chosen on them: never on test."""

import json
import os

import jax
import numpy as np
import pytest
from ml_collections import config_dict

from dsa_jax import checkpointing, config_checks, data, metric_writer, selection, tasks, train
from dsa_jax.evaluation import evaluators, report
from experiments import entry
from tests.test_train import tiny_config


def test_validation_mask_holds_out_whole_identities_in_a_fixed_order():
  identities = np.repeat(np.arange(12), 3)  # [36]: 12 identities of 3 videos
  mask = data.validation_mask(7, identities, len(identities))
  held = set(identities[mask])
  assert mask.sum() == 9 and len(held) == 3  # whole identities until at least 7 videos
  assert not held & set(identities[~mask])
  np.testing.assert_array_equal(mask, data.validation_mask(7, identities, len(identities)))
  assert data.validation_mask(7, None, 36).sum() == 7
  with pytest.raises(data.DataError, match="holds out every training identity"):
    data.validation_mask(35, identities, len(identities))
  with pytest.raises(data.DataError, match="must be above 0 and below the 36"):
    data.validation_mask(36, None, 36)


def test_sprites_validation_and_training_splits_share_no_character():
  shared = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "lpc_sprites")
  if not os.path.isdir(shared):
    pytest.skip(f"The LPC layers are not at {shared} (see the README's Datasets section).")
  from tests.conftest import shared_data_dir  # noqa: PLC0415 - the session's Sprites cache, shared with test_sprites

  config = config_dict.ConfigDict({
      "name": "sprites", "variant": None, "data_dir": shared_data_dir("sprites"), "manual_dir": shared,
      "validation_videos": 900,
  })
  train_source, validation_source = data.load_source(config, "train"), data.load_source(config, "validation")
  train_characters = data.label_values(train_source, "character")
  validation_characters = data.label_values(validation_source, "character")
  assert len(train_source) == 8100 and len(validation_source) == 900
  assert len(set(validation_characters)) == 100 and not set(train_characters) & set(validation_characters)
  assert data.held_out_identity_key("pendulum") is None


def test_best_step_takes_the_later_step_on_a_tie_and_honours_the_mode():
  scores = {400: 0.5, 800: 0.9, 1200: 0.9, 1600: 0.2}
  assert selection.best_step(scores, "max") == 1200
  assert selection.best_step(scores, "min") == 1600
  assert selection.best_step({400: 0.2, 800: 0.2}, "min") == 800


def test_selection_file_records_every_step_and_the_choice(tmp_path):
  rule = selection.Rule("validation", "accuracy", "max")
  assert selection.update(str(tmp_path), rule, 100, {"accuracy": 0.5, "seconds": 1.0}) == 100
  assert selection.choose(str(tmp_path), rule, 200, {"accuracy": 0.4}) == 100
  assert selection.update(str(tmp_path), rule, 200, {"accuracy": 0.7}) == 200
  record = selection.read(str(tmp_path))
  assert record["step"] == 200 and record["scores"][100]["accuracy"] == 0.5
  assert record["rule"] == {"metric": "validation/accuracy", "mode": "max", "ties": "later step"}
  with pytest.raises(ValueError, match="has no score 'accuracy'; its scores are"):
    selection.update(str(tmp_path), rule, 300, {"loss": 1.0})


def test_rule_needs_its_evaluator_in_config_evals():
  select = config_dict.ConfigDict({"metric": "validation/standard_action_accuracy", "mode": "max"})
  assert selection.rule(select, {}) is None
  assert selection.rule(select, {"validation": {}}) == selection.Rule("validation", "standard_action_accuracy", "max")
  with pytest.raises(ValueError, match="is not EVALUATOR/SCORE"):
    selection.rule(config_dict.ConfigDict({"metric": "accuracy", "mode": "max"}), {})
  with pytest.raises(ValueError, match="must be one of"):
    selection.rule(config_dict.ConfigDict({"metric": "a/b", "mode": "best"}), {})


def test_checkpointer_never_deletes_the_selected_step(tmp_path):
  checkpointer = checkpointing.Checkpointer(str(tmp_path), save_every=1, max_to_keep=1)
  config = config_dict.ConfigDict({"a": 1})
  checkpointer.select(2)
  for step in range(1, 6):
    checkpointer.save(step, {"w": np.full(3, step, np.float32)}, config, {})
    checkpointer.wait()
  assert checkpointer.all_steps() == [2, 5]
  checkpointer.select(5)
  checkpointer.save(6, {"w": np.zeros(3, np.float32)}, config, {})
  checkpointer.close()
  assert checkpointing.Checkpointer(str(tmp_path), 1, read_only=True).all_steps() == [5, 6]


def pendulum_validation_config(data_dir: str):
  """The tiny pendulum run of test_train, with the pendulum evaluator on 8 validation videos at each checkpoint."""
  config = tiny_config(data_dir, **{"train.num_steps": 6, "train.checkpoint_every": 2, "train.max_checkpoints": 1})
  config.data.validation_videos = 8
  config.evals = config_dict.ConfigDict({"validation": {"type": "pendulum", "every_steps": 2, "num_videos": 8}})
  config.select.metric = "validation/colour_follows_static_source"
  return config


def test_training_scores_validation_and_keeps_the_checkpoint_chosen_on_it(data_dir, tmp_path, monkeypatch):
  config = pendulum_validation_config(data_dir)
  config.evaluators = ()
  scores_at_steps = [0.5, 0.75, 0.25]  # steps 2, 4, 6: step 4 is the best, and max_checkpoints=1 would delete it
  monkeypatch.setattr(
      evaluators.pendulum, "run", lambda *args: {"colour_follows_static_source": scores_at_steps.pop(0)}
  )
  workdir = str(tmp_path)
  train.train_and_evaluate(config, workdir)
  record = selection.read(workdir)
  assert record["step"] == 4 and sorted(record["scores"]) == [2, 4, 6]
  assert checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), 1, read_only=True).all_steps() == [4, 6]
  logged = metric_writer.read_metrics(workdir)
  assert logged[4]["validation/colour_follows_static_source"] == 0.75 and "validation/seconds" in logged[4]
  chosen = report.choice(workdir, None)
  assert chosen["step"] == 4 and chosen["chosen_on"] == "validation" and chosen["validation_scores"]["seconds"] >= 0
  named = "the checkpoint of step 6 was named by --step, not chosen on the validation split"
  assert report.choice(workdir, 6)["notes"] == [named]


def test_validation_evaluators_read_only_the_validation_split(data_dir, monkeypatch):
  config = pendulum_validation_config(data_dir)
  splits = []
  load_source = data.load_source
  monkeypatch.setattr(
      data, "load_source", lambda data_config, split: splits.append(split) or load_source(data_config, split)
  )
  scheduled = evaluators.validation_evaluators(config, horizon=16)
  assert [item.name for item in scheduled] == ["validation"] and set(splits) == {"validation", "train"}
  monkeypatch.setattr(data, "load_source", lambda data_config, split: pytest.fail(f"selection read the {split} split"))
  monkeypatch.setattr(evaluators.pendulum, "run", lambda *args: {"score": 1.0})
  assert evaluators.run_scheduled(scheduled, None, jax.random.key(0), 2, False)["validation"]["score"] == 1.0


def test_config_refuses_evals_it_cannot_run(data_dir):
  config = pendulum_validation_config(data_dir)
  config.evals.validation.every_steps = 3
  with pytest.raises(tasks.ConfigError, match=r"evals.validation.every_steps=3 is out of range: it must be a multiple"):
    config_checks.validate(config)
  config = pendulum_validation_config(data_dir)
  config.data.validation_videos = 0
  with pytest.raises(tasks.ConfigError, match="scores the validation split, but config.data.validation_videos is 0"):
    config_checks.validate(config)
  config = pendulum_validation_config(data_dir)
  config.select.metric = "validation"
  with pytest.raises(tasks.ConfigError, match="is not EVALUATOR/SCORE"):
    config_checks.validate(config)


def test_run_refuses_repeated_or_negative_seeds():
  assert entry.parse_seeds(["0", "2", "1"]) == [0, 2, 1]
  for bad in (["0", "0"], ["-1"], ["a"]):
    with pytest.raises(tasks.ConfigError, match="--seeds="):
      entry.parse_seeds(bad)


def test_selection_json_is_plain_json(tmp_path):
  selection.update(str(tmp_path), selection.Rule("v", "a", "max"), 7, {"a": 1.0})
  with open(tmp_path / selection.SELECTION_FILE) as file:
    assert json.load(file)["scores"] == {"7": {"a": 1.0}}
