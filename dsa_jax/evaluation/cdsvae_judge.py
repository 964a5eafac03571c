"""C-DSVAE's Sprites judge (`classifier_Sprite_all`, JunwenBai/C-DSVAE's model.py) read from its torch file, in JAX.

The field scores Sprites with it: sprite_judge.tar of JunwenBai/C-DSVAE, shipped again as
cdsvae/sprite_judge.tar by azencot-group/SPYL (a dict whose "state_dict" holds the weights).
Every frame [64, 64, 3] passes four conv blocks (4x4 kernel, stride 2, padding 1, BatchNorm with its
running statistics, LeakyReLU 0.2) and a fifth (4x4 kernel, no padding, BatchNorm, tanh) to a frame code
[128]; a one-layer bi-LSTM (256 units a direction, torch's gate order input, forget, cell, output) reads
the codes. The forward state after frame 8 (C-DSVAE's opt.frames) and the backward state at frame 1
are the features [512] that every head reads (Linear, ReLU, Linear to the logits) and that the
judge Frechet distance uses. Widths are read from the weights, so narrower copies load too.

Conventions converted here: C-DSVAE feeds RGB frames [N, T, C, H, W] scaled by 1/256 (as
YingzhenLi/Sprites' frame_to_npy.py writes them); ours are [N, T, H, W, C] in [0, 1] (uint8 / 255), so
predict scales by 255/256. Its heads cls_action, cls_skin, cls_pant, cls_top and cls_hair are our
action, body, bottom, top and hair; classes keep their indices, since both label sets come from
YingzhenLi/Sprites (action 3 * {walk, spellcast, slash} + {front, left, right}, attribute k the
layer file k.png).
"""

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dsa_jax.evaluation import judges, torch_files

FRAMES = 8  # C-DSVAE's opt.frames: the forward LSTM state is read after this frame
IMAGE_SHAPE = (64, 64, 3)
UNIT_TO_CDSVAE = 255.0 / 256.0  # our uint8 / 255 frames -> C-DSVAE's uint8 / 256
BATCH_NORM_EPSILON = 1e-5  # torch's default
LEAKY_SLOPE = 0.2
ENCODER_BLOCKS = ("encoder.c1.main.", "encoder.c2.main.", "encoder.c3.main.", "encoder.c4.main.", "encoder.c5.")
# Our head: C-DSVAE's. Its forward returns (action, skin, pant, top, hair); its attribute labels: (skin, pant, top, hair).
HEADS = {"action": "cls_action", "body": "cls_skin", "bottom": "cls_pant", "top": "cls_top", "hair": "cls_hair"}
SPRITES_CLASSES = {"action": 9, "body": 6, "bottom": 6, "top": 6, "hair": 6}
WHERE_TO_GET = (
    "get sprite_judge.tar from JunwenBai/C-DSVAE (its README's Sprites judge link) or azencot-group/SPYL "
    "(cdsvae/sprite_judge.tar)"
)
HIGHEST = jax.lax.Precision.HIGHEST  # full float32 products on every backend (not a GPU's default TF32)


class ConvBlock(NamedTuple):
  """A conv layer (torch layout) and the BatchNorm after it."""

  kernel: jax.Array  # [O, I, 4, 4]
  bias: jax.Array  # [O]
  scale: jax.Array  # [O]
  offset: jax.Array  # [O]
  mean: jax.Array  # [O] running mean
  variance: jax.Array  # [O] running variance


class Lstm(NamedTuple):
  """One direction of the bi-LSTM; gate rows in torch's order input, forget, cell, output."""

  input_kernel: jax.Array  # [4H, G]
  hidden_kernel: jax.Array  # [4H, H]
  bias: jax.Array  # [4H] both of torch's biases summed


class Head(NamedTuple):
  """Linear, ReLU, Linear (torch layout)."""

  hidden_kernel: jax.Array  # [H, 2H]
  hidden_bias: jax.Array  # [H]
  output_kernel: jax.Array  # [K, H]
  output_bias: jax.Array  # [K]


class Params(NamedTuple):
  """The judge's weights, under our head names."""

  encoder: tuple[ConvBlock, ...]  # c1..c5
  forward_lstm: Lstm
  backward_lstm: Lstm
  heads: dict[str, Head]


def conv_block(block: ConvBlock, frames: jax.Array, stride: int, padding: int) -> jax.Array:
  """BatchNorm(conv(frames)) of frames [B, H, W, I]: [B, H', W', O]."""
  convolved = jax.lax.conv_general_dilated(
      frames, block.kernel, (stride, stride), [(padding, padding)] * 2, dimension_numbers=("NHWC", "OIHW", "NHWC"),
      precision=HIGHEST,
  ) + block.bias
  return (convolved - block.mean) * jax.lax.rsqrt(block.variance + BATCH_NORM_EPSILON) * block.scale + block.offset


def encode_frames(encoder: tuple[ConvBlock, ...], frames: jax.Array) -> jax.Array:
  """Frame codes [B, G] of frames [B, 64, 64, 3]."""
  for block in encoder[:-1]:
    frames = jax.nn.leaky_relu(conv_block(block, frames, 2, 1), LEAKY_SLOPE)  # halves the frame
  return jnp.tanh(conv_block(encoder[-1], frames, 1, 0)).reshape(len(frames), -1)  # 4x4 -> 1x1


def lstm_states(lstm: Lstm, codes: jax.Array, reverse: bool) -> jax.Array:
  """Hidden states [T, N, H] of one LSTM direction over codes [T, N, G], from zero states."""
  inputs = jnp.matmul(codes, lstm.input_kernel.T, precision=HIGHEST) + lstm.bias  # [T, N, 4H]

  def step(carry, gate_inputs):
    hidden, cell = carry  # [N, H] each
    gates = gate_inputs + jnp.matmul(hidden, lstm.hidden_kernel.T, precision=HIGHEST)  # [N, 4H]
    input_gate, forget_gate, candidate, output_gate = jnp.split(gates, 4, axis=-1)
    cell = jax.nn.sigmoid(forget_gate) * cell + jax.nn.sigmoid(input_gate) * jnp.tanh(candidate)
    hidden = jax.nn.sigmoid(output_gate) * jnp.tanh(cell)
    return (hidden, cell), hidden

  zeros = jnp.zeros((codes.shape[1], lstm.hidden_kernel.shape[1]), codes.dtype)  # [N, H]
  return jax.lax.scan(step, (zeros, zeros), inputs, reverse=reverse)[1]


def apply(params: Params, videos: jax.Array) -> tuple[dict[str, jax.Array], jax.Array]:
  """Logits {head: [N, K]} and features [N, 2H] of videos [N, T >= FRAMES, 64, 64, 3] in C-DSVAE's scale."""
  count, length = videos.shape[:2]
  codes = encode_frames(params.encoder, videos.reshape(count * length, *videos.shape[2:]))  # [N * T, G]
  codes = codes.reshape(count, length, -1).swapaxes(0, 1)  # [T, N, G]
  forward = lstm_states(params.forward_lstm, codes, reverse=False)[FRAMES - 1]  # [N, H]
  backward = lstm_states(params.backward_lstm, codes, reverse=True)[0]  # [N, H]
  features = jnp.concatenate([forward, backward], axis=-1)  # [N, 2H]
  logits = {}
  for name, head in params.heads.items():
    hidden = jax.nn.relu(jnp.matmul(features, head.hidden_kernel.T, precision=HIGHEST) + head.hidden_bias)  # [N, H]
    logits[name] = jnp.matmul(hidden, head.output_kernel.T, precision=HIGHEST) + head.output_bias  # [N, K]
  return logits, features


@jax.jit
def _predict(params: Params, videos: jax.Array) -> tuple[dict[str, jax.Array], jax.Array]:
  logits, features = apply(params, videos * UNIT_TO_CDSVAE)
  return {name: jax.nn.softmax(value, axis=-1) for name, value in logits.items()}, features


class CdsvaeJudge(NamedTuple):
  """C-DSVAE's judge with what protocols and report ask of a judge (like judges.TrainedJudge)."""

  params: Params
  info: dict[str, Any]
  directory: str  # the torch file

  @property
  def classes(self) -> dict[str, int]:
    """{head: number of classes}."""
    return {name: int(head.output_bias.shape[0]) for name, head in self.params.heads.items()}

  @property
  def dynamic_heads(self) -> list[str]:
    """The heads that read the dynamics: the action."""
    return list(self.info["dynamic_heads"])

  def predict(self, videos, batch_size: int = 64) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """p(y | x) per head {label: [N, K]} and bi-LSTM features [N, 2H] of float videos [N, T, H, W, C] in [0, 1]."""
    videos = np.asarray(videos)
    if videos.shape[1] < FRAMES:
      raise judges.JudgeError(
          f"C-DSVAE's judge reads its forward LSTM at frame {FRAMES}; the videos have {videos.shape[1]}."
      )
    parts = [
        _predict(self.params, jnp.asarray(judges.fit_to(videos[start : start + batch_size], IMAGE_SHAPE)))
        for start in range(0, len(videos), batch_size)
    ]
    probabilities = {name: np.concatenate([np.asarray(part[0][name]) for part in parts]) for name in self.params.heads}
    return probabilities, np.concatenate([np.asarray(part[1]) for part in parts])


def params_from_state_dict(state: dict[str, np.ndarray], path: str) -> Params:
  """The judge's weights from classifier_Sprite_all's state dict, widths as they come."""

  def tensor(key: str) -> jax.Array:
    if key not in state:
      raise judges.JudgeError(f"{path} is not C-DSVAE's Sprites judge: its state dict lacks {key!r}.")
    return jnp.asarray(state[key], jnp.float32)

  def lstm(suffix: str) -> Lstm:
    biases = tensor(f"bilstm.bias_ih_l0{suffix}") + tensor(f"bilstm.bias_hh_l0{suffix}")
    return Lstm(tensor(f"bilstm.weight_ih_l0{suffix}"), tensor(f"bilstm.weight_hh_l0{suffix}"), biases)

  batch_norm = ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var")
  encoder = tuple(ConvBlock(*(tensor(prefix + name) for name in batch_norm)) for prefix in ENCODER_BLOCKS)
  layers = ("0.weight", "0.bias", "2.weight", "2.bias")
  heads = {ours: Head(*(tensor(f"{theirs}.{name}") for name in layers)) for ours, theirs in HEADS.items()}
  classes = {name: int(head.output_bias.shape[0]) for name, head in heads.items()}
  if classes != SPRITES_CLASSES:
    raise judges.JudgeError(
        f"{path} is not C-DSVAE's Sprites judge: its heads have {classes} classes, not {SPRITES_CLASSES}."
    )
  return Params(encoder, lstm(""), lstm("_reverse"), heads)


def load(path: str) -> CdsvaeJudge:
  """C-DSVAE's Sprites judge from its torch file (sprite_judge.tar), torch not needed."""
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.isfile(path):
    raise judges.JudgeError(f"No C-DSVAE judge at {path}: {WHERE_TO_GET}.")
  try:
    saved = torch_files.load(path)
  except torch_files.TorchFileError as error:
    raise judges.JudgeError(str(error)) from error
  state = saved.get("state_dict", saved) if isinstance(saved, dict) else None
  if not isinstance(state, dict):
    raise judges.JudgeError(f"{path} holds a {type(saved).__name__}, not C-DSVAE's judge (a dict with its state_dict).")
  params = params_from_state_dict(state, path)
  with open(path, "rb") as file:
    content = file.read()
  info = {
      "dataset": "sprites",
      "variant": None,
      "num_frames": FRAMES,
      "image_shape": list(IMAGE_SHAPE),
      "heads": [[name, classes] for name, classes in SPRITES_CLASSES.items()],
      "dynamic_heads": ["action"],
      "test_accuracy": {},  # not measured on our videos: no head counts as weak (judges.weak_heads)
      "params_sha256": judges.sha256(content),
  }
  return CdsvaeJudge(params, info, path)
