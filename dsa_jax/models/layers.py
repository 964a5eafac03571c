"""Building blocks shared by the models: conv frame encoder/decoder and RNN helpers."""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str) -> jnp.dtype:
  """The dtype of activations and matmul/conv operands called `name` ("float32" or "bfloat16")."""
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"Unknown compute dtype {name!r}; choose from {sorted(COMPUTE_DTYPES)} (config.train.compute_dtype).")
  return COMPUTE_DTYPES[name]


def num_resolution_steps(image_size: int, base: int = 4) -> int:
  """How many stride-2 steps take a square `base` x `base` map to `image_size`."""
  steps = math.log2(image_size / base) if image_size >= base else -1
  if steps < 0 or steps != int(steps):
    raise ValueError(
        f"Frames must be square with a side of {base} * 2**k (16, 32, 64, ...); got "
        f"{image_size}. Resize the dataset or set config.data.image_size accordingly."
    )
  return int(steps)


def resolution_channels(num_channels: int, per_resolution: tuple[int, ...], image_size: int) -> tuple[int, ...]:
  """Conv widths at image_size, image_size / 2, ..., 4: `per_resolution`, or `num_channels` at each if it is empty."""
  count = num_resolution_steps(image_size) + 1
  if not per_resolution:
    return (num_channels,) * count
  if len(per_resolution) != count or min(per_resolution) < 1:
    raise ValueError(
        f"{image_size}x{image_size} frames need {count} positive channel counts, one per resolution from "
        f"{image_size} down to 4; got channels_per_resolution={tuple(per_resolution)} "
        "(config.dsa.channels_per_resolution; () uses num_channels at every resolution)."
    )
  return tuple(per_resolution)


# ReLU layers use He initialisation (variance 2 / fan-in) so activations keep their scale
# through the deep conv stacks; LeCun's default halves the variance at every ReLU.
relu_init = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")

# A kernel-3 stride-2 transposed conv sums 2.25 of its 9 taps per output on average.
relu_init_conv_transpose_2x = nn.initializers.variance_scaling(2.0 * 9 / 2.25, "fan_in", "truncated_normal")


def float32_output_conv(*args, **kwargs) -> jax.Array:
  """jax.lax.conv_general_dilated in its operands' dtype, with its output cast to float32.

  The bias is then added in float32 and its gradient is a float32 sum, while the backward
  convolutions still take the bfloat16 cotangent: summed from bfloat16, XLA:CPU runs the bias
  gradient as a reduce-window several times slower (DSA at the notes' sizes: 5.6 s of a 29 s
  step). Callers cast to the compute dtype after the activation.
  """
  return jax.lax.conv_general_dilated(*args, **kwargs).astype(jnp.float32)


NHWC = ("NHWC", "HWIO", "NHWC")
# Swapped roles for kernel gradients: batch = a channel axis, features = the batch axis.
_KERNEL_GRADIENT_DIMENSIONS = ("CHWN", "IHWO", "NHWC")


def _conv_stride_1(inputs: jax.Array, kernel: jax.Array, padding: tuple[tuple[int, int], ...]) -> jax.Array:
  return jax.lax.conv_general_dilated(inputs, kernel, (1, 1), padding, dimension_numbers=NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_stride_1_cheap_kernel_gradient(inputs, kernel, padding):
  return _conv_stride_1(inputs, kernel, padding)


def _conv_stride_1_forward(inputs, kernel, padding):
  return _conv_stride_1(inputs, kernel, padding), (inputs, kernel)


def kernel_gradient(inputs: jax.Array, cotangent: jax.Array, kernel_size: tuple[int, int], padding) -> jax.Array:
  """d(sum conv(inputs, K) * cotangent)/dK [kh, kw, I, O] of a stride-1 NHWC conv, as one convolution.

  That convolution's batch axis is a channel axis of one operand, which XLA:CPU lays out as
  [C, H, W, N] by an element-by-element transpose. XLA's own gradient transposes the inputs
  [N, H, W, I]; this transposes whichever of them and the cotangent [N, Ho, Wo, O] is smaller.
  """
  (kh, kw), ((top, bottom), (left, right)) = kernel_size, padding
  if math.prod(cotangent.shape[1:]) >= math.prod(inputs.shape[1:]):
    gradient = jax.lax.conv_general_dilated(  # [I, kh, kw, O]
        inputs, cotangent, (1, 1), padding, dimension_numbers=_KERNEL_GRADIENT_DIMENSIONS
    )
    return gradient.transpose(1, 2, 0, 3)
  flipped_padding = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
  gradient = jax.lax.conv_general_dilated(  # [O, kh, kw, I], taps reversed
      cotangent, inputs, (1, 1), flipped_padding, dimension_numbers=_KERNEL_GRADIENT_DIMENSIONS
  )
  return gradient[:, ::-1, ::-1, :].transpose(1, 2, 3, 0)


def _conv_stride_1_backward(padding, residuals, cotangent):
  inputs, kernel = residuals
  _, inputs_vjp = jax.vjp(lambda values: _conv_stride_1(values, kernel, padding), inputs)
  (inputs_gradient,) = inputs_vjp(cotangent)
  return inputs_gradient, kernel_gradient(inputs, cotangent, kernel.shape[:2], padding).astype(kernel.dtype)


_conv_stride_1_cheap_kernel_gradient.defvjp(_conv_stride_1_forward, _conv_stride_1_backward)


def space_to_depth(inputs: jax.Array) -> jax.Array:
  """[N, H, W, C] -> [N, H/2, W/2, 4C], channels ordered (row phase, column phase, C)."""
  batch, height, width, channels = inputs.shape
  blocks = inputs.reshape(batch, height // 2, 2, width // 2, 2, channels).transpose(0, 1, 3, 2, 4, 5)
  return blocks.reshape(batch, height // 2, width // 2, 4 * channels)


def space_to_depth_kernel(kernel: jax.Array) -> jax.Array:
  """[kh, kw, I, O] stride-2 kernel -> [ceil(kh/2), ceil(kw/2), 4I, O] stride-1 kernel over space_to_depth blocks."""
  kh, kw, in_features, out_features = kernel.shape
  block_rows, block_cols = -(-kh // 2), -(-kw // 2)
  padded = jnp.pad(kernel, ((0, 2 * block_rows - kh), (0, 2 * block_cols - kw), (0, 0), (0, 0)))
  taps = padded.reshape(block_rows, 2, block_cols, 2, in_features, out_features).transpose(0, 2, 1, 3, 4, 5)
  return taps.reshape(block_rows, block_cols, 4 * in_features, out_features)


def _block_padding(size: int, kernel_size: int, padding: tuple[int, int]) -> tuple[int, int] | None:
  """Padding in blocks of 2 that gives a stride-2 conv's outputs, or None where no whole-block padding does."""
  low, high = padding
  outputs = (size + low + high - kernel_size) // 2 + 1
  block_low = low // 2
  block_high = outputs - 1 + -(-kernel_size // 2) - size // 2 - block_low
  if size % 2 or low % 2 or block_high < 0:
    return None
  return block_low, block_high


def conv_general_dilated(
    inputs, kernel, window_strides, padding, lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
    feature_group_count=1, precision=None,
) -> jax.Array:
  """float32_output_conv for flax's nn.Conv, with gradients that avoid XLA:CPU's slow paths; same function and parameters.

  Stride 1: the kernel gradient by `kernel_gradient`. Stride 2: a stride-1 conv over
  `space_to_depth` blocks, so the inputs' gradient is a plain convolution rather than one
  over a zero-dilated cotangent. Anything else (dilations, groups, odd sizes) is float32_output_conv.
  """
  strides = tuple(window_strides)
  plain = dict(lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
               feature_group_count=feature_group_count, precision=precision)
  is_nhwc = jax.lax.conv_dimension_numbers(inputs.shape, kernel.shape, dimension_numbers) == jax.lax.conv_dimension_numbers(
      inputs.shape, kernel.shape, NHWC
  )
  undilated = all(factor == 1 for factor in (*(lhs_dilation or ()), *(rhs_dilation or ())))
  if not (is_nhwc and undilated and feature_group_count == 1 and precision is None and strides in ((1, 1), (2, 2))):
    return float32_output_conv(inputs, kernel, window_strides, padding, **plain)
  if isinstance(padding, str):
    padding = jax.lax.padtype_to_pads(inputs.shape[1:3], kernel.shape[:2], strides, padding)
  padding = tuple((int(low), int(high)) for low, high in padding)
  if strides == (1, 1):
    return _conv_stride_1_cheap_kernel_gradient(inputs, kernel, padding).astype(jnp.float32)
  block_padding = tuple(
      _block_padding(size, kernel_size, pads) for size, kernel_size, pads in zip(inputs.shape[1:3], kernel.shape[:2], padding)
  )
  if None in block_padding:
    return float32_output_conv(inputs, kernel, window_strides, padding, **plain)
  return _conv_stride_1_cheap_kernel_gradient(
      space_to_depth(inputs), space_to_depth_kernel(kernel), block_padding
  ).astype(jnp.float32)


def _check_widths(widths: tuple[int, ...], image_size: int) -> None:
  if len(widths) != num_resolution_steps(image_size) + 1:
    raise ValueError(f"{image_size}x{image_size} frames need one conv width per resolution from {image_size} down to 4; got {widths}.")


class FrameEncoder(nn.Module):
  """Conv net per frame: [N, H, W, C] -> [N, feature_size] (mirror of FrameDecoder)."""

  widths: tuple[int, ...]  # conv widths at H, H/2, ..., 4 (resolution_channels)
  feature_size: int
  dtype: jnp.dtype = jnp.float32  # of the activations and the operands of every conv and matmul

  @nn.compact
  def __call__(self, frames: jax.Array) -> jax.Array:
    num_frames, height = frames.shape[0], frames.shape[1]
    widths = tuple(self.widths)
    _check_widths(widths, height)
    conv = functools.partial(
        nn.Conv, kernel_size=(3, 3), kernel_init=relu_init, dtype=self.dtype, conv_general_dilated=conv_general_dilated
    )
    hidden = nn.relu(conv(widths[0], name="conv_in")(frames)).astype(self.dtype)  # [N, H, W, widths[0]]
    for i, width in enumerate(widths[1:]):
      hidden = nn.relu(conv(width, strides=2, name=f"down_{i}")(hidden)).astype(self.dtype)  # halves H and W
    hidden = hidden.reshape(num_frames, -1)  # [N, 4 * 4 * widths[-1]]
    return nn.relu(nn.Dense(self.feature_size, kernel_init=relu_init, dtype=self.dtype, name="dense")(hidden))


# Kernel-3, stride-2 transposed convolution, phase by phase: output row 2j takes taps
# 0 and 2 at input rows j-1 and j, output row 2j+1 takes tap 1 at row j (likewise columns).
_PHASE_TAPS = {0: {0: 0, 1: 2}, 1: {1: 1}}  # phase -> {window row (j-1, j): kernel tap}


def _phase_kernel(kernel: jax.Array) -> jax.Array:
  """[3, 3, I, O] transposed-conv kernel -> [2, 2, I, 4*O] stride-1 kernel of the 4 phases."""
  selection = np.zeros((2, 2, 3, 3, 2, 2), np.float32)  # window r, c; tap u, v; phase a, b
  for row_phase, row_taps in _PHASE_TAPS.items():
    for col_phase, col_taps in _PHASE_TAPS.items():
      for window_row, tap_row in row_taps.items():
        for window_col, tap_col in col_taps.items():
          selection[window_row, window_col, tap_row, tap_col, row_phase, col_phase] = 1.0
  phases = jnp.einsum("rcuvab,uvio->rciabo", selection.astype(kernel.dtype), kernel)  # [2, 2, I, 2, 2, O]
  return phases.reshape(2, 2, kernel.shape[2], 4 * kernel.shape[3])


class ConvTranspose2x(nn.Module):
  """Kernel-3, stride-2, SAME transposed conv, equal to nn.ConvTranspose(features, (3, 3), (2, 2)).

  Computed as one stride-1 2x2 convolution to the four output phases, then depth-to-space:
  the same function and parameters, without XLA's slow CPU path of convolving a
  zero-dilated input (and its slower gradient).
  """

  features: int
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    batch, height, width, in_features = inputs.shape
    kernel = self.param("kernel", self.kernel_init, (3, 3, in_features, self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
    padded = jnp.pad(inputs.astype(self.dtype), ((0, 0), (1, 0), (1, 0), (0, 0)))  # window rows/cols (j-1, j)
    phases = conv_general_dilated(padded, _phase_kernel(kernel.astype(self.dtype)), (1, 1), "VALID", dimension_numbers=NHWC)  # [N, H, W, 4*O] float32
    phases = phases.reshape(batch, height, width, 2, 2, self.features)
    outputs = phases.transpose(0, 1, 3, 2, 4, 5).reshape(batch, 2 * height, 2 * width, self.features)
    return outputs + bias  # float32, as conv_general_dilated


class FrameDecoder(nn.Module):
  """MLP then deconvs 4 -> 8 -> ... -> H: [N, D] -> float32 pixel logits [N, H, W, C]."""

  widths: tuple[int, ...]  # conv widths at H, H/2, ..., 4, as FrameEncoder's (used from 4 up)
  hidden_size: int
  image_shape: tuple[int, int, int]
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, latents: jax.Array) -> jax.Array:
    height, _, channels = self.image_shape
    _check_widths(tuple(self.widths), height)
    widths = tuple(self.widths)[::-1]  # from 4x4 up
    dense = functools.partial(nn.Dense, kernel_init=relu_init, dtype=self.dtype)
    hidden = nn.relu(dense(self.hidden_size, name="dense_0")(latents))
    hidden = nn.relu(dense(4 * 4 * widths[0], name="dense_1")(hidden))
    hidden = hidden.reshape(-1, 4, 4, widths[0])  # [N, 4, 4, widths[0]]
    for i, width in enumerate(widths[1:]):
      hidden = ConvTranspose2x(width, relu_init_conv_transpose_2x, self.dtype, name=f"up_{i}")(hidden)
      hidden = nn.relu(hidden).astype(self.dtype)  # [N, 2h, 2w, width]
    # A stride-1 nn.ConvTranspose without transpose_kernel is this conv: same parameters and outputs.
    logits = nn.Conv(channels, (3, 3), dtype=self.dtype, conv_general_dilated=conv_general_dilated, name="conv_out")(hidden)  # [N, H, W, C]
    return logits.astype(jnp.float32)


def apply_per_frame(module: nn.Module, videos: jax.Array) -> jax.Array:
  """Runs a per-frame module over [B, T, ...] by folding time into the batch."""
  batch, time = videos.shape[:2]
  outputs = module(videos.reshape(batch * time, *videos.shape[2:]))
  return outputs.reshape(batch, time, *outputs.shape[1:])


class BiLSTM(nn.Module):
  """Bidirectional LSTM over [B, T, D] returning per-step outputs and both final states."""

  hidden_size: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    forward = nn.RNN(nn.OptimizedLSTMCell(self.hidden_size, dtype=self.dtype, name="forward"), return_carry=True)
    backward = nn.RNN(
        nn.OptimizedLSTMCell(self.hidden_size, dtype=self.dtype, name="backward"),
        return_carry=True,
        reverse=True,
        keep_order=True,
    )
    (_, forward_last), forward_outputs = forward(inputs)  # [B, H], [B, T, H]
    (_, backward_first), backward_outputs = backward(inputs)  # [B, H], [B, T, H]
    outputs = jnp.concatenate([forward_outputs, backward_outputs], axis=-1)  # [B, T, 2H]
    return outputs, forward_last, backward_first


def check_videos(videos: jax.Array, image_shape: tuple[int, int, int]) -> None:
  """Raises a ValueError naming the problem when videos are not [B, T, *image_shape] floats."""
  if videos.ndim != 5 or tuple(videos.shape[2:]) != tuple(image_shape):
    raise ValueError(
        f"Expected videos of shape [batch, time, {', '.join(map(str, image_shape))}]; got "
        f"{tuple(videos.shape)}. Check config.data.image_size / num_frames against the dataset."
    )
  if not jnp.issubdtype(videos.dtype, jnp.floating):
    raise ValueError(
        f"Expected float videos in [0, 1]; got dtype {videos.dtype}. Convert uint8 frames "
        "with dsa_jax.data.to_unit_interval(videos)."
    )
