"""The notebooks in notebooks/ and the README's notebook snippets run on freshly trained runs."""

import json
import os
import re

import matplotlib
import numpy as np
import pytest

from dsa_jax import train
from experiments import vdsm_pendulum
from tests.conftest import REPO
from tests.test_readme import readme
from tests.test_train import tiny_config
from tests.test_vdsm_quick import shortened

matplotlib.use("Agg")  # figures are drawn, not shown


@pytest.fixture(scope="module")
def dsa_run(data_dir, tmp_path_factory) -> str:
  workdir = str(tmp_path_factory.mktemp("dsa_run"))
  train.train_and_evaluate(tiny_config(data_dir), workdir)
  return workdir


@pytest.fixture(scope="module")
def vdsm_run(data_dir, tmp_path_factory) -> str:
  config = shortened(vdsm_pendulum.get_config("quick"), data_dir)
  config.data.variant = "small"
  workdir = str(tmp_path_factory.mktemp("vdsm_run"))
  train.train_and_evaluate(config, workdir)
  return workdir


def run_notebook(name: str, **parameters) -> dict:
  """Executes a notebook's code cells in order, its `parameters` cell replaced by `parameters`."""
  with open(os.path.join(REPO, "notebooks", name)) as file:
    notebook = json.load(file)
  assert notebook["nbformat"] == 4
  namespace: dict = {}
  code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
  assert "parameters" in code_cells[0]["metadata"].get("tags", []), "the first code cell holds the parameters"
  exec(compile("".join(code_cells[0]["source"]), name, "exec"), namespace)  # noqa: S102 - the notebook's own code
  assert set(parameters) <= set(namespace), f"unknown parameters {set(parameters) - set(namespace)}"
  namespace.update(parameters)
  for cell in code_cells[1:]:
    exec(compile("".join(cell["source"]), name, "exec"), namespace)  # noqa: S102
  matplotlib.pyplot.close("all")
  return namespace


def test_vdsm_notebook_restores_samples_and_transfers(vdsm_run):
  out = run_notebook("vdsm_pendulum.ipynb", WORKDIR=vdsm_run, HORIZON=20)
  assert out["recon"].shape == out["videos"].shape == (8, 8, 16, 16, 3)
  assert out["swapped"].shape == (4, 8, 16, 16, 3)
  assert out["grid"].shape == (4, 4, 20, 16, 16, 3)
  assert out["from_one_frame"].shape == (8, 20, 16, 16, 3) and out["generated"].shape == (4, 20, 16, 16, 3)
  assert 0 <= out["scores"]["colour_follows_identity_source"] <= 1
  assert sorted(os.listdir(os.path.join(vdsm_run, "notebook"))) == ["action_transfer.gif", "generated.gif"]


def test_vdsm_notebook_asks_for_the_sequence_stage(vdsm_run):
  with pytest.raises(ValueError, match="only the pretrain stage; train the sequence stage too"):
    run_notebook("vdsm_pendulum.ipynb", WORKDIR=os.path.join(vdsm_run, "pretrain"))


def test_dsa_notebook_restores_swaps_and_samples(dsa_run):
  out = run_notebook("dsa_pendulum.ipynb", WORKDIR=dsa_run, NUM_FRAMES=10)
  assert out["recon"].shape == (8, 4, 64, 64, 3)
  assert out["matrix"].shape == (4, 4, 4, 64, 64, 3)
  np.testing.assert_array_less(-1e-6, out["matrix"])
  assert out["generated"].shape == out["same_content"].shape == (4, 10, 64, 64, 3)
  assert out["continued"].shape == (8, 10, 64, 64, 3)
  assert sorted(os.listdir(os.path.join(dsa_run, "notebook"))) == ["generated.gif", "swap_grid.gif"]


def readme_snippet(after: str) -> str:
  """The README's first python block after the line `after`."""
  return re.search(re.escape(after) + r".*?```python\n(.*?)```", readme(), re.S).group(1)


def test_readme_dsa_snippet_runs(dsa_run):
  snippet = readme_snippet("## In a notebook").replace('"runs/dsa_pendulum_quick"', repr(dsa_run))
  namespace: dict = {}
  exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
  assert namespace["recon"].shape == (8, 4, 64, 64, 3)
  assert namespace["swaps"].shape == (4, 4, 4, 64, 64, 3)
  assert namespace["new"].shape == (4, 40, 64, 64, 3)


def test_readme_vdsm_snippet_runs(vdsm_run):
  snippet = readme_snippet("Transfers and continuations use inferred s and d.")
  snippet = snippet.replace('"runs/vdsm_pendulum_quick"', repr(vdsm_run))
  namespace: dict = {}
  exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
  assert namespace["new"].shape == (4, 60, 16, 16, 3)
  assert namespace["grid"].shape == (4, 4, 60, 16, 16, 3)
  assert namespace["from_one_frame"].shape == (8, 60, 16, 16, 3)


def test_elbo_bias_notebook_computes_the_curves_live():
  out = run_notebook("elbo_bias.ipynb", GRID_SIZE=5, NUM_SEQUENCES=64, FIT_STEPS=1500)
  assert out["log_likelihood"].shape == (5,) and set(out["elbos"]) == {"factorised", "full", "exact"}
  assert all(np.all(curve <= out["log_likelihood"] + 1e-3) for curve in out["elbos"].values())
  assert abs(out["gaps"]["exact"]) < 1e-3 < out["gaps"]["full"] < out["gaps"]["factorised"]
  assert set(out["learned"]) == {"factorised", "full", "exact", "maximum_likelihood"}
