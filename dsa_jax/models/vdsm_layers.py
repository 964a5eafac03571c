"""VDSM's frame encoder (anti-aliased convolutions) and its mixture-of-experts decoder.

Encoder geometry. The supplementary lists Conv(32,4,1) / Conv(32,4,2) / ... with BlurPool
after each block; its stride-2 downsampling is done by the BlurPools (Zhang 2019: conv
stride 1 -> nonlinearity -> blur stride 2), as in the authors' code. With 4x4 kernels and
padding 1 that takes 64 -> 63 -> 32 -> 31 -> 16 -> 15 -> 8 -> 7 -> 4, and a final
unpadded 4x4 convolution to 256 channels gives the 256 features per frame (~33 M
multiply-adds per frame, as in SPEC).

Decoder. Each expert is ConvT(k4, s1, p0: 1 -> 4) then ConvT(k4, s2, p1) layers doubling
the size. Per sequence, every layer's kernel and bias are the mixture-weighted average of
the experts' (one einsum per layer). A kernel-4 stride-2 transposed convolution is then
one batched matmul of each input pixel with all 16 taps of its sequence's kernel,
followed by col2im: output pixel (2j + a) sums taps from input rows j and j -+ 1. Every
multiply-add is useful, no patch tensor is built, and its gradient is matmuls and slices.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dsa_jax.models import layers

# The experts are blended in float32, their parameters' dtype: casting every expert to bfloat16
# each step costs more than the blend saves (pretraining steps 19% slower on 2 CPU cores).
BLEND_SCOPE = "blend_experts"
INNER_PRODUCT_CHUNK = 32768  # columns (128 KB per row) per step of a mixture-weight gradient
BLUR_TAPS = np.array([1.0, 3.0, 3.0, 1.0], np.float32) / 8.0  # outer product / 64
# Output row 2j + a of a k4 s2 p1 transposed conv takes (input row offset, kernel tap) pairs:
COL2IM_TAPS = {0: ((0, 1), (-1, 3)), 1: ((0, 2), (1, 0))}


def num_blocks(image_size: int) -> int:
  """Downsampling blocks (= upsampling layers) between image_size and 4x4."""
  steps = int(np.log2(image_size / 4)) if image_size >= 4 else -1
  if steps < 1 or 4 * 2**steps != image_size:
    raise ValueError(f"VDSM frames must be 4 * 2^k pixels square (8, 16, 32, 64, ...); got {image_size}.")
  return steps


def blur_pool(inputs: jax.Array) -> jax.Array:
  """Anti-aliased 2x downsampling [N, H, W, C] -> [N, ceil(H/2), ceil(W/2), C].

  Depthwise binomial [1, 3, 3, 1] filter (outer product, / 64) with reflect padding (1, 2),
  stride 2; separable, written as strided slices.
  """
  padded = jnp.pad(inputs, ((0, 0), (1, 2), (1, 2), (0, 0)), mode="reflect")
  height, width = (inputs.shape[1] + 1) // 2, (inputs.shape[2] + 1) // 2
  taps = [float(weight) for weight in BLUR_TAPS]  # Python floats keep the input's dtype
  rows = sum(weight * padded[:, tap : tap + 2 * height - 1 : 2] for tap, weight in enumerate(taps))  # [N, H/2, W + 3, C]
  return sum(weight * rows[:, :, tap : tap + 2 * width - 1 : 2] for tap, weight in enumerate(taps))


class Encoder(nn.Module):
  """Per-frame features: [N, H, W, C] -> [N, channels[-1]]."""

  channels: tuple[int, ...] = (32, 32, 64, 64, 256)
  negative_slope: float = 0.01
  dtype: jnp.dtype = jnp.float32  # of the activations and the convolutions' operands

  @nn.compact
  def __call__(self, frames: jax.Array) -> jax.Array:
    blocks = num_blocks(frames.shape[1])
    if len(self.channels) != blocks + 1:
      raise ValueError(
          f"{frames.shape[1]}x{frames.shape[1]} frames need {blocks + 1} encoder channel counts; "
          f"got encoder_channels={self.channels}."
      )
    activation = functools.partial(nn.leaky_relu, negative_slope=self.negative_slope)
    conv = functools.partial(nn.Conv, kernel_size=(4, 4), dtype=self.dtype, conv_general_dilated=layers.float32_output_conv)
    hidden = frames
    for i, features in enumerate(self.channels[:-1]):
      hidden = conv(features, padding=((1, 1), (1, 1)), name=f"conv_{i}")(hidden)  # float32
      hidden = blur_pool(activation(hidden)).astype(self.dtype)  # [N, H/2^(i+1), W/2^(i+1), features]
    hidden = conv(self.channels[-1], padding="VALID", name=f"conv_{blocks}")(hidden)
    return activation(hidden).astype(self.dtype).reshape(frames.shape[0], -1)  # [N, channels[-1]]


def expert_init(fan_in: int):
  """He-normal init of each expert's kernel for a given fan-in (leaky-ReLU network)."""
  stddev = float(np.sqrt(2.0 / fan_in))

  def init(key, shape, dtype=jnp.float32):
    return stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) / 0.8796

  return init


def inner_products(rows: jax.Array, others: jax.Array) -> jax.Array:
  """rows [B, N] . others [E, N] -> [B, E], INNER_PRODUCT_CHUNK columns at a time.

  For N in the millions one matmul streams `others` from memory several times, on one core;
  chunks that stay in cache run ~2.5x faster on CPU.
  """
  chunks = rows.shape[1] // INNER_PRODUCT_CHUNK
  if chunks < 2:
    return rows @ others.T
  head = chunks * INNER_PRODUCT_CHUNK

  def add_chunk(total, start):
    columns = functools.partial(jax.lax.dynamic_slice_in_dim, start_index=start, slice_size=INNER_PRODUCT_CHUNK, axis=1)
    return total + columns(rows) @ columns(others).T, None

  total, _ = jax.lax.scan(add_chunk, rows[:, head:] @ others[:, head:].T, jnp.arange(chunks) * INNER_PRODUCT_CHUNK)
  return total


@jax.custom_vjp
def blend(weights: jax.Array, experts: jax.Array) -> jax.Array:
  """Per-sequence parameters [B, ...]: experts [E, ...] averaged with weights [B, E] (one matmul)."""
  return (weights @ experts.reshape(experts.shape[0], -1)).reshape(weights.shape[0], *experts.shape[1:])


def _blend_backward(residuals, cotangent):
  weights, experts = residuals
  flat_experts, flat_cotangent = experts.reshape(experts.shape[0], -1), cotangent.reshape(cotangent.shape[0], -1)
  return inner_products(flat_cotangent, flat_experts), (weights.T @ flat_cotangent).reshape(experts.shape)


blend.defvjp(lambda weights, experts: (blend(weights, experts), (weights, experts)), _blend_backward)


@jax.custom_vjp
def col2im_stride2(taps: jax.Array) -> jax.Array:
  """Sums per-pixel tap products [N, H, W, 4, 4, O] into the k4 s2 p1 output [N, 2H, 2W, O]."""
  n, height, width, _, _, out = taps.shape
  padded = jnp.pad(taps, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))

  def shifted(row_offset, col_offset, row_tap, col_tap):
    return padded[:, 1 + row_offset : 1 + row_offset + height, 1 + col_offset : 1 + col_offset + width, row_tap, col_tap]

  phases = [
      [
          sum(
              shifted(row_offset, col_offset, row_tap, col_tap)
              for row_offset, row_tap in COL2IM_TAPS[row_phase]
              for col_offset, col_tap in COL2IM_TAPS[col_phase]
          )
          for col_phase in (0, 1)
      ]
      for row_phase in (0, 1)
  ]  # [2][2] of [N, H, W, O]
  stacked = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)  # [N, H, 2, W, 2, O]
  return stacked.reshape(n, 2 * height, 2 * width, out)


def im2col_stride2(outputs: jax.Array) -> jax.Array:
  """The transpose of col2im_stride2: [N, 2H, 2W, O] -> taps [N, H, W, 4, 4, O], tap (r, c) of pixel
  (h, w) reading output pixel (2h + r - 1, 2w + c - 1) (zero outside)."""
  height, width = outputs.shape[1] // 2, outputs.shape[2] // 2
  padded = jnp.pad(outputs, ((0, 0), (1, 1), (1, 1), (0, 0)))  # [N, 2H + 2, 2W + 2, O]
  rows = jnp.stack([padded[:, r : r + 2 * height : 2] for r in range(4)], axis=3)  # [N, H, 2W + 2, 4, O]
  return jnp.stack([rows[:, :, c : c + 2 * width : 2] for c in range(4)], axis=4)  # [N, H, W, 4, 4, O]


# XLA's own transpose of the sliced sum pads 16 zero-filled copies and adds them, ~5x slower.
col2im_stride2.defvjp(lambda taps: (col2im_stride2(taps), None), lambda _, cotangent: (im2col_stride2(cotangent),))


def conv_transpose_stride2(inputs: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """Per-sequence k4 s2 p1 transposed conv: inputs [B, T, H, W, I], kernel [B, I, 4, 4, O], bias [B, O]."""
  batch, time, height, width, in_features = inputs.shape
  out_features = kernel.shape[-1]
  pixels = inputs.reshape(batch, time * height * width, in_features)
  all_taps = kernel.reshape(batch, in_features, 16 * out_features)  # [B, I, 4*4*O]
  # A plain batched matmul: XLA's CPU gradient of the equivalent 7-index einsum is ~7x slower.
  taps = jax.lax.dot_general(pixels, all_taps, (((2,), (1,)), ((0,), (0,))))  # [B, T*H*W, 4*4*O]
  outputs = col2im_stride2(taps.reshape(batch * time, height, width, 4, 4, out_features))
  return outputs.reshape(batch, time, *outputs.shape[1:]) + bias[:, None, None, None, :]


class MixtureDecoder(nn.Module):
  """Mixture-of-experts decoder: (latents [B, T, D], weights [B, E]) -> float32 pixel logits [B, T, H, W, C].

  The experts' float32 parameters are blended and convolved in `dtype`.
  """

  num_experts: int
  image_shape: tuple[int, int, int]
  channels: tuple[int, ...] = (512, 256, 128, 64)
  negative_slope: float = 0.01
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, latents: jax.Array, weights: jax.Array) -> jax.Array:
    height, _, image_channels = self.image_shape
    if len(self.channels) != num_blocks(height):
      raise ValueError(
          f"{height}x{height} frames need {num_blocks(height)} decoder channel counts; got decoder_channels={self.channels}."
      )
    batch, time, latent_size = latents.shape
    experts = self.num_experts
    activation = functools.partial(nn.leaky_relu, negative_slope=self.negative_slope)
    latents = latents.astype(self.dtype)

    def mix(parameter: jax.Array) -> jax.Array:  # the experts' float32 parameter, blended per sequence, in self.dtype
      with jax.named_scope(BLEND_SCOPE):
        return blend(weights.astype(parameter.dtype), parameter).astype(self.dtype)


    first = self.channels[0]
    kernel = self.param("kernel_0", expert_init(latent_size), (experts, latent_size, 4, 4, first))
    bias = self.param("bias_0", nn.initializers.zeros_init(), (experts, first))
    blended = mix(kernel).reshape(batch, latent_size, 16 * first)  # [B, D, 4*4*O]
    hidden = jax.lax.dot_general(latents, blended, (((2,), (1,)), ((0,), (0,))))  # [B, T, 4*4*O]
    hidden = hidden.reshape(batch, time, 4, 4, first) + mix(bias)[:, None, None, None]
    hidden = activation(hidden)  # [B, T, 4, 4, channels[0]]

    outputs = (*self.channels[1:], image_channels)
    for i, (inputs, features) in enumerate(zip(self.channels, outputs), start=1):
      kernel = self.param(f"kernel_{i}", expert_init(4 * inputs), (experts, inputs, 4, 4, features))
      bias = self.param(f"bias_{i}", nn.initializers.zeros_init(), (experts, features))
      hidden = conv_transpose_stride2(hidden, mix(kernel), mix(bias))  # [B, T, 2h, 2w, O]
      if i < len(outputs):
        hidden = activation(hidden)
    return hidden.astype(jnp.float32)
