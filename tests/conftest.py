"""Shared fixtures: small datasets built once per session into a temporary data dir."""

import os

import pytest

from dsa_jax import data
from experiments import base

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def pendulum_config(data_dir: str, variant: str = "small", num_frames: int = 16):
  """A locked base config reading the pendulum from data_dir."""
  config = base.get_config()
  config.data.data_dir = data_dir
  config.data.variant = variant
  config.data.num_frames = num_frames
  return config


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
  """A session-wide TFDS data dir holding the small pendulum set."""
  directory = str(tmp_path_factory.mktemp("tfds"))
  data.load_source(pendulum_config(directory).data, "train")
  return directory
