"""The checkpoint a run reports: chosen on validation scores by the rule in `config.select`, never on test.

`config.select.metric` names an in-loop evaluator and one of its scores ("EVALUATOR/SCORE", e.g.
"validation/standard_action_accuracy"); `config.select.mode` is "max" or "min". Ties go to the later
step. Each stage keeps its choice in `selection.json` beside its checkpoints: the rule, the selected
step and every scored step's validation scores; the checkpointer never deletes the selected step.
"""

import json
import os
from typing import Any, NamedTuple

from dsa_jax import visualize

SELECTION_FILE = "selection.json"
MODES = ("max", "min")


class Rule(NamedTuple):
  """Which validation score chooses the checkpoint, and whether higher or lower is better."""

  evaluator: str  # a name in config.evals
  score: str  # one of its scores
  mode: str  # "max" or "min"

  @property
  def metric(self) -> str:
    """EVALUATOR/SCORE, as logged."""
    return f"{self.evaluator}/{self.score}"


def rule(select_config, evals_config) -> Rule | None:
  """The config's selection rule, or None when config.evals does not run the evaluator it names."""
  evaluator, separator, score = select_config.metric.partition("/")
  if not separator or not score:
    raise ValueError(
        f"config.select.metric={select_config.metric!r} is not EVALUATOR/SCORE; "
        "e.g. validation/standard_action_accuracy."
    )
  if select_config.mode not in MODES:
    raise ValueError(f"config.select.mode={select_config.mode!r} must be one of {MODES}.")
  if evaluator not in evals_config:
    return None
  return Rule(evaluator, score, select_config.mode)


def best_step(scores_by_step: dict[int, float], mode: str) -> int:
  """The step with the best score (the later step on a tie)."""
  sign = 1.0 if mode == "max" else -1.0
  return max(scores_by_step, key=lambda step: (sign * scores_by_step[step], step))


def read(stage_dir: str) -> dict[str, Any] | None:
  """A stage's selection.json (rule, selected step, validation scores by step), or None."""
  path = os.path.join(stage_dir, SELECTION_FILE)
  if not os.path.isfile(path):
    return None
  with open(path) as file:
    record = json.load(file)
  record["scores"] = {int(step): scores for step, scores in record["scores"].items()}
  return record


def _selected(record: dict[str, Any], chosen_by: Rule, step: int, scores: dict[str, float]) -> int:
  """The best step of a selection record once `step`'s scores join it."""
  if chosen_by.score not in scores:
    raise ValueError(
        f"config.select.metric={chosen_by.metric!r}: evaluator {chosen_by.evaluator!r} has no score "
        f"{chosen_by.score!r}; its scores are {sorted(scores)}."
    )
  scored = {s: values[chosen_by.score] for s, values in record["scores"].items()} | {step: scores[chosen_by.score]}
  return best_step(scored, chosen_by.mode)


def choose(stage_dir: str, chosen_by: Rule, step: int, scores: dict[str, float]) -> int:
  """The step selected once `step`'s validation scores join those in selection.json (nothing written)."""
  return _selected(read(stage_dir) or {"scores": {}}, chosen_by, step, scores)


def update(stage_dir: str, chosen_by: Rule, step: int, scores: dict[str, float]) -> int:
  """Adds a step's validation scores to selection.json (atomically, its checkpoint on disk); returns the selected step."""
  record = read(stage_dir) or {"scores": {}}
  selected = _selected(record, chosen_by, step, scores)
  record["scores"][step] = scores
  record.update(rule={"metric": chosen_by.metric, "mode": chosen_by.mode, "ties": "later step"}, step=selected)
  content = {**record, "scores": {str(s): values for s, values in sorted(record["scores"].items())}}
  visualize.write_atomically(os.path.join(stage_dir, SELECTION_FILE), json.dumps(content, indent=2).encode())
  return selected
