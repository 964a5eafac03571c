r"""DSA's gradient through layers.conv_general_dilated against lax's own conv, beside a 1-ulp change of the params; prints a table.

  python -m benchmarks.conv_rounding [--model=dsa_cpu] [--seeds=0,1]

Runs trained before and after commit 3f1e721 (DSA's convs over space-to-depth blocks) part
after a few steps. This measures whether the two conv paths differ by more than rounding: one
loss gradient of the model on one batch of random frames, computed (a) as the model trains,
(b) with every conv of the model through lax's own conv (the path before that commit), and
(c) as (a) with every parameter times 1 +- 2^-23 (about one unit in the last place). Per module
it prints the largest relative difference over its parameters' gradients, ||a - b|| / ||b||
and ||c - a|| / ||a||: paths that compute the same function differ about as much as (c) does.
"""

import contextlib
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks import tables
from dsa_jax import data, tasks
from dsa_jax.models import layers
from experiments import dsa_pendulum, dsa_sprites

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "dsa_cpu", ["dsa_cpu", "dsa_quick"], "dsa_sprites.py:cpu or dsa_pendulum.py:quick.")
flags.DEFINE_list("seeds", ["0"], "Seeds of the initial params, the frames and the 1-ulp signs.")

MODELS = {"dsa_cpu": lambda: dsa_sprites.get_config("cpu"), "dsa_quick": lambda: dsa_pendulum.get_config("quick")}


def lax_convs():
  """Every conv of DSA's layers through lax's own conv, as before commit 3f1e721."""
  return mock.patch.object(layers, "conv_general_dilated", layers.float32_output_conv)


def gradient(task: tasks.Task, params, batch, key, path) -> dict:
  """The loss gradient at step 10**6 (KL at full weight), traced inside `path`."""
  with path:
    loss_gradient = jax.jit(jax.grad(lambda params: task.loss_fn(params, batch, key, jnp.int32(10**6))[0]))
    return jax.device_get(loss_gradient(params))


def one_ulp_change(params, rng: np.random.Generator):
  """Each parameter times 1 +- 2^-23 (about one unit in the last place), the sign drawn per element."""
  return jax.tree.map(lambda leaf: leaf * (1 + rng.choice([-1.0, 1.0], leaf.shape) * 2.0**-23).astype(np.float32), params)


def relative_difference(got, want) -> dict[str, float]:
  """Largest ||got - want|| / ||want|| over the leaves of each top-level module."""
  largest = {}
  for (path, got_leaf), want_leaf in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
    module = path[0].key
    norm = float(np.linalg.norm(want_leaf))
    if norm > 0:
      largest[module] = max(largest.get(module, 0.0), float(np.linalg.norm(got_leaf - want_leaf)) / norm)
  return largest


def compare(seed: int) -> list[dict]:
  """Table rows of one seed."""
  config = MODELS[FLAGS.model]()
  size = config.data.image_size or 64  # Sprites: 64x64, read from the dataset when training
  task = tasks.dsa_task(config, (size, size, 3))
  rng = np.random.default_rng(seed)
  videos = jnp.asarray(rng.integers(0, 256, (config.train.batch_size, config.data.num_frames, size, size, 3), dtype=np.uint8))
  batch, key = {data.VIDEO_KEY: videos}, jax.random.key(seed)
  params = jax.device_get(task.init_params(jax.random.fold_in(key, 1), videos))
  as_trained = gradient(task, params, batch, key, contextlib.nullcontext())
  through_lax = gradient(task, params, batch, key, lax_convs())
  moved = gradient(task, one_ulp_change(params, rng), batch, key, contextlib.nullcontext())
  paths, ulp = relative_difference(as_trained, through_lax), relative_difference(moved, as_trained)
  return [
      {"seed": seed, "module": module, "conv paths": paths[module], "1-ulp params": ulp[module]}
      for module in sorted(paths)
  ]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  rows = [row for seed in FLAGS.seeds for row in compare(int(seed))]
  print(f"Largest relative gradient difference per module, {FLAGS.model}, {jax.devices()[0].platform}:")
  print(tables.markdown(("seed", "module", "conv paths", "1-ulp params"), rows))


if __name__ == "__main__":
  app.run(main)
