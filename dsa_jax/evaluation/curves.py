"""Learning curves: the validation scores a run logged during training (`validation_curve`), or, as a
diagnostic that chooses nothing, every kept checkpoint scored on test (`learning_curve`)."""

import json
import os
from typing import Any

from dsa_jax import checkpointing, metric_writer, runs, selection, tasks, visualize, workdirs
from dsa_jax.evaluation import judges, report

CURVE_FILE = "learning_curve.json"
FIGURE_FILE = "learning_curve.png"
VALIDATION_CURVE_FILE = "validation_curve.json"
VALIDATION_FIGURE_FILE = "validation_curve.png"
CURVE_DIR = "learning_curve"  # its own evaluations, so that experiments.evaluate's results are never overwritten


def _checkpoints(stage_dir: str) -> tuple[list[int], str]:
  """Steps of every complete checkpoint in a stage folder, oldest first, and the dataset it trained on."""
  checkpointer = checkpointing.Checkpointer(checkpointing.checkpoint_dir(stage_dir), 1, read_only=True)
  try:
    steps = checkpointer.all_steps()
    return steps, checkpointer.restore_config(steps[-1]).data.name
  finally:
    checkpointer.close()


def run_wall_seconds(stage_dir: str, stage: str | None, model: str) -> dict[int, float]:
  """Wall time of the whole run at each logged step of a stage: the earlier stages' full time added."""
  earlier = 0.0
  if stage is not None:
    names = tasks.MODELS[model].stage_names
    for name in names[: names.index(stage)]:
      earlier += max(metric_writer.wall_seconds_by_step(os.path.join(os.path.dirname(stage_dir), name)).values(), default=0.0)
  return {step: earlier + seconds for step, seconds in metric_writer.wall_seconds_by_step(stage_dir).items()}


def _curve_step_dir(stage_dir: str, step: int) -> str:
  """Where the curve keeps a checkpoint's evaluation when experiments.evaluate's has other settings."""
  return os.path.join(stage_dir, "evaluation", CURVE_DIR, f"step_{step}")


def _cached_results(stage_dir: str, step: int, settings: dict[str, Any], judge_sha256: str) -> dict[str, Any] | None:
  """A checkpoint's results.json from an earlier evaluation with the same settings and judge, or None."""
  for directory in (report.step_evaluation_dir(stage_dir, step), _curve_step_dir(stage_dir, step)):
    path = os.path.join(directory, report.RESULTS_FILE)
    if not os.path.isfile(path):
      continue
    with open(path) as file:
      results = json.load(file)
    if all(results.get(name) == value for name, value in settings.items()) and results["judge"]["params_sha256"] == judge_sha256:
      return results
  return None


def learning_curve(
    workdir: str, judge_dir: str | None = None, rounds: int = 1, seed: int = 0, allow_weak_judge: bool = False,
    num_test_videos: int | None = None, num_train_codes: int = 2000,
) -> dict[str, Any]:
  """Evaluates every kept checkpoint of a run's latest stage (reusing results of the same settings); writes the curve."""
  stage_dir = runs.run_dir(workdir)
  steps, dataset = _checkpoints(stage_dir)
  judge_sha256 = judges.load(judge_dir or judges.shipped(dataset)).info["params_sha256"]
  settings = {
      "rounds": rounds, "seed": seed, "num_test_videos_requested": num_test_videos, "train_codes_requested": num_train_codes,
      "reverse_draws": "field",
  }
  points = []
  for step in steps:
    results = _cached_results(stage_dir, step, settings, judge_sha256)
    if results is None:
      print(f"Evaluating step {step} of {stage_dir} ({rounds} round(s)).", flush=True)
      results = report.evaluate_run(
          workdir, judge_dir, rounds, seed, allow_weak_judge, step=step, num_test_videos=num_test_videos,
          num_train_codes=num_train_codes, out_dir=_curve_step_dir(stage_dir, step),
      )
    wall = run_wall_seconds(stage_dir, results["stage"], results["config"]["model"])
    points.append({
        "step": step, "stage": results["stage"], "wall_seconds": wall.get(step),
        **{part: results[part] for part in ("standard_protocol", "reverse_protocol", "embedding_table", "generation")},
    })
  curve = {
      "workdir": workdirs.expand(workdir), "model": results["config"]["model"], "judge_sha256": judge_sha256,
      "test_videos": results["test_videos"], **settings, "points": points,
  }
  return written(curve, stage_dir, (CURVE_FILE, FIGURE_FILE), plot)


def plot(curve: dict[str, Any], path: str) -> str:
  """Standard-protocol Acc and IS and the reverse protocol's accuracies, against step (left) and wall hours (right)."""
  plt = visualize.pyplot()
  points = curve["points"]
  figure, axes = plt.subplots(3, 2, figsize=(10, 9), sharex="col")
  abscissae = {
      "training step": [point["step"] for point in points],
      "wall time (hours)": [(point["wall_seconds"] or 0.0) / 3600 for point in points],
  }
  for column, (label, xs) in enumerate(abscissae.items()):
    for row, (name, suffix) in enumerate((("Acc", "_accuracy"), ("IS", "_inception_score"))):
      for key in _standard_keys(curve, suffix):
        means = [point["standard_protocol"][key]["mean"] for point in points]
        stds = [point["standard_protocol"][key]["std"] for point in points]
        axes[row, column].errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=key.removesuffix(suffix))
      axes[row, column].set_ylabel(f"standard protocol {name}")
      axes[row, column].legend(fontsize=8)
    for key in points[-1]["reverse_protocol"]:
      ys = [point["reverse_protocol"][key]["mean"] for point in points]
      axes[2, column].plot(xs, ys, marker="o", label=key.removesuffix("_accuracy"))
    axes[2, column].set_ylabel("reverse protocol accuracy")
    axes[2, column].set_xlabel(label)
    axes[2, column].legend(fontsize=8)
  figure.suptitle(f"{curve['model']} {os.path.basename(curve['workdir'])}: {curve['rounds']} round(s) over {curve['test_videos']} test videos per checkpoint")
  figure.tight_layout()
  return visualize.save_figure(figure, path)


def _standard_keys(curve: dict[str, Any], suffix: str) -> list[str]:
  """The standard protocol's metrics ending in suffix, one per dynamic head (Sprites: action)."""
  return [key for key in curve["points"][-1]["standard_protocol"] if key.endswith(suffix)]


def table(curve: dict[str, Any]) -> str:
  """The curve as a markdown table: one row per checkpoint."""
  accuracies, scores = _standard_keys(curve, "_accuracy"), _standard_keys(curve, "_inception_score")
  attributes = list(curve["points"][-1]["reverse_protocol"])
  header = ["step", "wall", *(f"Acc {key.removesuffix('_accuracy')}" for key in accuracies),
            *(f"IS {key.removesuffix('_inception_score')}" for key in scores),
            *(f"reverse {name.removesuffix('_accuracy')}" for name in attributes)]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for point in curve["points"]:
    standard, reverse = point["standard_protocol"], point["reverse_protocol"]
    wall = metric_writer.format_duration(point["wall_seconds"]) if point["wall_seconds"] is not None else "n/a"
    cells = [str(point["step"]), wall, *(f"{standard[key]['mean']:.2%}" for key in accuracies),
             *(f"{standard[key]['mean']:.3f}" for key in scores), *(f"{reverse[name]['mean']:.2%}" for name in attributes)]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def written(curve: dict[str, Any], stage_dir: str, files: tuple[str, str], draw) -> dict[str, Any]:
  """Writes a curve as JSON and draws it as PNG (files: their names) in STAGE/evaluation/; returns the curve."""
  directory = os.path.join(stage_dir, "evaluation")
  visualize.write_atomically(os.path.join(directory, files[0]), json.dumps(curve, indent=2).encode())
  draw(curve, os.path.join(directory, files[1]))
  return curve


def validation_curve(workdir: str) -> dict[str, Any]:
  """Every EVALUATOR/SCORE the run's latest stage logged in training, by step, and the selected step; writes JSON, PNG."""
  stage_dir = runs.run_dir(workdir)
  logged = metric_writer.read_metrics(stage_dir)
  scores = {
      step: {name: value for name, value in row.items() if "/" in name and not name.endswith("/seconds")}
      for step, row in sorted(logged.items())
  }
  scores = {step: values for step, values in scores.items() if values}
  if not scores:
    raise checkpointing.CheckpointError(
        f"{stage_dir} logged no validation scores: its config has no config.evals. Score its checkpoints on test "
        "with --source=test (a diagnostic), or train with config.evals."
    )
  chosen = selection.read(stage_dir)
  wall = metric_writer.wall_seconds_by_step(stage_dir)
  curve = {
      "workdir": workdirs.expand(workdir), "selected_step": None if chosen is None else chosen["step"],
      "rule": None if chosen is None else chosen["rule"],
      "points": [{"step": step, "wall_seconds": wall.get(step), "scores": values} for step, values in scores.items()],
  }
  return written(curve, stage_dir, (VALIDATION_CURVE_FILE, VALIDATION_FIGURE_FILE), plot_validation)


def plot_validation(curve: dict[str, Any], path: str) -> str:
  """One panel per kind of score (accuracies, IS, entropies), each score against step, the selected step marked."""
  plt = visualize.pyplot()
  names = list(dict.fromkeys(name for point in curve["points"] for name in point["scores"]))
  kinds = {
      "accuracy": [name for name in names if name.endswith("accuracy")],
      "inception score": [name for name in names if name.endswith("inception_score")],
      "other": [name for name in names if not name.endswith(("accuracy", "inception_score"))],
  }
  kinds = {kind: members for kind, members in kinds.items() if members}
  figure, axes = plt.subplots(len(kinds), 1, figsize=(8, 3.2 * len(kinds)), sharex=True, squeeze=False)
  for axis, (kind, members) in zip(axes[:, 0], kinds.items()):
    for name in members:
      points = [point for point in curve["points"] if name in point["scores"]]
      axis.plot([p["step"] for p in points], [p["scores"][name] for p in points], marker="o", label=name)
    if curve["selected_step"] is not None:
      axis.axvline(curve["selected_step"], color="grey", linestyle="--", label="selected")
    axis.set_ylabel(kind)
    axis.legend(fontsize=7)
  axes[-1, 0].set_xlabel("training step")
  figure.suptitle(f"{os.path.basename(curve['workdir'])}: validation scores logged during training")
  figure.tight_layout()
  return visualize.save_figure(figure, path)


def validation_table(curve: dict[str, Any]) -> str:
  """The validation curve as a markdown table: one row per scored step, the selected one marked."""
  names = list(dict.fromkeys(name for point in curve["points"] for name in point["scores"]))
  lines = ["| step | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
  for point in curve["points"]:
    mark = " (selected)" if point["step"] == curve["selected_step"] else ""
    cells = [f"{point['scores'][name]:.4g}" if name in point["scores"] else "" for name in names]
    lines.append(f"| {point['step']}{mark} | " + " | ".join(cells) + " |")
  return "\n".join(lines)
