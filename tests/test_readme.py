"""The README's commands and notebook snippet stay true."""

import os
import re
import subprocess

from dsa_jax import train
from tests.test_train import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme() -> str:
  with open(os.path.join(REPO, "README.md")) as file:
    return file.read()


def test_ci_runs_the_readme_test_command():
  extracted = subprocess.run(
      ["awk", "/<!-- test-command/ {getline; getline; print; exit}", "README.md"],
      cwd=REPO, capture_output=True, text=True, check=True,
  ).stdout.strip()
  assert extracted == 'pip install -r requirements.txt -e ".[test]" && python -m pytest'
  with open(os.path.join(REPO, ".ci", "run")) as file:
    assert "<!-- test-command" in file.read()


def test_readme_main_command_names_an_existing_config():
  command = re.search(r"python -m experiments\.run --config=(\S+?):quick", readme())
  assert command and os.path.isfile(os.path.join(REPO, command.group(1)))


def test_readme_notebook_snippet_runs(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(data_dir), workdir)
  snippet = re.search(r"## In a notebook\n\n```python\n(.*?)```", readme(), re.S).group(1)
  snippet = snippet.replace('"runs/dsa_pendulum_quick"', repr(workdir))
  namespace: dict = {}
  exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
  assert namespace["recon"].shape == (8, 4, 64, 64, 3)
  assert namespace["swaps"].shape == (4, 4, 4, 64, 64, 3)
  assert namespace["new"].shape == (4, 40, 64, 64, 3)
