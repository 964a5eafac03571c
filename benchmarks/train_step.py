r"""Train-step speed and memory of each model at reference sizes; prints a table.

  python -m benchmarks.train_step [--cases=dsa_notes,dsa_quick] [--steps=5] [--dtypes=float32,bfloat16]
  python -m benchmarks.train_step --cases=vdsm_pendulum_pretrain,vdsm_pendulum_sequence --steps=2

Every case runs in each compute dtype (config.train.compute_dtype), each in its own process so that its peak memory is its own. Reported: compile
time, steps/s and sequences/s over timed steps after one warm-up step, the process's peak
resident memory, and XLA's own estimate of the step's buffers (arguments + outputs not aliasing
the donated arguments + temps). XLA's flop count of the step and the achieved rate, and the
CPU seconds per step spent in user code and in the kernel (mostly zeroing freshly mapped pages
of large intermediate buffers), show how close a step is to the machine's limits; matmul_fraction
is the achieved rate over this machine's rate on one large matmul in the same dtype. The last
column checks VDSM's two stages at the authors' settings against the targets (2 CPU cores:
1 s/step and 4 GB; one GPU: 20 ms/step).
"""

import functools
import json
import resource
import subprocess
import sys
import time
from typing import Any, NamedTuple

import jax
import numpy as np
from absl import app, flags

from benchmarks import tables
from dsa_jax import tasks, train
from experiments import dsa_pendulum, dsa_sprites, vdsm_pendulum, vdsm_sprites

FLAGS = flags.FLAGS
flags.DEFINE_list("cases", ["dsa_notes", "dsa_quick", "vdsm_pretrain", "vdsm_sequence"], "Cases to run.")
flags.DEFINE_integer("steps", 5, "Timed steps per case.")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Compute dtypes to time every case in.")
flags.DEFINE_string("case", None, "Internal: run one case in this process and print JSON.")
flags.DEFINE_string("dtype", "float32", "Internal: the compute dtype of --case.")


def dsa_notes():
  """The notes' sizes: batch 20, 8 frames of 64x64, dimZ 32, dimF 256, dimH 256, nChannel 256."""
  config = dsa_pendulum.get_config()
  config.data.num_frames = 8
  config.train.batch_size = 20
  return config, None


def dsa_quick():
  """The :quick config a README user runs first."""
  return dsa_pendulum.get_config("quick"), None


def dsa_cpu():
  """dsa_sprites.py:cpu, the 2-hour 64x64 Sprites config."""
  return dsa_sprites.get_config("cpu"), None


def vdsm_cpu_stage(stage: str):
  """One stage of vdsm_sprites.py:cpu, the 2-hour 64x64 Sprites config, as it trains."""
  return vdsm_sprites.get_config("cpu"), stage


def vdsm_sprites_stage(stage: str):
  """VDSM at the Sprites settings of the authors' timing: batch 20 x 8 frames, kz 30, ks 40, kd 50, RNNs 3 x 512."""
  config = vdsm_sprites.get_config()
  config.vdsm_pretrain.batch_size = config.vdsm_sequence.batch_size = 20
  config.vdsm.group_size = 1  # 8 frames per element, as timed by the authors
  return config, stage


def vdsm_pendulum_stage(stage: str):
  """One stage of the full pendulum config as it trains (pretraining: 50 identity groups x 2 clips x 16 frames)."""
  return vdsm_pendulum.get_config(), stage


VDSM_TARGETS = {"cpu": {"s_per_step": 1.0, "peak_rss_GB": 4.0}, "gpu": {"s_per_step": 0.02}}  # 2 CPU cores; one GPU
TARGETED_CASES = ("vdsm_pretrain", "vdsm_sequence")  # the authors' Sprites settings

CASES = {
    "dsa_notes": dsa_notes,
    "dsa_quick": dsa_quick,
    "dsa_cpu": dsa_cpu,
    "vdsm_cpu_pretrain": lambda: vdsm_cpu_stage("pretrain"),
    "vdsm_cpu_sequence": lambda: vdsm_cpu_stage("sequence"),
    "vdsm_pretrain": lambda: vdsm_sprites_stage("pretrain"),
    "vdsm_sprites_pretrain": lambda: (vdsm_sprites.get_config(), "pretrain"),  # as it trains: 2 clips of 8 frames per element
    "vdsm_sequence": lambda: vdsm_sprites_stage("sequence"),
    "vdsm_pendulum_pretrain": lambda: vdsm_pendulum_stage("pretrain"),
    "vdsm_pendulum_sequence": lambda: vdsm_pendulum_stage("sequence"),
}


class CompiledCase(NamedTuple):
  """One case's compiled train step, ready to run on its state, batch and key."""

  step: Any  # the compiled train_step
  state: Any
  batch: dict
  key: jax.Array
  batch_name: str  # "BxTxS^2"
  compile_seconds: float


def compile_case(name: str, dtype: str = "float32") -> CompiledCase:
  """Builds one case's state and a batch of random frames and compiles its train step in compute dtype `dtype`."""
  config, stage_name = CASES[name]()
  config.train.compute_dtype = dtype
  image_size = config.data.image_size or 64
  image_shape = (image_size, image_size, 3)
  if stage_name is not None:
    config.stage = stage_name
  stage = tasks.make_stages(config, image_shape, "/unused")[0]
  task = stage.task
  tx = train.make_optimizer(stage.learning_rate, config.train.grad_clip_norm, task.trainable)
  mesh = train.make_mesh()
  batch_size, num_frames = stage.batch_size, config.data.num_frames * task.group_size  # a group's clips, concatenated
  videos = np.random.default_rng(0).integers(0, 256, (batch_size, num_frames, *image_shape), np.uint8)
  init = train.jit_state_init(functools.partial(train.create_train_state, task, tx), mesh)
  state = init(videos[:1], jax.random.key(0))  # as train.train_stage does
  batch = train.shard_batch({"video": videos}, mesh)
  key = jax.random.key(1)
  started = time.perf_counter()
  compiled = train.jit_train_step(task.loss_fn, mesh, learning_rate_scale=stage.learning_rate_scale).lower(state, batch, key).compile()
  compile_seconds = time.perf_counter() - started
  return CompiledCase(compiled, state, batch, key, f"{batch_size}x{num_frames}x{image_size}^2", compile_seconds)


def measure(name: str, steps: int, dtype: str = "float32") -> dict:
  """Compiles and times one case's train step on random frames in compute dtype `dtype`."""
  compiled, state, batch, key, batch_name, compile_seconds = compile_case(name, dtype)
  batch_size = batch["video"].shape[0]
  memory = compiled.memory_analysis()
  xla_bytes = (
      memory.argument_size_in_bytes + memory.output_size_in_bytes - memory.alias_size_in_bytes + memory.temp_size_in_bytes
      if memory is not None
      else float("nan")
  )  # the donated state's outputs alias its arguments
  cost = compiled.cost_analysis()
  flops = (cost[0] if isinstance(cost, list) else cost or {}).get("flops", float("nan"))
  state, metrics = compiled(state, batch, key)
  jax.block_until_ready(metrics)
  usage_before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch, key)
  jax.block_until_ready(metrics)
  seconds_per_step = (time.perf_counter() - started) / steps
  usage_after = resource.getrusage(resource.RUSAGE_SELF)
  params = sum(leaf.size for leaf in jax.tree.leaves(state.params))
  return {
      "case": name,
      "dtype": dtype,
      "batch": batch_name,
      "params_M": params / 1e6,
      "compile_s": compile_seconds,
      "s_per_step": seconds_per_step,
      "steps_per_s": 1 / seconds_per_step,
      "sequences_per_s": batch_size / seconds_per_step,
      "GFLOP_per_step": flops / 1e9,
      "GFLOP_per_s": flops / 1e9 / seconds_per_step,
      "user_cpu_s_per_step": (usage_after.ru_utime - usage_before.ru_utime) / steps,
      "kernel_cpu_s_per_step": (usage_after.ru_stime - usage_before.ru_stime) / steps,
      "peak_rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
      "xla_buffers_GB": xla_bytes / 2**30,
  }


def target_verdict(row: dict, platform: str) -> str:
  """'met' or what misses the target on this platform, for the targeted cases; '' otherwise."""
  target = VDSM_TARGETS.get(platform)
  if target is None or row["case"] not in TARGETED_CASES:
    return ""
  missed = [f"{key} {row[key]:.3g} > {limit:g}" for key, limit in target.items() if row[key] > limit]
  return "missed: " + ", ".join(missed) if missed else "met"


def matmul_gflops(dtype: str = "float32", size: int = 2048, repeats: int = 5) -> float:
  """This machine's rate on one large square matmul with `dtype` operands (float32 accumulation): a step's ceiling."""
  a = jax.random.normal(jax.random.key(0), (size, size)).astype(dtype)
  product = jax.jit(lambda a: jax.lax.dot(a, a, preferred_element_type=jax.numpy.float32))
  jax.block_until_ready(product(a))
  started = time.perf_counter()
  for _ in range(repeats):
    result = product(a)
  jax.block_until_ready(result)
  return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def main(argv):
  del argv
  if FLAGS.case:
    print(json.dumps(measure(FLAGS.case, FLAGS.steps, FLAGS.dtype)))
    return
  rows = [measure_in_subprocess(name, FLAGS.steps, dtype) for name in FLAGS.cases for dtype in FLAGS.dtypes]
  print(report(rows, FLAGS.steps))


def measure_in_subprocess(name: str, steps: int, dtype: str) -> dict:
  """measure() in a process of its own, so that its peak memory is its own."""
  command = [sys.executable, "-m", "benchmarks.train_step", f"--case={name}", f"--steps={steps}", f"--dtype={dtype}"]
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f"Case {name} in {dtype} failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


HEADER = [
    "case", "dtype", "batch", "params_M", "compile_s", "s_per_step", "steps_per_s", "sequences_per_s", "GFLOP_per_step",
    "GFLOP_per_s", "matmul_fraction", "user_cpu_s_per_step", "kernel_cpu_s_per_step", "peak_rss_GB", "xla_buffers_GB",
    "target",
]


def report(rows: list[dict], steps: int) -> str:
  """The rows as a table under the device, the matmul ceiling of each dtype and the targets (adds both columns to rows)."""
  platform = jax.devices()[0].platform
  ceilings = {dtype: matmul_gflops(dtype) for dtype in dict.fromkeys(row["dtype"] for row in rows)}
  for row in rows:
    row["matmul_fraction"] = row["GFLOP_per_s"] / ceilings[row["dtype"]]
    row["target"] = target_verdict(row, platform)
  return "\n".join([
      f"Train step on {platform} x{jax.device_count()} ({jax.devices()[0].device_kind}; jax {jax.__version__}), {steps} timed steps after one warm-up",
      "A 2048^3 matmul runs here at " + ", ".join(f"{rate:.0f} GFLOP/s in {dtype}" for dtype, rate in ceilings.items()) + ".",
      f"Targets of VDSM's two stages on {platform}: {VDSM_TARGETS.get(platform, 'none')}",
      tables.markdown(HEADER, rows),
  ])


if __name__ == "__main__":
  app.run(main)
