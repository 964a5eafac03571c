"""Several processes as one run on JAX's distributed runtime: one per host (or per GPU), one global mesh.

Process 0 hosts the coordinator; every process runs the same command with its own process id.
Each reads its slice of every batch (`data.BatchIterator`), the train state is replicated over
the global mesh, orbax saves and restores across processes, and only process 0 writes
summaries and samples.
"""

import os
import re
import socket
import time

import jax
from jax.experimental import multihost_utils

PEER_FAILURE = re.compile(r"Gloo|NCCL|Connection (closed|reset|refused)|heartbeat|UNAVAILABLE|DEADLINE_EXCEEDED")


class DistributedError(RuntimeError):
  """The processes of a multi-process run could not start together, or one of them was lost."""


def _from_environment(value, variable: str, flag: str):
  if value is not None:
    return value
  if variable not in os.environ:
    raise DistributedError(f"A multi-process run needs {flag} (or ${variable}) on every process.")
  try:
    return int(os.environ[variable])
  except ValueError:
    raise DistributedError(f"${variable}={os.environ[variable]!r} is not an integer; set it to {flag}'s value.") from None


def wait_for_coordinator(address: str, timeout_seconds: float) -> None:
  """Returns once a TCP connection to the coordinator opens; raises DistributedError after timeout_seconds."""
  host, _, port = address.rpartition(":")
  deadline = time.monotonic() + timeout_seconds
  while True:
    try:
      with socket.create_connection((host, int(port)), timeout=1.0):
        return
    except OSError as error:
      if time.monotonic() >= deadline:
        raise DistributedError(
            f"Could not reach the coordinator at {address} within {timeout_seconds:g} s ({error.strerror or error}). "
            "Start process 0 on that host first, check the address and port (--coordinator_address), "
            "or wait longer (--distributed_timeout_seconds)."
        ) from None
      time.sleep(0.2)


def initialize(
    coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None,
    timeout_seconds: int = 300, heartbeat_timeout_seconds: int = 100,
) -> bool:
  """Joins JAX's distributed runtime when a coordinator is named (argument or $JAX_COORDINATOR_ADDRESS); False for one process."""
  address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  if not address:
    if num_processes is not None or process_id is not None:
      raise DistributedError("--num_processes and --process_id need --coordinator_address=HOST:PORT of process 0.")
    return False
  if not re.fullmatch(r"[^\s:]+:\d+", address):
    raise DistributedError(f"Coordinator address {address!r} is not HOST:PORT (e.g. 10.0.0.1:1234).")
  count = _from_environment(num_processes, "JAX_NUM_PROCESSES", "--num_processes")
  index = _from_environment(process_id, "JAX_PROCESS_ID", "--process_id")
  if count < 1 or not 0 <= index < count:
    raise DistributedError(f"Process id {index} is outside 0..{count - 1} of --num_processes={count}.")
  if index != 0:
    wait_for_coordinator(address, timeout_seconds)
  jax.distributed.initialize(
      address, count, index, initialization_timeout=timeout_seconds, heartbeat_timeout_seconds=heartbeat_timeout_seconds
  )
  return True


def is_peer_failure(error: BaseException) -> bool:
  """Whether an error of a multi-process run is another process having gone (a broken collective or heartbeat)."""
  return jax.process_count() > 1 and PEER_FAILURE.search(str(error)) is not None


def peer_lost_error(where: str, error: BaseException) -> DistributedError:
  """The error a process raises when a collective (`where`: "at step 5", ...) failed because another process went away."""
  lines = str(error).strip().splitlines()
  cause = next((line for line in lines if PEER_FAILURE.search(line)), lines[0])[:200]
  return DistributedError(
      f"Process {jax.process_index()} of {jax.process_count()} lost contact with the others {where} ({cause}): "
      "another process stopped or was killed. Rerun the same command on every host to resume from the last checkpoint."
  )


def on_this_process(tree):
  """A tree of global arrays whole on this process's first device (itself if this process holds it all); every process must call it."""
  if all(leaf.is_fully_addressable for leaf in jax.tree.leaves(tree)):
    return tree
  return jax.device_put(multihost_utils.process_allgather(tree, tiled=True), jax.local_devices()[0])
