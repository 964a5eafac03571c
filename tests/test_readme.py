"""The README's commands stay true (its notebook snippets: test_notebooks.py)."""

import os
import re
import subprocess

from tests.conftest import REPO


def readme() -> str:
  with open(os.path.join(REPO, "README.md")) as file:
    return file.read()


def test_ci_runs_the_readme_test_command():
  extracted = subprocess.run(
      ["awk", "/<!-- test-command/ {getline; getline; print; exit}", "README.md"],
      cwd=REPO, capture_output=True, text=True, check=True,
  ).stdout.strip()
  assert extracted == 'pip install -r requirements.txt -e ".[test]" && python -m pytest -n 2 --dist loadfile'
  with open(os.path.join(REPO, ".ci", "run")) as file:
    assert "<!-- test-command" in file.read()


def test_readme_main_command_names_an_existing_config():
  command = re.search(r"python -m experiments\.run --config=(\S+?):quick", readme())
  assert command and os.path.isfile(os.path.join(REPO, command.group(1)))
