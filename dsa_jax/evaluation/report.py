"""Every metric that applies to a trained run, as results.json, results.md and figures (`evaluate_run`)."""

import contextlib
import io
import json
import os
import time
from typing import Any

import jax
import numpy as np

from dsa_jax import code_density, data, runs, sample_files, selection, visualize
from dsa_jax.evaluation import judges, protocols

RESULTS_FILE = "results.json"
TABLE_FILE = "results.md"
VIDEOS_FILE = "protocol_videos.npz"
# Where the protocols draw codes: the codec's priors (published), or a mixture fitted to training videos' codes.
CODE_SOURCES = ("prior", "train_density")


@contextlib.contextmanager
def timed(seconds: dict[str, float], part: str):
  """Adds the wall time of the block to seconds[part]."""
  started = time.perf_counter()
  yield
  seconds[part] = seconds.get(part, 0.0) + time.perf_counter() - started


def step_evaluation_dir(stage_dir: str, step: int) -> str:
  """Where experiments.evaluate keeps a stage's evaluation of one checkpoint step."""
  return os.path.join(stage_dir, "evaluation", f"step_{step}")


def evaluation_dir(run: runs.Run) -> str:
  """Where a run's evaluation of one checkpoint step is kept (never overwritten by another step's)."""
  return step_evaluation_dir(run.directory, run.step)


def load_labelled(data_config, split: str, judge_info: dict[str, Any], count: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """The first `count` (None: all) videos of a split as floats, and their labels of the judge's heads."""
  source = data.load_source(data_config, split)
  batch = data.first_examples(source, len(source) if count is None else count, data_config.num_frames, data_config.image_size)
  missing = [name for name, _ in judge_info["heads"] if name not in batch]
  if missing:
    dataset = f"{data_config.name}/{data_config.variant or 'default'}"
    raise judges.JudgeError(
        f"The judge's heads {missing} are not labels of {dataset} (it has {sorted(set(batch) - {data.VIDEO_KEY})}): "
        f"the judge was trained on another label set; pass --judge with one trained on {dataset} "
        f"(python -m experiments.train_judge --config=experiments/judge_{data_config.name}.py)."
    )
  labels = {name: np.asarray(batch[name]) for name, _ in judge_info["heads"]}
  return np.asarray(data.to_unit_interval(batch[data.VIDEO_KEY])), labels


def check_judge(trained: judges.TrainedJudge, run: runs.Run, allow_weak_judge: bool) -> list[str]:
  """Raises JudgeError where the judge does not fit the run; returns the notes the results must carry."""
  notes = []
  if trained.info["dataset"] != run.config.data.name:
    raise judges.JudgeError(
        f"The judge in {trained.directory} was trained on {trained.info['dataset']}, the run on {run.config.data.name}; "
        f"pass --judge with a {run.config.data.name} judge."
    )
  weak = judges.weak_heads(trained)
  if weak and not allow_weak_judge:
    raise judges.JudgeError(
        f"The judge in {trained.directory} scores under {judges.MINIMUM_ACCURACY:.0%} on real test videos for {weak}; "
        "train a stronger one, or pass --allow_weak_judge (the results then say so)."
    )
  judge_variant, run_variant = trained.info.get("variant") or "default", run.config.data.variant or "default"
  if judge_variant != run_variant:
    notes.append(f"the judge was trained on the {judge_variant} set of {trained.info['dataset']}, the run on {run_variant}")
  if weak:
    notes.append(f"weak judge: test accuracy {weak} under {judges.MINIMUM_ACCURACY:.0%}")
  if tuple(trained.info["image_shape"]) != tuple(run.image_shape):
    notes.append(f"the run's {list(run.image_shape)} frames were resized to the judge's {trained.info['image_shape']}")
  return notes


def check_balanced(trained: judges.TrainedJudge, labels: dict[str, np.ndarray]) -> None:
  """Raises JudgeError when a dynamic head's class is missing from the test videos (its class-balanced set would be empty)."""
  for head in protocols.head_roles(trained)[0]:
    missing = sorted(set(range(trained.classes[head])) - set(np.asarray(labels[head]).tolist()))
    if missing:
      raise judges.JudgeError(
          f"The {len(labels[head])} test videos scored have no {head} of class {missing}, so IS and H(y) have no "
          "class-balanced set; score more of them (raise --num_test_videos, or leave it unset for all)."
      )


def markdown_table(results: dict[str, Any]) -> str:
  """results.json as a Markdown table of metric, mean and std."""
  lines = ["| group | metric | mean | std |", "|---|---|---|---|"]
  for group in ("standard_protocol", "reverse_protocol", "fraction_of_ceiling"):
    for name, value in results.get(group, {}).items():
      lines.append(f"| {group} | {name} | {value['mean']:.4f} | {value['std']:.4f} |")
  for group in ("embedding_table", "swap_agreement", "generation", "ceiling"):
    for name, value in results.get(group, {}).items():
      lines.append(f"| {group} | {name} | {value:.4f} | |")
  notes = "".join(f"\n- {note}" for note in results["notes"])
  chosen = results.get("selection") or {}
  how = f" (chosen on validation by {chosen['rule']['mode']} {chosen['rule']['metric']})" if chosen.get("rule") else ""
  return (
      f"Run {results['run']} at step {results['step']}{how}; judge {results['judge']['directory']} "
      f"(sha256 {results['judge']['params_sha256']}); {results['rounds']} rounds over {results['test_videos']} test videos.{notes}\n\n" + "\n".join(lines) + "\n"
  )


def comparison_table(named_results: dict[str, dict[str, Any]]) -> str:
  """Several runs' results.json side by side: a row per metric (mean +- std over rounds), a column per run, code_source if any differ."""
  names = list(named_results)
  rows: dict[tuple[str, str], list[str]] = {}
  for column, results in enumerate(named_results.values()):
    for group in (
        "standard_protocol", "reverse_protocol", "fraction_of_ceiling", "embedding_table", "swap_agreement", "generation",
        "ceiling",
    ):
      for metric, value in results.get(group, {}).items():
        cell = f"{value['mean']:.4f} +- {value['std']:.4f}" if isinstance(value, dict) else f"{value:.4f}"
        rows.setdefault((group, metric), [""] * len(names))[column] = cell
  header = ["group", "metric", *names]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  run_rows = {name: [str(results[name]) for results in named_results.values()] for name in ("step", "rounds", "test_videos")}
  sources = [results.get("code_source", "prior") for results in named_results.values()]  # results before the option drew from the priors
  if set(sources) != {"prior"}:
    run_rows["code_source"] = sources
  lines += [f"| run | {name} | " + " | ".join(cells) + " |" for name, cells in run_rows.items()]
  lines += [f"| {group} | {metric} | " + " | ".join(cells) + " |" for (group, metric), cells in rows.items()]
  return "\n".join(lines)


def choice(workdir: str, step: int | None) -> dict[str, Any]:
  """Which checkpoint to score: `step` when given, else the one chosen on validation (selection.json), else the newest.

  Returns {"step", "chosen_on", "rule", "validation_scores", "notes"}; step None means the newest intact one.
  """
  if step is not None:
    note = f"the checkpoint of step {step} was named by --step, not chosen on the validation split"
    return {"step": step, "chosen_on": "--step", "rule": None, "validation_scores": None, "notes": [note]}
  record = selection.read(runs.run_dir(workdir))
  if record is None:
    note = "the newest checkpoint, not chosen on the validation split (the run's config has no config.evals)"
    return {"step": None, "chosen_on": "newest", "rule": None, "validation_scores": None, "notes": [note]}
  return {
      "step": record["step"], "chosen_on": "validation", "rule": record["rule"],
      "validation_scores": record["scores"][record["step"]], "notes": [],
  }


def evaluate_run(
    workdir: str, judge_dir: str | None = None, rounds: int = 5, seed: int = 0, allow_weak_judge: bool = False,
    save_videos: bool = False, num_train_codes: int = 2000, step: int | None = None, num_test_videos: int | None = None,
    out_dir: str | None = None, code_source: str = "prior", density_components: int = 32, reverse: str = "field",
) -> dict[str, Any]:
  """Scores a run's checkpoint chosen on validation (or `step`) with a judge; writes (default: in evaluation_dir) and returns the results.

  The judge defaults to the one shipped for the run's dataset; `reverse` picks what the reverse
  protocol decodes (protocols.REVERSE_DRAWS: the field's prior means, or prior samples).
  """
  if rounds < 1:
    raise judges.JudgeError(f"rounds={rounds}: the protocols need at least 1 round (5 is the field's).")
  if code_source not in CODE_SOURCES:
    raise judges.JudgeError(f"code_source={code_source!r} is not one of {CODE_SOURCES}; 'prior' is the published protocols'.")
  if reverse not in protocols.REVERSE_DRAWS:
    raise judges.JudgeError(f"reverse={reverse!r} is not one of {protocols.REVERSE_DRAWS}; 'field' is the field's protocol.")
  chosen = choice(workdir, step)
  run = runs.restore(workdir, chosen["step"])
  chosen["step"] = run.step
  trained = judges.load(judge_dir or judges.shipped(run.config.data.name))
  notes = check_judge(trained, run, allow_weak_judge) + chosen.pop("notes")
  if reverse != "field":
    notes.append(f"the reverse protocol decoded prior {reverse}, not the field's prior means: not comparable with published rows")
  if run.codec.rollout_temperature != 1.0:
    notes.append(
        f"sampled at rollout temperature {run.codec.rollout_temperature:g} (config.sample.rollout_temperature), "
        "not the model's 1: not comparable with published rows"
    )
  test_videos, test_labels = load_labelled(run.config.data, "test", trained.info, num_test_videos)
  check_balanced(trained, test_labels)
  train_videos, train_labels = load_labelled(run.config.data, "train", trained.info, num_train_codes)
  key = jax.random.key(seed)
  seconds: dict[str, float] = {}
  if code_source == "train_density" and len(train_videos) < density_components:
    raise judges.JudgeError(
        f"The code density has {density_components} components but num_train_codes gave {len(train_videos)} training videos; "
        f"raise num_train_codes to at least {density_components} or lower density_components."
    )
  with timed(seconds, "encoding"):
    train_codes = protocols.encode_all(run.codec, train_videos)
    test_codes = protocols.encode_all(run.codec, test_videos)
  with timed(seconds, "embedding_table"):
    embedding = protocols.embedding_table(trained, train_codes, train_labels, test_codes, test_labels)
  density = None
  if code_source == "train_density":
    with timed(seconds, "code_density"):
      density = code_density.fit_codes(train_codes, jax.random.fold_in(key, 3), density_components)
    notes.append(
        f"the protocols drew codes from a {density_components}-component mixture fitted to {len(train_videos)} training videos' "
        "codes, not from the priors: not comparable with published rows"
    )
  with timed(seconds, "protocols"):
    standard, reversed_scores, generated = protocols.protocols(
        run.codec, trained, test_codes, test_labels, test_videos.shape[1], jax.random.fold_in(key, 0), rounds, density,
        reverse,
    )
  with timed(seconds, "swap_agreement"):
    real_probabilities, real_features = trained.predict(test_videos)
    agreement = protocols.swap_agreement(trained, real_probabilities, generated)
    ceiling = protocols.ceiling(trained, real_probabilities, test_labels)
  with timed(seconds, "generation"):
    generation = protocols.frechet_and_reconstruction(
        run.codec, trained, test_videos, test_codes, real_features, jax.random.fold_in(key, 1)
    )
  results = {
      "run": run.directory, "step": run.step, "stage": run.stage, "rounds": rounds, "seed": seed, "notes": notes,
      "num_test_videos_requested": num_test_videos, "train_codes_requested": num_train_codes,
      "code_source": code_source, "density_components": density_components if density is not None else None,
      "reverse_draws": reverse, "selection": chosen,
      "test_videos": len(test_videos), "train_codes": len(train_videos),
      "judge": {key_: trained.info[key_] for key_ in ("dataset", "test_accuracy", "params_sha256")} | {"directory": trained.directory},
      "standard_protocol": standard,
      "reverse_protocol": reversed_scores,
      "embedding_table": embedding,
      "swap_agreement": agreement,
      "generation": generation,
      "ceiling": ceiling,
      "fraction_of_ceiling": protocols.fraction_of_ceiling(standard, ceiling),
      "seconds": seconds,
      "config": run.config.to_dict(),
  }
  out_dir = out_dir or evaluation_dir(run) + ("" if density is None else f"_{code_source}")
  horizon = run.config.sample.num_frames or run.config.data.num_frames
  sample_files.write_samples(run.codec, test_videos[: run.config.sample.num_videos], jax.random.fold_in(key, 2), out_dir, horizon)
  if save_videos:
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, **{f"{name}_videos": visualize.to_uint8(videos) for name, videos in generated.items()},
        **{f"label_{name}": value for name, value in test_labels.items()},
    )
    visualize.write_atomically(os.path.join(out_dir, VIDEOS_FILE), buffer.getvalue())
  visualize.write_atomically(os.path.join(out_dir, TABLE_FILE), markdown_table(results).encode())
  visualize.write_atomically(os.path.join(out_dir, RESULTS_FILE), json.dumps(results, indent=2, default=str).encode())
  return results
