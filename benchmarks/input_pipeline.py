r"""Input-pipeline speed of every dataset at the papers' batch sizes; prints a table.

  python -m benchmarks.input_pipeline [--data_dir=DIR] [--datasets=pendulum,sprites,...] [--seconds=2]

For each dataset and batch (VDSM supplementary Table 1, the DSA notes' 20 x 8 and the DSA
:quick config's 8 x 8 at 16x16) it times training batches read by `dsa_jax.data.BatchIterator`
(background thread, prefetch 4) and by direct `batch_at_step` calls, for plain batches and
identity groups of 2 clips. Datasets are built into --data_dir (default: a temporary folder,
removed at the end, so the build times are shown too); MUG is read from --mug_dir or, by
default, from a fake tree written to a temporary folder. Each row's margin is its batches/s
over the train steps/s that batch feeds; the pipeline should outrun the train step 5x or more.
"""

import dataclasses
import os
import tempfile
import time

from absl import app, flags, logging

from data_pipelines.mug import fake
from dsa_jax import data
from experiments import base

_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir; default: a new temporary folder.")
_DATASETS = flags.DEFINE_list("datasets", ["pendulum", "sprites", "moving_mnist", "mug"], "Datasets to time.")
_SPRITES_DIR = flags.DEFINE_string("sprites_dir", "../shared/data/lpc_sprites", "LPC layer sheets.")
_MNIST_DIR = flags.DEFINE_string("mnist_dir", "../shared/data/mnist", "MNIST IDX files.")
_MUG_DIR = flags.DEFINE_string("mug_dir", None, "MUG release; default: a fake tree in a temporary folder.")
_SECONDS = flags.DEFINE_float("seconds", 2.0, "Timed seconds per measurement (at least 5 batches).")
_GROUP_SIZES = flags.DEFINE_list("group_sizes", ["1", "2"], "Clips of one identity per batch element.")

DSA_NOTES_STEPS_PER_SECOND = 0.017  # benchmarks/train_step.py on the 2-core CPU, 20 x 8 x 64^2
DSA_QUICK_STEPS_PER_SECOND = 37.0  # the same, dsa_pendulum.py:quick, 8 x 8 x 16^2
VDSM_TARGET_STEPS_PER_SECOND = 1.0
REQUIRED_MARGIN = 5.0


@dataclasses.dataclass(frozen=True)
class Case:
  """One dataset at one paper batch size."""

  dataset: str
  batch_size: int
  num_frames: int
  source: str  # where the batch size comes from
  steps_per_second: float = VDSM_TARGET_STEPS_PER_SECOND  # of the train step the batches feed
  image_size: int | None = None
  grouped: bool = True  # whether the model it feeds may use identity groups


CASES = (
    Case("pendulum", 50, 16, "VDSM pretrain"),
    Case("pendulum", 20, 16, "VDSM seq"),
    Case("pendulum", 8, 8, "DSA :quick, 16x16", DSA_QUICK_STEPS_PER_SECOND, image_size=16, grouped=False),
    Case("sprites", 20, 8, "VDSM, DSA notes"),
    Case("moving_mnist", 20, 16, "VDSM pretrain"),
    Case("moving_mnist", 30, 16, "VDSM seq"),
    Case("mug", 20, 16, "VDSM (20 frames; clips hold 16)"),
)


def data_config(dataset: str, data_dir: str, mug_dir: str):
  """The locked data config of a dataset's default variant."""
  config = base.get_config().data
  config.name = dataset
  config.data_dir = data_dir
  config.manual_dir = {"sprites": _SPRITES_DIR.value, "moving_mnist": _MNIST_DIR.value, "mug": mug_dir}.get(dataset)
  return config


def load(config) -> tuple[object, float | None]:
  """The train split and the seconds it took to build (None if it was already built)."""
  prepared = data.make_builder(config).is_prepared()
  started = time.perf_counter()
  source = data.load_source(config, "train")
  return source, None if prepared else time.perf_counter() - started


def rate(next_batch, seconds: float) -> float:
  """Batches per second of next_batch() after one warm-up call."""
  next_batch()
  count, started = 0, time.perf_counter()
  while count < 5 or time.perf_counter() - started < seconds:
    next_batch()
    count += 1
  return count / (time.perf_counter() - started)


def measure(source, spec: data.BatchSpec, identities, seconds: float) -> dict[str, float]:
  """Batches/s of the prefetching iterator and of direct reads."""
  iterator = data.BatchIterator(source, spec, seed=0, identities=identities)
  try:
    threaded = rate(lambda: next(iterator), seconds)
  finally:
    iterator.close()
  step = iter(range(1_000_000))
  direct = rate(lambda: data.batch_at_step(source, spec, 0, next(step), identities), seconds)
  return {"BatchIterator": threaded, "batch_at_step": direct}


@dataclasses.dataclass(frozen=True)
class Row:
  """One measurement."""

  case: Case
  group_size: int
  reader: str
  batches_per_second: float
  build_seconds: float | None

  @property
  def margin(self) -> float:
    return self.batches_per_second / self.case.steps_per_second

  def cells(self) -> list[str]:
    case = self.case
    return [
        case.dataset,
        f"{case.batch_size} x {case.num_frames}",
        case.source,
        str(self.group_size),
        self.reader,
        f"{self.batches_per_second:.1f}",
        f"{self.batches_per_second * case.batch_size:.0f}",
        f"{case.steps_per_second:g}",
        f"{self.margin:.1f}x",
        "" if self.build_seconds is None else f"{self.build_seconds:.0f}",
    ]


HEADER = ["dataset", "batch (B x T)", "from", "group", "reader", "batches/s", "sequences/s", "train steps/s", "margin", "build s"]


def format_row(cells: list[str]) -> str:
  return "| " + " | ".join(cells) + " |"


def benchmark(data_dir: str, mug_dir: str | None) -> list[Row]:
  """Times every case of the selected datasets, printing each row as it is measured."""
  group_sizes = [int(size) for size in _GROUP_SIZES.value]
  rows = []
  for dataset in _DATASETS.value:
    source, build_seconds = load(data_config(dataset, data_dir, mug_dir))
    identities, labels_seconds = None, 0.0
    if max(group_sizes) > 1:
      started = time.perf_counter()
      identities = data.identity_labels(source, dataset)
      labels_seconds = time.perf_counter() - started
    print(f"{dataset}: {len(source)} train clips; identity labels read in {labels_seconds:.1f} s", flush=True)
    for case in (case for case in CASES if case.dataset == dataset):
      for group_size in group_sizes if case.grouped else [1]:
        spec = data.BatchSpec(case.batch_size, case.num_frames, case.image_size, group_size)
        for reader, batches_per_second in measure(source, spec, identities, _SECONDS.value).items():
          rows.append(Row(case, group_size, reader, batches_per_second, build_seconds))
          print(format_row(rows[-1].cells()), flush=True)
          build_seconds = None
  return rows


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # TFDS logs every file it writes at INFO
  with tempfile.TemporaryDirectory(prefix="input_pipeline_") as scratch:
    data_dir = _DATA_DIR.value or os.path.join(scratch, "tfds")
    os.makedirs(data_dir, exist_ok=True)
    mug_dir = _MUG_DIR.value
    if mug_dir is None and "mug" in _DATASETS.value:
      mug_dir = fake.write_fake_mug_tree(os.path.join(scratch, "fake_mug"), num_subjects=8, takes_per_expression=2)
    rows = benchmark(data_dir, mug_dir)
  where = _DATA_DIR.value or "a temporary folder"
  print(f"\nInput pipeline on {os.cpu_count()} CPU cores, 64x64 frames unless noted; data built in {where}")
  print(format_row(HEADER))
  print("|" + "---|" * len(HEADER))
  for row in rows:
    print(format_row(row.cells()))
  print(
      f"\nTrain steps/s (benchmarks/train_step.py, 2-core CPU): DSA notes config {DSA_NOTES_STEPS_PER_SECOND:g}, "
      f"DSA :quick {DSA_QUICK_STEPS_PER_SECOND:g}; VDSM target {VDSM_TARGET_STEPS_PER_SECOND:g}."
  )
  vdsm = [row for row in rows if row.case.steps_per_second == VDSM_TARGET_STEPS_PER_SECOND]
  if vdsm:
    slowest = min(row.batches_per_second for row in vdsm)
    print(f"Slowest paper-batch reader: {slowest:.1f} batches/s = {slowest:.0f}x VDSM's 1 step/s.")
  worst = min(rows, key=lambda row: row.margin)
  verdict = "meets" if worst.margin >= REQUIRED_MARGIN else "MISSES"
  print(
      f"Smallest margin over the train step: {worst.margin:.1f}x ({worst.case.dataset} {worst.case.batch_size} x "
      f"{worst.case.num_frames}, group {worst.group_size}, {worst.reader}); {verdict} the required {REQUIRED_MARGIN:g}x."
  )


if __name__ == "__main__":
  app.run(main)
