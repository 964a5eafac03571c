"""Shared fixtures: small datasets built once per session into a temporary data dir, a compilation cache and fast-compile flags."""

import os
import shutil
import subprocess
import tempfile
import time

import jax
import pytest

from dsa_jax import data
from experiments import base

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(REPO, "..", "shared", "data")


SHARED_ROOT_VARIABLE = "DSA_JAX_TEST_SHARED_ROOT"  # set by the first process, inherited by xdist workers
# Compiling dominates the tests' tiny models. Without LLVM's optimisations and with XLA's older fusion emitters,
# dsa_quick's train step compiles in 3.2 s instead of 7.2 s and runs in 37 ms instead of 21 (2 AMD EPYC cores);
# only long runs feel the slower steps, and the README's main job runs with XLA's default flags, in a process of
# its own (tests/test_quick_pendulum.py).
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"


def subprocess_env(*extra_xla_flags: str, fast_compile: bool = True) -> dict[str, str]:
  """A test subprocess's environment: this one, the repository on PYTHONPATH, XLA_FLAGS (fast-compile unless not) plus extra_xla_flags."""
  environment = {name: value for name, value in os.environ.items() if name != "XLA_FLAGS"}
  xla_flags = " ".join((*([os.environ["XLA_FLAGS"]] if fast_compile else []), *extra_xla_flags))
  return {**environment, "PYTHONPATH": REPO, **({"XLA_FLAGS": xla_flags} if xla_flags else {})}


def pytest_configure(config):
  """Tests, xdist workers and their subprocesses compile with FAST_COMPILE_FLAGS and share programs through a disk cache."""
  if FAST_COMPILE_FLAGS not in os.environ.get("XLA_FLAGS", ""):  # before any backend starts; workers and subprocesses inherit it
    os.environ["XLA_FLAGS"] = " ".join(filter(None, (os.environ.get("XLA_FLAGS"), FAST_COMPILE_FLAGS)))
  root = os.environ.get(SHARED_ROOT_VARIABLE)
  if root is None:
    root = tempfile.mkdtemp(prefix="dsa_jax_tests_")
    os.environ[SHARED_ROOT_VARIABLE] = root
    config.add_cleanup(lambda: shutil.rmtree(root, ignore_errors=True))
  settings = {
      "jax_compilation_cache_dir": os.path.join(root, "xla_cache"),
      "jax_persistent_cache_min_compile_time_secs": 0,
      "jax_persistent_cache_min_entry_size_bytes": -1,
  }
  for name, value in settings.items():
    jax.config.update(name, value)
    os.environ[name.upper()] = str(value)


def shared_data_dir(name: str) -> str:
  """A TFDS data dir that every xdist worker of this session shares (datasets are built into it once, under data.building)."""
  directory = os.path.join(os.environ[SHARED_ROOT_VARIABLE], "datasets", name)
  os.makedirs(directory, exist_ok=True)
  return directory


# The longest files first: under `pytest -n 2 --dist loadfile` both workers then finish together.
LONGEST_FILES = (
    "test_quick_pendulum.py", "test_quick_pendulum_bfloat16.py", "test_evaluation.py", "test_vdsm_quick.py",
    "test_notebooks.py", "test_distributed.py", "test_precision.py", "test_train.py", "test_run_faults.py", "test_judges.py",
)


def pytest_collection_modifyitems(items):
  """Orders the collected tests longest file first, keeping each file's own order."""
  rank = {name: i for i, name in enumerate(LONGEST_FILES)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pendulum_config(data_dir: str, variant: str = "small", num_frames: int = 16):
  """A locked base config reading the pendulum from data_dir."""
  config = base.get_config()
  config.data.data_dir = data_dir
  config.data.variant = variant
  config.data.num_frames = num_frames
  config.evaluators = ("pendulum",)
  return config


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
  """A session-wide TFDS data dir holding the small pendulum set."""
  directory = str(tmp_path_factory.mktemp("tfds"))
  data.load_source(pendulum_config(directory).data, "train")
  return directory


def wait_for_path(path: str, process: subprocess.Popen, timeout_seconds: float) -> None:
  """Returns once path exists; fails with the process's stderr if it ends first."""
  deadline = time.monotonic() + timeout_seconds
  while not os.path.exists(path) and time.monotonic() < deadline:
    assert process.poll() is None, process.communicate()[1][-2000:]
    time.sleep(0.05)
