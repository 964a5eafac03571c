"""config.train.compute_dtype: bfloat16 activations and matmul/conv operands over float32 params, losses and KLs."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from dsa_jax import checkpointing, metric_writer, tasks, train
from dsa_jax.models import layers, vdsm_layers
from experiments import base
from tests import test_train
from tests.test_train import tiny_config

IMAGE_SHAPE = (16, 16, 3)
CONTRACTIONS = ("dot_general", "conv_general_dilated")


def tiny_model_config(model: str, compute_dtype: str):
  """A small config of `model` (dsa, vdsm, judge) at 16x16 in the given compute dtype."""
  config = base.get_config()
  config.model = model
  config.data.num_frames = 4
  config.train.compute_dtype = compute_dtype
  config.dsa.update(dim_f=6, dim_z=5, dim_h=8, dim_hidden=12, num_channels=4, posterior="full")
  base.vdsm_quick(config)
  config.vdsm.update(dim_s=3, rnn_size=8, combiner_size=8, transition_size=8, identity_hidden=8)
  config.vdsm.encoder_channels, config.vdsm.decoder_channels = (4, 4, 8), (8, 4)
  config.judge.update(heads=(("action", 3), ("colour", 2)), pooled_heads=("colour",), channels=(4, 8))
  config.judge.update(feature_size=8, lstm_size=8, normalization="group")
  return config


def stage_tasks(model: str, compute_dtype: str) -> list[tasks.Task]:
  """Every stage's task of `model`, the VDSM sequence stage starting from fresh params."""
  config = tiny_model_config(model, compute_dtype)
  names = tasks.model_entry(model).stage_names
  return [tasks.make_task(config, IMAGE_SHAPE, name, "/unused") for name in names]


def batch_of(task: tasks.Task) -> dict:
  videos = np.random.default_rng(0).integers(0, 256, (2, 4, *IMAGE_SHAPE), dtype=np.uint8)
  return {"video": jnp.asarray(videos), "action": jnp.array([0, 2]), "colour": jnp.array([1, 0])}


def contraction_dtypes(jaxpr) -> set:
  """The operand dtypes of every matmul and convolution in a jaxpr and its sub-jaxprs, but VDSM's float32 expert blend."""
  found = set()
  for eqn in jaxpr.eqns:
    if vdsm_layers.BLEND_SCOPE in str(eqn.source_info.name_stack):
      continue
    if eqn.primitive.name in CONTRACTIONS:
      found.update(str(var.aval.dtype) for var in eqn.invars)
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      found |= contraction_dtypes(sub)
  return found


def float_dtypes(tree) -> set:
  return {str(leaf.dtype) for leaf in jax.tree.leaves(tree)}


@pytest.mark.parametrize("model", ["dsa", "vdsm", "judge"])
def test_bfloat16_contracts_in_bfloat16_over_float32_params_and_agrees_with_float32(model):
  for f32_task, bf16_task in zip(stage_tasks(model, "float32"), stage_tasks(model, "bfloat16")):
    batch = batch_of(f32_task)
    params = jax.jit(f32_task.init_params)(jax.random.key(0), batch["video"])
    assert float_dtypes(jax.eval_shape(bf16_task.init_params, jax.random.key(0), batch["video"])) == {"float32"}
    losses = {}
    for name, task in (("float32", f32_task), ("bfloat16", bf16_task)):
      def loss(p, task=task):
        return task.loss_fn(p, batch, jax.random.key(1), jnp.int32(0))

      loss_and_grads = jax.value_and_grad(loss, has_aux=True)
      assert contraction_dtypes(jax.make_jaxpr(loss_and_grads)(params).jaxpr) == {name}, task.name
      assert float_dtypes(jax.eval_shape(loss_and_grads, params)) == {"float32"}
      losses[name] = jax.jit(loss)(params)[0]
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=2e-2)


def test_unknown_compute_dtype_names_the_field_and_the_choices(data_dir, tmp_path):
  with pytest.raises(ValueError, match=r"Unknown compute dtype 'float16'; choose from \['bfloat16', 'float32'\] \(config.train.compute_dtype\)"):
    stage_tasks("dsa", "float16")
  workdir = tmp_path / "run"
  with pytest.raises(tasks.ConfigError, match=r"Unknown compute dtype 'float16'; choose from \['bfloat16', 'float32'\] \(config.train.compute_dtype\)"):
    train.train_and_evaluate(tiny_config(data_dir, **{"train.compute_dtype": "float16"}), str(workdir))
  assert not workdir.exists() or not any(workdir.iterdir())
  assert layers.compute_dtype("bfloat16") == jnp.bfloat16


def unscored_config(data_dir: str, **overrides):
  """The tiny DSA run without its end-of-run pendulum evaluation."""
  config = tiny_config(data_dir, **overrides)
  config.evaluators = ()
  return config


def test_a_float32_checkpoint_resumes_in_bfloat16_with_float32_state(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(unscored_config(data_dir, **{"train.num_steps": 4}), workdir)
  float32_params = checkpointing.Checkpointer(checkpointing.checkpoint_dir(workdir), 1, read_only=True).restore_params()
  state = train.train_and_evaluate(unscored_config(data_dir, **{"train.compute_dtype": "bfloat16"}), workdir)
  assert int(state.step) == 6
  assert float_dtypes((state.params, state.opt_state)) <= {"float32", "int32"}
  assert jax.tree.structure(state.params) == jax.tree.structure(float32_params)
  metrics = metric_writer.read_metrics(workdir)
  assert sorted(metrics) == [2, 4, 6]
  np.testing.assert_allclose(metrics[6]["loss"], metrics[4]["loss"], rtol=0.1)  # continued, not restarted


def test_the_nan_guard_names_step_and_term_in_bfloat16(data_dir, tmp_path, monkeypatch):
  monkeypatch.setitem(tasks.MODELS, "dsa", tasks.MODELS["dsa"]._replace(stages=test_train.poisoned_dsa_stages))
  with pytest.raises(train.NonFiniteLossError, match="step 3: .*kl_f=nan"):
    train.train_and_evaluate(unscored_config(data_dir, **{"train.compute_dtype": "bfloat16"}), str(tmp_path / "run"))
