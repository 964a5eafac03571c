"""Records: aggregation over seeds, the record round trip, the results page and results_table's seeds."""

import json
import os
import re
import subprocess
import sys

import pytest
from absl import app

from dsa_jax.evaluation import records, results_page
from experiments import results_table
from tests.conftest import REPO, subprocess_env

SHA = "0123456789abcdef" * 4
RULE = {"metric": "validation/standard_action_accuracy", "mode": "max", "ties": "later step"}
HARDWARE = {"processor": "AMD EPYC", "cpu_count": 2, "jax_backend": "cpu", "device_kind": "cpu"}


def spread(mean: float, std: float) -> dict[str, float]:
  return {"mean": mean, "std": std}


def fake_results(seed: int, accuracy: float, inception_score: float, hair_from_dynamics: float, **extra) -> dict:
  """A results.json of report.evaluate_run with a few metrics, trained with config.seed = seed."""
  return {
      "run": f"runs/x/seed_{seed}", "step": 4000 + seed, "stage": None, "rounds": 5, "seed": 0, "notes": [],
      "code_source": "prior", "reverse_draws": "field", "test_videos": 2664,
      "judge": {"dataset": "sprites", "test_accuracy": {}, "params_sha256": SHA},
      "standard_protocol": {
          "action_accuracy": spread(accuracy, 0.0125), "action_inception_score": spread(inception_score, 0.05),
          "action_h_y_given_x": spread(0.25, 0.01), "action_h_y": spread(2.125, 0.005),
      },
      "reverse_protocol": {"action_accuracy": spread(0.5, 0.02), "hair_accuracy": spread(1.0, 0.0)},
      "embedding_table": {"hair_from_static": 1.0, "hair_from_dynamics": hair_from_dynamics},
      "swap_agreement": {"hair_disagreement": 0.0}, "generation": {"reconstruction_mse": 0.001},
      "seconds": {"protocols": 60.0}, "config": {"seed": seed},
  } | extra


def over_seeds(mean: float, std_over_seeds: float, mean_round_std: float | None, seeds: int) -> dict:
  return {"mean": mean, "std_over_seeds": std_over_seeds, "mean_round_std": mean_round_std, "seeds": seeds}


def test_aggregate_gives_the_mean_and_sample_std_over_seeds_beside_the_mean_round_std():
  per_seed = [
      {"standard_protocol": {"action_accuracy": spread(mean, std)}, "embedding_table": {"hair_from_static": value}}
      for mean, std, value in ((0.5, 0.125, 0.25), (0.75, 0.25, 0.5), (1.0, 0.375, 0.75))
  ]
  per_seed[0]["reverse_protocol"] = per_seed[2]["reverse_protocol"] = {"hair_accuracy": spread(0.5, 0.0)}
  assert records.aggregate(per_seed) == {
      "standard_protocol": {"action_accuracy": over_seeds(0.75, 0.25, 0.25, 3)},
      "reverse_protocol": {"hair_accuracy": over_seeds(0.5, 0.0, 0.0, 2)},
      "embedding_table": {"hair_from_static": over_seeds(0.5, 0.25, None, 3)},
  }
  assert records.aggregate(per_seed[1:2]) == {
      "standard_protocol": {"action_accuracy": over_seeds(0.75, 0.0, 0.25, 1)},
      "embedding_table": {"hair_from_static": over_seeds(0.5, 0.0, None, 1)},
  }


def test_a_record_keeps_what_the_page_needs_and_round_trips(tmp_path):
  selection = {"step": 4000, "chosen_on": "validation", "rule": RULE, "validation_scores": {"score": 0.9}}
  first = fake_results(
      0, 0.875, 7.5, 0.5, selection=selection, ceiling={"action_inception_score": 8.8},
      fraction_of_ceiling={"action_inception_score_fraction": spread(0.75, 0.125)},
  )
  record = records.make_record(
      "lstm", "experiments/dsa_sprites.py:cpu", ["--config.dsa.prior=lstm"], {"train": "t", "evaluate": "e"}, [0, 1],
      [first, fake_results(1, 0.925, 8.5, 0.75)], train_seconds=[3723.0, 3540.0],
  )
  assert record["per_seed"][0] == {
      "seed": 0, "step": 4000, "notes": [], "train_seconds": 3723.0,
      **{group: first[group] for group in ("standard_protocol", "reverse_protocol", "embedding_table")},
      "swap_agreement": {"hair_disagreement": 0.0}, "generation": {"reconstruction_mse": 0.001},
      "ceiling": {"action_inception_score": 8.8}, "fraction_of_ceiling": first["fraction_of_ceiling"],
      "selection": selection,
  }
  assert "selection" not in record["per_seed"][1] and "ceiling" not in record["per_seed"][1]
  assert {key: record[key] for key in ("seeds", "judge", "rounds", "test_videos", "code_source", "reverse_draws")} == {
      "seeds": [0, 1], "judge": {"dataset": "sprites", "params_sha256": SHA}, "rounds": 5, "test_videos": 2664,
      "code_source": "prior", "reverse_draws": "field",
  }
  assert record["commit"] is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", record["commit"])
  assert set(record["hardware"]) == set(HARDWARE)
  results_dir = tmp_path / "results"
  assert records.write_record(record, str(results_dir)) == str(results_dir / "lstm.json")
  (results_dir / records.PUBLISHED_FILE).write_text("[]")
  (results_dir / records.HISTORY_FILE).write_text("[]")
  assert records.load_records(str(results_dir)) == [record]


def test_a_record_refuses_seeds_scored_differently_and_reserved_names():
  arguments = ("row", "experiments/dsa_sprites.py:cpu", [], {}, [0, 1])
  with pytest.raises(ValueError, match=r"differ in test_videos \(\[2664, 1000\]\)"):
    records.make_record(*arguments, [fake_results(0, 1.0, 8.0, 0.5), fake_results(1, 1.0, 8.0, 0.5, test_videos=1000)])
  with pytest.raises(ValueError, match="given for seed 1 are of a run trained with config.seed=0"):
    records.make_record(*arguments, [fake_results(0, 1.0, 8.0, 0.5), fake_results(0, 1.0, 8.0, 0.5)])
  with pytest.raises(ValueError, match="'history' cannot name a record"):
    records.make_record("history", *arguments[1:], [fake_results(0, 1.0, 8.0, 0.5), fake_results(1, 1.0, 8.0, 0.5)])


def fixed_records() -> list[dict]:
  """Two records: two seeds chosen on validation with a ceiling, and one seed whose step was named by --step."""
  selection = {"step": 4000, "chosen_on": "validation", "rule": RULE, "validation_scores": {}}
  named = {"step": 4000, "chosen_on": "--step", "rule": None, "validation_scores": None}
  ceiling = {"action_inception_score": 8.8, "action_h_y_given_x": 0.0625}
  lstm = records.make_record(
      "lstm", "experiments/dsa_sprites.py:cpu", ["--config.dsa.prior=lstm"], {"train": "python -m experiments.run"},
      [0, 1],
      [fake_results(0, 0.875, 7.5, 0.5, selection=selection, ceiling=ceiling),
       fake_results(1, 0.925, 8.5, 0.75, selection=selection, ceiling=ceiling)],
      train_seconds=[3723.0, 3540.0],
  )
  embedding = {"hair_from_static": 0.5, "hair_from_dynamics": 0.25}
  quick = records.make_record(
      "quick", "experiments/dsa_sprites.py:quick", [], {}, [0],
      [fake_results(0, 0.4375, 2.75, 0.25, embedding_table=embedding, selection=named)],
  )
  return [record | {"commit": "c0ffee", "hardware": HARDWARE} for record in (lstm, quick)]


PUBLISHED = [
    {"label": "SPYL", "dataset": "sprites", "group": "standard_protocol", "judge": "C-DSVAE's",
     "source": "Naiman et al.",
     "scores": {"action_accuracy": "100%", "action_inception_score": "8.942", "action_h_y_given_x": "0.006",
                "action_h_y": "2.197"}, "note": "The best row.", "checked": "Not checked."},
    {"label": "VDSM", "dataset": "sprites", "group": "embedding_table", "judge": "its own", "source": "Vowels et al.",
     "scores": {"hair_from_static": "99.33%", "hair_from_dynamics": "21.00%"}, "note": "Its scrape.",
     "checked": "Checked."},
]
HISTORY = [{"label": "`:quick`", "code": "before 3f1e721", "acc": "35.8% +- 0.9", "is": "2.57", "h_y_given_x": None,
            "h_y": None, "note": "Old."}]


def test_the_page_shows_each_row_over_seeds_beside_the_published_rows():
  lines = results_page.render(fixed_records(), PUBLISHED, HISTORY).splitlines()
  assert (
      "| row | config | seeds | Acc | IS | H(y\\|x) | H(y) | IS / ceiling | H(y\\|x) / ceiling | reverse action "
      "| reverse hair | judge | source |"
  ) in lines
  assert (
      "| [lstm](../results/lstm.json) | `experiments/dsa_sprites.py:cpu --config.dsa.prior=lstm` | 0, 1 "
      "| 90.00% +- 3.54 | 8.000 +- 0.707 | 0.250 +- 0.000 | 2.125 +- 0.000 | 0.909 | 4.000 | 50.00% +- 0.00 "
      "| 100.00% +- 0.00 | ours, sha256 0123456789ab | measured here |"
  ) in lines
  assert (
      "| [quick](../results/quick.json) (not chosen on validation) | `experiments/dsa_sprites.py:quick` | 0 | 43.75% "
      "| 2.750 | 0.250 | 2.125 |  |  | 50.00% | 100.00% | ours, sha256 0123456789ab | measured here |"
  ) in lines
  assert "| SPYL |  |  | 100% | 8.942 | 0.006 | 2.197 |  |  |  |  | C-DSVAE's | Naiman et al. |" in lines
  assert "- **SPYL** (Naiman et al.). The best row. Not checked." in lines
  assert "| hair | 99.33% | 21.00% | 100.00% +- 0.00 | 62.50% +- 17.68 | 50.00% | 25.00% |" in lines
  assert "- seed 0: step 4000, chosen on validation by max of validation/standard_action_accuracy" in lines
  assert "- seed 0: step 4000, not chosen on validation" in lines
  assert (
      "- mean over seeds of the std over protocol rounds (accuracies in points): standard protocol: "
      "action_accuracy 1.25, action_inception_score 0.050, action_h_y_given_x 0.010, action_h_y 0.005; "
      "reverse protocol: action_accuracy 2.00, hair_accuracy 0.00"
  ) in lines
  assert "- training wall time: 1h02m03s (seed 0), 59m00s (seed 1)" in lines
  assert "- training wall time: not recorded" in lines
  assert "- commit c0ffee; AMD EPYC, 2 CPUs, JAX backend cpu (cpu)" in lines
  assert (
      "- scored once on test: 5 protocol rounds over 2664 test videos, codes from prior, reverse protocol draws "
      f"field, the sprites judge of sha256 {SHA}"
  ) in lines
  assert lines[-1] == "| `:quick` | before 3f1e721 | 35.8% +- 0.9 | 2.57 |  |  | Old. |"


def test_committed_page_is_generated():
  with open(os.path.join(REPO, results_page.PAGE)) as file:
    assert file.read() == results_page.from_directory(os.path.join(REPO, records.RESULTS_DIR))


def test_the_page_command_writes_the_page_and_its_check_fails_on_a_stale_one(tmp_path):
  results_dir, page = tmp_path / "results", tmp_path / "results.md"
  for record in fixed_records():
    records.write_record(record, str(results_dir))
  (results_dir / records.PUBLISHED_FILE).write_text(json.dumps(PUBLISHED))
  (results_dir / records.HISTORY_FILE).write_text(json.dumps(HISTORY))
  command = [sys.executable, "-m", "experiments.results_page", f"--results_dir={results_dir}", f"--page={page}"]
  subprocess.run(command, check=True, cwd=REPO, env=subprocess_env())
  assert page.read_text() == results_page.from_directory(str(results_dir))
  page.write_text(page.read_text() + "edited\n")
  stale = subprocess.run([*command, "--check"], cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
  assert stale.returncode == 1
  assert stale.stderr.strip().splitlines() == [
      f"{page} is not what {results_dir}/ generates: run python -m experiments.results_page"
  ]


def write_results(path, results: dict) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as file:
    json.dump(results, file)
  return str(path)


def test_the_results_table_finds_each_seeds_evaluation_and_aggregates_the_seeds(tmp_path):
  first = {"step": 4, "rounds": 2, "test_videos": 45, "standard_protocol": {"action_accuracy": spread(0.5, 0.125)},
           "generation": {"reconstruction_mse": 0.25}}
  second = first | {"step": 6, "standard_protocol": {"action_accuracy": spread(1.0, 0.375)}}
  seed_0 = write_results(tmp_path / "seed_0" / "evaluation" / "step_4" / "results.json", first)
  seed_1 = write_results(tmp_path / "seed_1" / "sequence" / "evaluation" / "step_6" / "results.json", second)
  write_results(tmp_path / "seed_1" / "sequence" / "evaluation" / "step_6_train_density" / "results.json", {})
  write_results(tmp_path / "seed_0" / "evaluation" / "learning_curve" / "step_2" / "results.json", {})
  assert results_table.seed_entries([f"a={tmp_path}"]) == [f"a/seed_0={seed_0}", f"a/seed_1={seed_1}"]
  named = results_table.read_named_results([f"a/seed_1={seed_1}", f"a/seed_0={seed_0}", f"b={seed_0}"])
  assert results_table.seeds_by_name(named) == {"a": [first, second]}
  assert records.seeds_table(results_table.seeds_by_name(named)).splitlines() == [
      "| group | metric | a (n=2) |", "|---|---|---|",
      "| run | step | 4, 6 |", "| run | rounds | 2, 2 |", "| run | test_videos | 45, 45 |",
      "| standard_protocol | action_accuracy | 0.7500 +- 0.3536 (rounds +- 0.2500) |",
      "| generation | reconstruction_mse | 0.2500 +- 0.0000 |",
  ]
  write_results(tmp_path / "seed_0" / "evaluation" / "step_8" / "results.json", first)
  with pytest.raises(app.UsageError, match="several evaluated steps"):
    results_table.seed_entries([f"a={tmp_path}"])
  with pytest.raises(app.UsageError, match="no seed_N/.../evaluation/step_M/results.json under"):
    results_table.seed_entries([f"a={tmp_path / 'seed_0'}"])


def test_a_record_from_the_training_command_keeps_settings_and_drops_data_locations(tmp_path):
  per_seed = []
  for seed, seconds in ((0, 120.5), (2, 98.25)):
    run = tmp_path / f"seed_{seed}"
    run.mkdir()
    rows = [{"step": 500, "wall_seconds": seconds / 2}, {"step": 1000, "wall_seconds": seconds}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    per_seed.append(fake_results(seed, 0.5, 3.0, 0.2, run=str(run), config={"seed": seed, "model": "dsa"}))
  train = (
      "python -m experiments.run --config=experiments/dsa_sprites.py:quick --config.dsa.prior=lstm "
      "--config.data.manual_dir=/data/lpc --workdir=runs/q --seeds=0,2"
  )
  record = records.from_commands("q", train, "python -m experiments.evaluate --workdir=runs/q", per_seed)
  assert record["config"] == "experiments/dsa_sprites.py:quick" and record["overrides"] == ["--config.dsa.prior=lstm"]
  assert record["seeds"] == [0, 2] and [entry["train_seconds"] for entry in record["per_seed"]] == [120.5, 98.25]
  assert record["commands"] == {"train": train, "evaluate": "python -m experiments.evaluate --workdir=runs/q"}
  with pytest.raises(ValueError, match="must name one --config=FILE"):
    records.from_commands("q", "python -m experiments.run --workdir=runs/q", "", per_seed)
