"""The installed package imports from any folder, not only from the repository root."""

import os
import subprocess
import sys

from tests.test_readme import REPO


def test_installed_packages_import_outside_the_repository(tmp_path):
  env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
  script = (
      "import dsa_jax, dsa_jax.models.vdsm, dsa_jax.train, data_pipelines.pendulum.pendulum\n"
      "print(dsa_jax.__file__)"
  )
  result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
  assert result.returncode == 0, f"install the package first (pip install -e .): {result.stderr[-2000:]}"
  assert result.stdout.strip() == os.path.join(REPO, "dsa_jax", "__init__.py")
