r"""Where a train step's time goes on this machine: XLA's per-op profile, summed by op group; prints tables.

  python -m benchmarks.op_profile --cases=dsa_notes,vdsm_pretrain,vdsm_sequence [--dtypes=float32,bfloat16] [--steps=2]

Each case (a case of benchmarks.train_step) is compiled in each compute dtype, run once to warm
up, then traced with jax.profiler for --steps steps. Every event XLA's runtime records for an
op of the compiled module is put in a group by what the op computes: convolutions and dots
(alone or as the root of a fusion), reductions, elementwise fusions, copies and transposes,
and the rest by opcode. Loops and calls are left out, since the ops inside them have events of
their own. For each group: its share of the step's wall time, its milliseconds per step, and
the same group's time in the other dtype beside it (float32 / bfloat16); what no op accounts for
is the runtime's own time and idle cores. The top ops follow. The shares can sum past 100%
where XLA runs ops side by side on the cores.
"""

import collections
import glob
import json
import re
import subprocess
import sys
import tempfile
import time

import jax
from absl import app, flags

from benchmarks import tables, train_step

FLAGS = flags.FLAGS  # --cases, --dtypes, --steps (traced), --case and --dtype are benchmarks.train_step's flags
flags.DEFINE_integer("top", 12, "Ops listed by their own time, per case and dtype.")

INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\S+(?: \S+)*?) ([\w\-]+)\(")
COMPUTATION = re.compile(r"^%?([\w.\-]+) .*\{$")
CALLS = re.compile(r"calls=%?([\w.\-]+)")
CONTAINERS = {"while", "call", "conditional", "async-start", "async-done", "async-update"}
OUTSIDE_OPS = "outside XLA ops (runtime, dispatch, idle cores)"
COPIES = {"copy", "transpose", "bitcast", "reshape", "copy-start", "copy-done", "dynamic-slice", "dynamic-update-slice"}


def parse_hlo(text: str) -> tuple[dict[str, tuple[str, str]], dict[str, set[str]]]:
  """{instruction: (opcode, result type)} of every computation, and {computation: opcodes it holds} of an HLO module."""
  instructions, opcodes, current = {}, collections.defaultdict(set), None
  for line in text.splitlines():
    computation = COMPUTATION.match(line)
    if computation and "=" not in line.split("{")[0]:
      current = computation.group(1)
      continue
    match = INSTRUCTION.match(line)
    if match and current is not None:
      name, result_type, opcode = match.groups()
      called = CALLS.search(line)
      instructions[name] = (opcode if called is None or opcode != "fusion" else f"fusion:{called.group(1)}", result_type)
      opcodes[current].add(opcode)
  return instructions, opcodes


def op_group(opcode: str, opcodes: dict[str, set[str]]) -> str | None:
  """The group of an op by what it computes; None for loops and calls, whose inner ops are counted."""
  if opcode in CONTAINERS:
    return None
  if opcode.startswith("fusion:"):
    inner = opcodes.get(opcode.split(":", 1)[1], set())
    for kind in ("convolution", "dot"):
      if kind in inner:
        return f"{kind} (fused)"
    if "reduce" in inner or "reduce-window" in inner:
      return "reduction fusion"
    if inner and inner <= COPIES | {"parameter", "constant", "broadcast", "slice", "concatenate", "pad", "convert"}:
      return "copy/layout fusion"
    return "elementwise fusion"
  if opcode in COPIES:
    return "copy/transpose"
  return opcode


def op_seconds(trace_dir: str, instructions: dict[str, tuple[str, str]]) -> dict[str, float]:
  """Seconds spent in each op of the module, summed over every traced event of the op."""
  path = sorted(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True))[-1]
  seconds = collections.Counter()
  for plane in jax.profiler.ProfileData.from_file(path).planes:
    for line in plane.lines:
      for event in line.events:
        if event.name in instructions:
          seconds[event.name] += event.duration_ns / 1e9
  return seconds


def profile(name: str, dtype: str, steps: int, top: int) -> dict:
  """Per-group and top-op seconds per step of one case's train step in one dtype."""
  case = train_step.compile_case(name, dtype)
  instructions, opcodes = parse_hlo(case.step.as_text())
  state, metrics = case.step(case.state, case.batch, case.key)
  jax.block_until_ready(metrics)
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir):
      started = time.perf_counter()
      for _ in range(steps):
        state, metrics = case.step(state, case.batch, case.key)
      jax.block_until_ready(metrics)
      wall = (time.perf_counter() - started) / steps
    seconds = op_seconds(trace_dir, instructions)
  groups, ops = collections.Counter(), []
  for op, total in seconds.items():
    opcode, result_type = instructions[op]
    group = op_group(opcode, opcodes)
    if group is not None:
      groups[group] += total / steps
      ops.append({"op": op, "group": group, "result": result_type[:60], "ms_per_step": 1e3 * total / steps})
  groups[OUTSIDE_OPS] = max(0.0, wall - sum(groups.values()))
  ops.sort(key=lambda row: -row["ms_per_step"])
  return {"case": name, "dtype": dtype, "wall_s_per_step": wall, "groups": dict(groups), "top_ops": ops[:top]}


def profile_in_subprocess(name: str, dtype: str, steps: int, top: int) -> dict:
  """profile() in a process of its own, so that cases do not share caches or memory."""
  command = [
      sys.executable, "-m", "benchmarks.op_profile", f"--case={name}", f"--dtype={dtype}", f"--steps={steps}", f"--top={top}"
  ]
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f"Profiling {name} in {dtype} failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def group_table(profiles: list[dict]) -> str:
  """One case's op groups in every dtype: share of the step's wall time and ms per step, largest first."""
  dtypes = [result["dtype"] for result in profiles]
  totals = {result["dtype"]: result["wall_s_per_step"] for result in profiles}
  names = sorted({group for result in profiles for group in result["groups"]}, key=lambda g: -profiles[0]["groups"].get(g, 0))
  header = ["op group"] + [f"{column} {dtype}" for dtype in dtypes for column in ("share", "ms/step")]
  rows = []
  for name in names:
    row = {"op group": name}
    for result in profiles:
      seconds = result["groups"].get(name, 0.0)
      row[f"share {result['dtype']}"] = f"{seconds / totals[result['dtype']]:.1%}"
      row[f"ms/step {result['dtype']}"] = 1e3 * seconds
    rows.append(row)
  walls = ", ".join(f"{result['dtype']} {result['wall_s_per_step']:.3g} s" for result in profiles)
  return f"{profiles[0]['case']}: wall time per traced step {walls}\n" + tables.markdown(header, rows)


def main(argv):
  del argv
  if FLAGS.case:
    print(json.dumps(profile(FLAGS.case, FLAGS.dtype, FLAGS.steps, FLAGS.top)))
    return
  print(f"Op profile on {jax.devices()[0].platform} ({jax.devices()[0].device_kind}; jax {jax.__version__}), {FLAGS.steps} traced steps")
  for name in FLAGS.cases:
    profiles = [profile_in_subprocess(name, dtype, FLAGS.steps, FLAGS.top) for dtype in FLAGS.dtypes]
    print("\n" + group_table(profiles))
    for result in profiles:
      print(f"\nTop ops of {name} in {result['dtype']}:")
      print(tables.markdown(["op", "group", "result", "ms_per_step"], result["top_ops"]))


if __name__ == "__main__":
  app.run(main)
