"""The installed package imports from any folder, not only from the repository root."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def test_installed_packages_import_outside_the_repository(tmp_path):
  env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
  script = (
      "import dsa_jax, dsa_jax.models.vdsm, dsa_jax.train, data_pipelines.pendulum.pendulum\n"
      "print(dsa_jax.__file__)"
  )
  result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
  assert result.returncode == 0, f"install the package first (pip install -e .): {result.stderr[-2000:]}"
  assert result.stdout.strip() == os.path.join(REPO, "dsa_jax", "__init__.py")


INSTALLED_CHECK = """
import json, os, sys
import dsa_jax, data_pipelines.sprites.sprites, experiments
from dsa_jax.evaluation import judges
from experiments import dsa_pendulum, vdsm_sprites
config = vdsm_sprites.get_config("quick")
shipped = judges.load(judges.shipped("sprites"))
print(json.dumps({
    "dsa_jax": dsa_jax.__file__, "experiments": experiments.__file__,
    "configs": sorted(name for name in os.listdir(os.path.dirname(experiments.__file__)) if name.endswith(".py")),
    "judge_action": shipped.info["test_accuracy"]["action"], "quick_steps": dsa_pendulum.get_config("quick").train.num_steps,
}))
"""


def test_a_wheel_installs_the_library_builders_judges_and_configs_for_use_from_any_folder(tmp_path):
  wheels, target = tmp_path / "wheels", tmp_path / "site"
  subprocess.run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", REPO, "-w", str(wheels)], check=True, capture_output=True,
  )
  (wheel,) = wheels.glob("dsa_jax-*.whl")
  subprocess.run(
      [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
      check=True, capture_output=True,
  )
  env = {**{key: value for key, value in os.environ.items() if key != "PYTHONPATH"}, "PYTHONPATH": str(target)}
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  result = subprocess.run([sys.executable, "-c", INSTALLED_CHECK], cwd=elsewhere, env=env, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-2000:]
  found = json.loads(result.stdout.strip().splitlines()[-1])
  assert found["dsa_jax"].startswith(str(target)) and found["experiments"].startswith(str(target))
  assert {"run.py", "evaluate.py", "dsa_pendulum.py", "vdsm_sprites.py", "judge_sprites.py", "base.py"} <= set(found["configs"])
  assert found["judge_action"] == 1.0 and found["quick_steps"] == 3000
