"""The judge: a video classifier trained with labels on real videos, one softmax head per label.

A per-frame conv encoder (stride-2 convolutions to 4x4, then a dense feature) feeds a
bi-LSTM; its last forward and first backward states are the penultimate features (for the
judge's Frechet distance), and each head reads them, except the pooled heads, which read the
time-mean of the bi-LSTM's per-step outputs (so every frame's features get the head's gradient).
"""

import dataclasses
import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dsa_jax.models import layers


# "group" suits sparse frames (Moving MNIST): a per-position LayerNorm blows a faint stroke up
# to the size of a full one, and its gradient by up to 1/sqrt(epsilon).
NORMALIZATIONS = {"layer": nn.LayerNorm, "group": functools.partial(nn.GroupNorm, num_groups=1)}


@dataclasses.dataclass(frozen=True)
class JudgeConfig:
  """Architecture of a judge and the labels it predicts."""

  image_shape: tuple[int, int, int] = (64, 64, 3)
  heads: tuple[tuple[str, int], ...] = (("action", 9),)  # (label name, number of classes)
  channels: tuple[int, ...] = (32, 64, 128, 128)  # one stride-2 conv per halving down to 4x4
  feature_size: int = 128
  lstm_size: int = 128
  normalization: str = "layer"  # per position over channels; "group": over each frame's whole feature map
  pooled_heads: tuple[str, ...] = ()  # heads reading the time-mean of the per-step bi-LSTM outputs
  compute_dtype: str = "float32"  # activations and matmul/conv operands; params and logits stay float32

  def __post_init__(self):
    layers.compute_dtype(self.compute_dtype)
    if self.normalization not in NORMALIZATIONS:
      raise ValueError(f"Unknown judge normalization {self.normalization!r}; choose from {sorted(NORMALIZATIONS)}.")
    steps = layers.num_resolution_steps(self.image_shape[0])
    if len(self.channels) != steps:
      raise ValueError(f"{self.image_shape[0]}x{self.image_shape[0]} frames need {steps} judge channels; got {self.channels}.")
    if not self.heads:
      raise ValueError("A judge needs at least one head (label name, number of classes).")
    unknown = set(self.pooled_heads) - {name for name, _ in self.heads}
    if unknown:
      raise ValueError(f"Pooled judge heads {sorted(unknown)} are not among its heads {[name for name, _ in self.heads]}.")


class JudgeOutput(NamedTuple):
  """A judge's view of a batch of videos."""

  logits: dict[str, jax.Array]  # {label: [B, K]}
  features: jax.Array  # [B, 2 * lstm_size] penultimate features


class Judge(nn.Module):
  """Videos [B, T, H, W, C] in [0, 1] -> logits per head and penultimate features."""

  config: JudgeConfig

  @nn.compact
  def __call__(self, videos: jax.Array) -> JudgeOutput:
    layers.check_videos(videos, self.config.image_shape)
    dtype = layers.compute_dtype(self.config.compute_dtype)
    batch, time = videos.shape[:2]
    hidden = videos.reshape(batch * time, *videos.shape[2:])  # [B*T, H, W, C]
    for i, channels in enumerate(self.config.channels):
      hidden = nn.Conv(
          channels, (4, 4), strides=2, kernel_init=layers.relu_init, dtype=dtype,
          conv_general_dilated=layers.float32_output_conv, name=f"conv_{i}",
      )(hidden)  # float32 until the normalization casts it to dtype
      hidden = NORMALIZATIONS[self.config.normalization](dtype=dtype, name=f"norm_{i}")(hidden)
      hidden = nn.leaky_relu(hidden, 0.2)
    hidden = hidden.reshape(batch, time, -1)  # [B, T, 4 * 4 * channels]
    frames = nn.leaky_relu(nn.Dense(self.config.feature_size, dtype=dtype, name="frame_feature")(hidden), 0.2)  # [B, T, F]
    outputs, forward_last, backward_first = layers.BiLSTM(self.config.lstm_size, dtype, name="rnn")(frames)  # [B, T, 2L]
    features = jnp.concatenate([forward_last, backward_first], axis=-1)  # [B, 2L]
    pooled = outputs.mean(axis=1)  # [B, 2L]
    logits = {
        name: nn.Dense(classes, dtype=dtype, name=f"head_{name}")(pooled if name in self.config.pooled_heads else features)
        .astype(jnp.float32)
        for name, classes in self.config.heads
    }
    return JudgeOutput(logits, features)


def probabilities(output: JudgeOutput) -> dict[str, jax.Array]:
  """{label: p(y | x) [B, K]}."""
  return {name: jax.nn.softmax(logits, axis=-1) for name, logits in output.logits.items()}


def cross_entropy(output: JudgeOutput, labels: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The mean over heads of the batch-mean cross-entropy, and per-head loss and accuracy."""
  metrics, total = {}, 0.0
  for name, logits in output.logits.items():
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels[name]).mean()
    metrics[f"loss_{name}"] = loss
    metrics[f"accuracy_{name}"] = jnp.mean(jnp.argmax(logits, axis=-1) == labels[name])
    total = total + loss
  loss = total / len(output.logits)
  return loss, {"loss": loss, **metrics}
