"""The judge: a video classifier trained with labels on real videos, one softmax head per label.

A per-frame conv encoder (stride-2 convolutions to 4x4, then a dense feature) feeds a
bi-LSTM; its last forward and first backward states are the penultimate features (for the
judge's Frechet distance), and each head reads them, except the pooled heads, which read the
time-mean of the bi-LSTM's per-step outputs (so every frame's features get the head's gradient),
and the counted heads. Counted heads name a sorted multiset of classes (Moving MNIST's digit_1 <=
digit_2): every frame predicts how many copies of each class it shows from its spatially
max-pooled conv features, the video's copy counts are the renormalised mean of its frames'
log-probabilities, and each head's logits are the log marginals of the resulting distribution
over multisets. Each frame is trained on its own counts, so a digit learns from every position
and frame it appears in, whatever its rank in the sorted pair.
"""

import dataclasses
import functools
import itertools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
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
  counted_heads: tuple[str, ...] = ()  # sorted classes of one multiset (digit_1 <= digit_2), counted in every frame
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
    classes = dict(self.heads)
    if set(self.counted_heads) - set(classes) or set(self.counted_heads) & set(self.pooled_heads):
      raise ValueError(
          f"Counted judge heads {list(self.counted_heads)} must be heads {list(classes)} that are not pooled {list(self.pooled_heads)}."
      )
    if len({classes[name] for name in self.counted_heads}) > 1:
      raise ValueError(f"Counted judge heads {list(self.counted_heads)} must share one number of classes (they sort one multiset).")


class JudgeOutput(NamedTuple):
  """A judge's view of a batch of videos."""

  logits: dict[str, jax.Array]  # {label: [B, K]}
  features: jax.Array  # [B, 2 * lstm_size] penultimate features
  frame_count_log_probs: jax.Array | None = None  # [B, T, K, N + 1] per frame: log p(c copies of class k), N counted heads


def sorted_multisets(num_classes: int, size: int) -> np.ndarray:
  """Every sorted multiset of `size` classes out of num_classes: [M, size], rows non-decreasing."""
  return np.array(list(itertools.combinations_with_replacement(range(num_classes), size)), np.int32).reshape(-1, size)


def class_counts(labels, num_classes: int):
  """Copies of each class [..., K] in sorted labels [..., N] (NumPy in, NumPy out; JAX in, JAX out)."""
  return (labels[..., None] == np.arange(num_classes)).sum(axis=-2)


def multiset_log_marginals(count_log_probs: jax.Array, size: int) -> list[jax.Array]:
  """Log marginals [B, K] of each sorted position of a multiset, from independent per-class copy counts [B, K, N + 1]."""
  num_classes = count_log_probs.shape[1]
  multisets = sorted_multisets(num_classes, size)  # [M, N]
  counts = class_counts(multisets, num_classes)  # [M, K]
  per_class = jnp.take_along_axis(count_log_probs[:, None], counts[None, :, :, None], axis=-1)[..., 0]  # [B, M, K]
  log_joint = jax.nn.log_softmax(per_class.sum(axis=-1), axis=-1)  # [B, M], renormalised over the multisets
  marginals = []
  for position in range(size):
    holds = multisets[:, position, None] == np.arange(num_classes)  # [M, K]
    marginals.append(jax.nn.logsumexp(jnp.where(holds, log_joint[:, :, None], -jnp.inf), axis=1))  # [B, K]
  return marginals


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
    frame_count_log_probs = self.count_copies(hidden, batch, time) if self.config.counted_heads else None
    hidden = hidden.reshape(batch, time, -1)  # [B, T, 4 * 4 * channels]
    frames = nn.leaky_relu(nn.Dense(self.config.feature_size, dtype=dtype, name="frame_feature")(hidden), 0.2)  # [B, T, F]
    outputs, forward_last, backward_first = layers.BiLSTM(self.config.lstm_size, dtype, name="rnn")(frames)  # [B, T, 2L]
    features = jnp.concatenate([forward_last, backward_first], axis=-1)  # [B, 2L]
    pooled = outputs.mean(axis=1)  # [B, 2L]
    logits = {
        name: nn.Dense(classes, dtype=dtype, name=f"head_{name}")(pooled if name in self.config.pooled_heads else features)
        .astype(jnp.float32)
        for name, classes in self.config.heads if name not in self.config.counted_heads
    }
    if self.config.counted_heads:
      video_counts = jax.nn.log_softmax(frame_count_log_probs.mean(axis=1), axis=-1)  # [B, K, N + 1]
      logits.update(zip(self.config.counted_heads, multiset_log_marginals(video_counts, len(self.config.counted_heads))))
    return JudgeOutput({name: logits[name] for name, _ in self.config.heads}, features, frame_count_log_probs)

  def count_copies(self, feature_maps: jax.Array, batch: int, time: int) -> jax.Array:
    """Per-frame log-probabilities [B, T, K, N + 1] of 0..N copies of each counted class, from conv maps [B*T, h, w, C]."""
    num_classes, copies = dict(self.config.heads)[self.config.counted_heads[0]], len(self.config.counted_heads) + 1
    dtype = layers.compute_dtype(self.config.compute_dtype)
    pooled = feature_maps.max(axis=(1, 2))  # [B*T, C]: wherever in the frame a class appears
    hidden = nn.leaky_relu(nn.Dense(self.config.feature_size, dtype=dtype, name="count_feature")(pooled), 0.2)
    logits = nn.Dense(num_classes * copies, dtype=dtype, name="count_logits")(hidden).astype(jnp.float32)
    return jax.nn.log_softmax(logits.reshape(batch, time, num_classes, copies), axis=-1)


def probabilities(output: JudgeOutput) -> dict[str, jax.Array]:
  """{label: p(y | x) [B, K]}."""
  return {name: jax.nn.softmax(logits, axis=-1) for name, logits in output.logits.items()}


def cross_entropy(
    output: JudgeOutput, labels: dict[str, jax.Array], counted_heads: tuple[str, ...] = ()
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The mean over heads of the batch-mean cross-entropy (counted heads: one term, every frame's count loss), and per-head loss and accuracy."""
  metrics, terms = {}, []
  for name, logits in output.logits.items():
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels[name]).mean()
    metrics[f"loss_{name}"] = loss
    metrics[f"accuracy_{name}"] = jnp.mean(jnp.argmax(logits, axis=-1) == labels[name])
    if name not in counted_heads:
      terms.append(loss)
  if counted_heads:
    num_classes = output.frame_count_log_probs.shape[2]
    counts = class_counts(jnp.stack([labels[name] for name in counted_heads], axis=-1), num_classes)  # [B, K]
    picked = jnp.take_along_axis(output.frame_count_log_probs, counts[:, None, :, None], axis=-1)  # [B, T, K, 1]
    metrics["loss_frame_counts"] = -picked.sum(axis=(2, 3)).mean()
    terms.append(metrics["loss_frame_counts"])
  loss = sum(terms) / len(terms)
  return loss, {"loss": loss, **metrics}
