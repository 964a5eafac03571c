"""The tiny DSA of tests/test_train.py as a config file, for runs started as separate processes (--config.data.data_dir=DIR)."""

from tests.conftest import pendulum_config
from tests.test_train import TINY_OVERRIDES


def get_config():
  """tiny_config(data_dir) of tests/test_train.py, its data dir left to a flag."""
  config = pendulum_config(None)
  for dotted, value in TINY_OVERRIDES.items():
    section, field = dotted.split(".")
    config[section][field] = value
  return config
