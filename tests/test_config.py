"""Configs: every file and variant loads; typos fail naming the field."""

import glob
import importlib.util
import os
import subprocess
import sys

import pytest

from experiments import base
from tests.conftest import REPO

CONFIG_FILES = sorted(
    path
    for path in glob.glob(os.path.join(REPO, "experiments", "*_*.py"))
    if os.path.basename(path).split("_")[0] in ("dsa", "vdsm")  # <model>_<dataset>.py
)


def load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_there_are_config_files():
  assert any(path.endswith("dsa_pendulum.py") for path in CONFIG_FILES)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
@pytest.mark.parametrize("variant", [None, "quick"])
def test_config_files_only_override_base_fields(path, variant):
  config = load(path).get_config(variant)
  reference = base.get_config()
  assert set(config.keys()) == set(reference.keys())
  for section in reference.keys():
    if hasattr(reference[section], "keys") and section != "evals":  # evals holds named evaluators, none in base
      assert set(config[section].keys()) == set(reference[section].keys()), section


@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
def test_unknown_variant_is_rejected(path):
  with pytest.raises(ValueError, match="Unknown variant 'quikc'"):
    load(path).get_config("quikc")


def test_base_is_locked_against_new_fields():
  config = base.get_config()
  with pytest.raises(AttributeError, match="num_stpes"):
    config.train.num_stpes = 3


def test_misspelt_command_line_field_fails_naming_it(tmp_path):
  result = subprocess.run(
      [
          sys.executable, "-m", "experiments.run", "--config=experiments/dsa_pendulum.py:quick",
          f"--workdir={tmp_path}", "--config.train.num_stpes=3",
      ],
      cwd=REPO, capture_output=True, text=True, timeout=120,
  )
  assert result.returncode != 0
  assert 'Did you mean "num_steps" instead of "num_stpes"' in result.stderr
  assert not os.listdir(tmp_path)
