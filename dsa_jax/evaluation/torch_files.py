"""Reads files written by `torch.save` into nested dicts of numpy arrays, without importing torch.

Two containers are read. The zip archive of torch >= 1.6 holds `<name>/data.pkl`, the pickled object,
and every storage's raw bytes in `<name>/data/<key>`. The legacy stream before it is a row of pickles
(magic number, protocol version, system info, the object, the list of storage keys), then each storage
as its element count (int64) and bytes. torch < 0.4's tar container is refused with the fix.

Only what a state dict holds is unpickled: tensors (`torch._utils._rebuild_tensor_v2` over typed storages
such as `torch.FloatStorage`), `collections.OrderedDict` and pickle's own types (numbers, strings, lists,
tuples, dicts, None); any other class is refused, so loading never runs a file's code. A tensor comes
back as a numpy array copied out of its storage at its offset, sizes and strides.
"""

import collections
import dataclasses
import io
import pickle
import tarfile
import zipfile
from typing import Any

import numpy as np

LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)  # how torch.save's legacy stream begins
LEGACY_PROTOCOL_VERSION = 1001
STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
RESAVE_HINT = "load and re-save it with torch (torch.save(torch.load(OLD), NEW)) to get the zip format"


class TorchFileError(ValueError):
  """A file is not a torch.save file, is damaged, or holds more than a state dict."""


@dataclasses.dataclass(frozen=True)
class Storage:
  """A typed storage named in the pickle; its bytes are read after unpickling."""

  key: str
  dtype: np.dtype
  offset: int  # elements; non-zero only for the legacy stream's storage views


@dataclasses.dataclass(frozen=True)
class Tensor:
  """A tensor named in the pickle, made an array once its storage's bytes are known."""

  storage: Storage
  offset: int  # elements into the storage
  size: tuple[int, ...]
  stride: tuple[int, ...]  # elements


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None) -> Tensor:
  """Stands in for torch._utils._rebuild_tensor_v2 (gradients, hooks and metadata do not matter to arrays)."""
  return Tensor(storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
  """Resolves only the classes a state dict needs; records every storage it meets."""

  def __init__(self, file, path: str):
    super().__init__(file)
    self.path = path
    self.dtypes: dict[str, np.dtype] = {}  # storage key -> dtype

  def find_class(self, module: str, name: str):
    if module == "torch._utils" and name == "_rebuild_tensor_v2":
      return _rebuild_tensor
    if module == "collections" and name == "OrderedDict":
      return collections.OrderedDict
    if module == "torch" and name in STORAGE_DTYPES:
      return np.dtype(STORAGE_DTYPES[name])
    raise TorchFileError(
        f"{self.path} holds {module}.{name}, which a state dict does not need; only tensors of "
        f"{sorted(STORAGE_DTYPES)}, OrderedDict and plain Python values are read."
    )

  def persistent_load(self, saved_id) -> Storage:
    typed_storage = isinstance(saved_id, tuple) and len(saved_id) >= 5 and saved_id[0] == "storage"
    if not typed_storage or not isinstance(saved_id[1], np.dtype):
      raise TorchFileError(f"{self.path} refers to {saved_id!r}, not to a typed storage of a tensor.")
    dtype, key = saved_id[1], str(saved_id[2])
    view = saved_id[5] if len(saved_id) > 5 else None  # legacy: (view key, offset, size) of a storage view
    self.dtypes[key] = dtype
    return Storage(key, dtype, 0 if view is None else int(view[1]))


def _array(tensor: Tensor, buffers: dict[str, np.ndarray], path: str) -> np.ndarray:
  flat = buffers[tensor.storage.key]  # [storage elements]
  start = tensor.storage.offset + tensor.offset
  if 0 in tensor.size:
    return np.zeros(tensor.size, flat.dtype)
  last = start + sum((count - 1) * step for count, step in zip(tensor.size, tensor.stride))
  if start < 0 or last >= len(flat) or min(tensor.stride, default=0) < 0:
    raise TorchFileError(f"{path}: a tensor of size {tensor.size} reaches past its storage of {len(flat)} elements.")
  strides = tuple(step * flat.itemsize for step in tensor.stride)
  return np.lib.stride_tricks.as_strided(flat[start:], tensor.size, strides).copy()


def _materialise(value, buffers: dict[str, np.ndarray], path: str):
  """The unpickled object with every Tensor replaced by its array."""
  if isinstance(value, Tensor):
    return _array(value, buffers, path)
  if isinstance(value, dict):
    return type(value)((key, _materialise(item, buffers, path)) for key, item in value.items())
  if isinstance(value, (list, tuple)):
    return type(value)(_materialise(item, buffers, path) for item in value)
  return value


def _read_zip(archive: zipfile.ZipFile, path: str) -> Any:
  pickles = [name for name in archive.namelist() if name.count("/") == 1 and name.endswith("/data.pkl")]
  if len(pickles) != 1:
    raise TorchFileError(f"{path} is a zip archive but not torch.save's: it holds no single <name>/data.pkl.")
  prefix = pickles[0][: -len("data.pkl")]
  byte_order = archive.read(prefix + "byteorder").decode() if prefix + "byteorder" in archive.namelist() else "little"
  unpickler = _Unpickler(io.BytesIO(archive.read(pickles[0])), path)
  value = unpickler.load()
  buffers = {}
  for key, dtype in unpickler.dtypes.items():
    try:
      content = archive.read(f"{prefix}data/{key}")
    except KeyError as error:
      raise TorchFileError(f"{path} lacks storage {key} ({prefix}data/{key}): the file is damaged.") from error
    buffers[key] = np.frombuffer(content, dtype.newbyteorder("<" if byte_order == "little" else ">")).astype(dtype)
  return _materialise(value, buffers, path)


def _read_legacy(file, path: str) -> Any:
  unpickler = _Unpickler(file, path)
  unpickler.load()  # the magic number, checked by the caller
  if unpickler.load() != LEGACY_PROTOCOL_VERSION:
    raise TorchFileError(f"{path} is a legacy torch file of an unknown protocol version; {RESAVE_HINT}.")
  system = unpickler.load()
  byte_order = "<" if system.get("little_endian", True) else ">"
  value = unpickler.load()
  keys = [str(key) for key in unpickler.load()]
  buffers = {}
  for key in keys:
    header = file.read(8)
    size = unpickler.dtypes[key].itemsize * int(np.frombuffer(header, byte_order + "i8")[0]) if len(header) == 8 else -1
    content = file.read(max(size, 0))
    if size < 0 or len(content) < size:
      raise TorchFileError(f"{path} ends inside storage {key}: the file is truncated.")
    buffers[key] = np.frombuffer(content, unpickler.dtypes[key].newbyteorder(byte_order)).astype(unpickler.dtypes[key])
  return _materialise(value, buffers, path)


def load(path: str) -> Any:
  """The object a torch.save file holds, tensors as numpy arrays (dicts, lists and plain values as they are)."""
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as archive:
      return _read_zip(archive, path)
  with open(path, "rb") as file:
    if file.read(len(LEGACY_MAGIC)) == LEGACY_MAGIC:
      file.seek(0)
      return _read_legacy(file, path)
  if tarfile.is_tarfile(path):
    raise TorchFileError(f"{path} is in the tar format of torch < 0.4, which is not read here; {RESAVE_HINT}.")
  raise TorchFileError(
      f"{path} is not a torch.save file: expected a zip archive holding <name>/data.pkl (torch >= 1.6) "
      "or torch's legacy pickle stream (its magic number first)."
  )
