"""The README's main job in bfloat16 (config.train.compute_dtype), held to the float32 run's swap statistics.

A file of its own, so that under `pytest -n 2 --dist loadfile` it trains beside the float32 run.
"""

import pytest

from tests.test_quick_pendulum import (  # noqa: F401  (the float32 file's tests, collected here again)
    quick,
    test_quick_run_loss_falls,
    test_quick_run_swaps_colour_with_the_static_code_and_swing_with_the_dynamics,
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
  return quick(tmp_path_factory, "bfloat16")
