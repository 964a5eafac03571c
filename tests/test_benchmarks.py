"""The train-step benchmark runs and its table reports each case against the targets; the op profile groups ops."""

import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import conv_rounding, gpu_check, op_profile, train_step
from dsa_jax.models import layers
from experiments import vdsm_sprites
from tests.conftest import REPO


def test_target_verdicts_name_what_misses():
  row = {"case": "vdsm_pretrain", "s_per_step": 1.91, "peak_rss_GB": 3.88}
  assert train_step.target_verdict(row, "cpu") == "missed: s_per_step 1.91 > 1"
  assert train_step.target_verdict({**row, "s_per_step": 0.9}, "cpu") == "met"
  assert train_step.target_verdict({**row, "peak_rss_GB": 4.5}, "cpu") == (
      "missed: s_per_step 1.91 > 1, peak_rss_GB 4.5 > 4"
  )
  assert train_step.target_verdict({**row, "s_per_step": 0.019}, "gpu") == "met"
  assert train_step.target_verdict({**row, "case": "dsa_quick"}, "cpu") == ""


def test_benchmark_prints_a_row_per_case_and_dtype():
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.train_step", "--cases=dsa_quick", "--steps=1", "--dtypes=float32,bfloat16"],
      cwd=REPO, capture_output=True, text=True, check=True,
  )
  assert re.search(r"A 2048\^3 matmul runs here at \d+ GFLOP/s in float32, \d+ GFLOP/s in bfloat16\.", result.stdout)
  table = [line for line in result.stdout.splitlines() if line.startswith("|")]
  header = [cell.strip() for cell in table[0].strip("|").split("|")]
  rows = [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in table[2:]]
  assert len(table) == 4 and len(header) == 16 and [row["dtype"] for row in rows] == ["float32", "bfloat16"]
  for row in rows:
    assert row["case"] == "dsa_quick" and row["batch"] == "8x8x16^2" and row["target"] == ""
    assert float(row["s_per_step"]) > 0 and float(row["GFLOP_per_step"]) > 0 and float(row["peak_rss_GB"]) > 0
    assert abs(float(row["sequences_per_s"]) - 8 / float(row["s_per_step"])) <= 0.01 * float(row["sequences_per_s"])
    assert 0 < float(row["matmul_fraction"]) < 1.5


def test_the_gpu_check_scales_both_stages_epochs_alike_to_fit_the_time_left():
  config = vdsm_sprites.get_config()  # 300 x 50 pretraining steps, 200 x 50 sequence steps
  assert gpu_check.fitted_epochs(config, 200.0, pretrain_step=0.02, sequence_step=0.01) == (150, 100)  # 400 s in full
  assert gpu_check.fitted_epochs(config, 1000.0, pretrain_step=0.02, sequence_step=0.01) == (300, 200)
  assert gpu_check.fitted_epochs(config, -5.0, pretrain_step=0.02, sequence_step=0.01) == (1, 1)


def test_op_groups_name_what_an_op_computes_and_skip_loops():
  opcodes = {"conv_fusion": {"parameter", "convolution", "add"}, "dot_fusion": {"parameter", "dot", "tanh"},
             "sum_fusion": {"parameter", "multiply", "reduce"}, "layout_fusion": {"parameter", "bitcast", "copy"},
             "relu_fusion": {"parameter", "maximum", "constant"}}
  expected = {"fusion:conv_fusion": "convolution (fused)", "fusion:dot_fusion": "dot (fused)",
              "fusion:sum_fusion": "reduction fusion", "fusion:layout_fusion": "copy/layout fusion",
              "fusion:relu_fusion": "elementwise fusion", "transpose": "copy/transpose", "convolution": "convolution",
              "while": None, "call": None}
  assert {opcode: op_profile.op_group(opcode, opcodes) for opcode in expected} == expected


def test_op_profile_finds_every_traced_op_of_a_compiled_function_in_its_hlo(tmp_path):
  images, kernel, matrix = jnp.ones((2, 7, 7, 3)), jnp.ones((3, 3, 3, 5)), jnp.ones((64, 64))

  def function(images, kernel, matrix):
    convolved = jax.lax.conv_general_dilated(images, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.maximum(convolved, 0.0).sum(), jnp.tanh(matrix @ matrix).sum()

  compiled = jax.jit(function).lower(images, kernel, matrix).compile()
  instructions, opcodes = op_profile.parse_hlo(compiled.as_text())
  groups = {op_profile.op_group(opcode, opcodes) for opcode, _ in instructions.values()}
  assert groups & {"convolution", "convolution (fused)"} and groups & {"dot", "dot (fused)"} and None not in groups
  jax.block_until_ready(compiled(images, kernel, matrix))
  with jax.profiler.trace(str(tmp_path)):
    jax.block_until_ready(compiled(images, kernel, matrix))
  seconds = op_profile.op_seconds(str(tmp_path), instructions)
  assert seconds and all(name in instructions and value > 0 for name, value in seconds.items())
  traced_groups = {op_profile.op_group(instructions[name][0], opcodes) for name in seconds}
  assert traced_groups & {"convolution", "convolution (fused)"} and traced_groups & {"dot", "dot (fused)"}


def test_op_profile_prints_each_dtypes_op_groups_and_top_ops():
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.op_profile", "--cases=dsa_quick", "--steps=1", "--dtypes=float32", "--top=3"],
      cwd=REPO, capture_output=True, text=True, check=True,
  )
  assert re.search(r"dsa_quick: wall time per traced step float32 [\d.e+-]+ s", result.stdout), result.stdout
  tables = [block.splitlines() for block in result.stdout.split("\n\n") if "|---" in block]
  groups, top_ops = tables
  assert groups[1].split("|")[1:-1] == [" op group ", " share float32 ", " ms/step float32 "]
  names = {line.split("|")[1].strip() for line in groups[3:]}
  assert {"convolution", op_profile.OUTSIDE_OPS} <= names
  assert len(top_ops) == 2 + 1 + 3 and top_ops[0] == "Top ops of dsa_quick in float32:"
  assert all(float(line.split("|")[-2]) > 0 for line in top_ops[3:])


def test_conv_rounding_moves_each_parameter_by_one_unit_in_the_last_place():
  params = {"encoder": {"kernel": np.array([1.0, 2.0, 0.5], np.float32)}, "decoder": {"bias": np.zeros(2, np.float32)}}
  moved = conv_rounding.one_ulp_change(params, np.random.default_rng(0))
  kernel, moved_kernel = params["encoder"]["kernel"], moved["encoder"]["kernel"]
  assert moved_kernel.dtype == np.float32
  np.testing.assert_array_equal(np.abs(moved_kernel - kernel), np.spacing(kernel))
  np.testing.assert_array_equal(moved["decoder"]["bias"], 0.0)


def test_conv_rounding_reports_the_largest_relative_difference_per_module():
  want = {"decoder": {"bias": np.array([0.0, 4.0]), "kernel": np.array([3.0, 4.0])}, "prior": {"bias": np.zeros(3)}}
  got = {"decoder": {"bias": np.array([0.0, 5.0]), "kernel": np.array([3.0, 4.5])}, "prior": {"bias": np.ones(3)}}
  assert conv_rounding.relative_difference(got, want) == {"decoder": 0.25}  # max(1/4, 0.5/5); a zero gradient is skipped


def test_conv_rounding_switches_every_conv_to_lax_and_back():
  encoder = layers.FrameEncoder(widths=(3, 5), feature_size=7)
  frames = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
  params = encoder.init(jax.random.key(1), frames)

  def traced_gradient():
    loss = lambda params: jnp.sum(encoder.apply(params, frames) ** 2)
    return str(jax.make_jaxpr(jax.grad(loss))(params)), jax.grad(loss)(params)

  fast_jaxpr, fast = traced_gradient()
  with conv_rounding.lax_convs():
    lax_jaxpr, through_lax = traced_gradient()
  stride_2 = "window_strides=(2, 2)"  # lax's own down_0; the fast path strides over space-to-depth blocks by 1
  assert stride_2 not in fast_jaxpr and stride_2 in lax_jaxpr
  assert layers.conv_general_dilated is not layers.float32_output_conv  # restored on exit
  for got, want in zip(jax.tree.leaves(fast), jax.tree.leaves(through_lax)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
