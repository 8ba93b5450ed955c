"""Multi-process runs (TPU pods, multi-GPU hosts, SLURM, local CPU processes) from the same code path.

`session()` joins the process group the flags or the environment describe (or does nothing for one
process), and ends every process with one clear message when a peer dies or fails, instead of leaving
it blocked in a collective. The rest of the code base asks only: am I the primary (process 0, the one
that writes files)? which share of a list is mine? and gathers Python objects from every process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sys
import threading
import time
import traceback
import zlib
from typing import Optional, Sequence

import jax
import numpy as np
from absl import flags

from exsearch_jax.errors import ConfigError

PEER_LOST = 75  # exit status when a peer died or failed (EX_TEMPFAIL: rerunning resumes the run)
_CHUNK = 1 << 26  # bytes per process per collective, so gathering a large object never fills device memory
_KEY = "exsearch/alive/"


def define_flags():
  flags.DEFINE_enum(
      "distributed",
      "auto",
      ["auto", "on", "off"],
      "auto: join a process group when the flags, JAX_* variables, SLURM or a TPU pod describe one; "
      "on: always call jax.distributed.initialize() (its own cluster detection); off: one process.",
  )
  flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (with --num_processes, --process_id).")
  flags.DEFINE_integer("num_processes", None, "Processes in the group.")
  flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes-1.")
  flags.DEFINE_integer("init_timeout", 300, "Seconds to wait for every process to join.")
  flags.DEFINE_integer("peer_timeout", 120, "Seconds without a heartbeat after which a peer counts as dead.")


class DistributedError(ConfigError):
  """The process group is described inconsistently or cannot be reached."""


def detect(
    mode: str = "auto",
    coordinator_address: Optional[str] = None,
    num_processes: Optional[int] = None,
    process_id: Optional[int] = None,
    environ=os.environ,
) -> Optional[dict]:
  """Arguments for `jax.distributed.initialize`, or None for a single-process run."""
  if mode == "off":
    return None
  given = {"--coordinator_address": coordinator_address, "--num_processes": num_processes, "--process_id": process_id}
  if any(v is not None for v in given.values()):
    missing = [k for k, v in given.items() if v is None]
    if missing:
      raise DistributedError(f"{', '.join(given)} go together; missing {', '.join(missing)}")
    assert coordinator_address is not None and num_processes is not None and process_id is not None
    return _checked(coordinator_address, num_processes, process_id, "flags")
  names = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
  if all(environ.get(n) for n in names):
    try:
      count, index = int(environ[names[1]]), int(environ[names[2]])
    except ValueError:
      raise DistributedError(
          f"{names[1]}={environ[names[1]]!r} / {names[2]}={environ[names[2]]!r}: " "need integers"
      ) from None
    return _checked(environ[names[0]], count, index, "environment")
  tasks = environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS")
  if tasks and "SLURM_PROCID" in environ and int(tasks) > 1:
    return {}  # JAX's SLURM detection: coordinator on the step's first node, port from the job id
  if "," in environ.get("TPU_WORKER_HOSTNAMES", "") or environ.get("MEGASCALE_COORDINATOR_ADDRESS"):
    return {}  # a multi-host TPU slice (or several): JAX asks the TPU metadata
  return {} if mode == "on" else None


def _checked(address: str, count: int, index: int, source: str) -> dict:
  if ":" not in address or not address.rsplit(":", 1)[1].isdigit():
    raise DistributedError(f"coordinator address {address!r} (from {source}) must be host:port")
  if count < 1 or not 0 <= index < count:
    raise DistributedError(f"process id {index} of {count} processes (from {source}): need 0 <= id < count")
  return {"coordinator_address": address, "num_processes": count, "process_id": index}


def _wait_for_coordinator(address: str, timeout: float):
  """A clear error for a wrong address or a process 0 that never started (JAX would abort the process)."""
  host, port = address.rsplit(":", 1)
  deadline = time.monotonic() + timeout
  while True:
    try:
      socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
      return
    except OSError as e:
      if time.monotonic() > deadline:
        raise DistributedError(
            f"nothing answers at the coordinator address {address} after {timeout:.0f} s ({e}); "
            "start process 0 with the same --coordinator_address, or fix the address"
        ) from None
      time.sleep(0.5)


class _Watchdog(threading.Thread):
  """Heartbeats through the coordinator's key-value store; ends this process when a peer stops or fails.

  JAX's own heartbeat kills the process with a C++ abort long after the peer died; this one fires first
  (JAX's timeout is set past it) and says what happened.
  """

  def __init__(self, client, timeout: float):
    super().__init__(daemon=True, name="exsearch-watchdog")
    self.client, self.timeout, self.stopped = client, float(timeout), threading.Event()
    self.me, self.count = jax.process_index(), jax.process_count()
    self.lock = threading.Lock()
    self.seen = {p: (None, time.monotonic()) for p in range(self.count) if p != self.me}  # state, when it changed

  def publish(self, state: str, final: bool = False):
    """A heartbeat, or (final) `done` / `failed ...`, which no later heartbeat overwrites."""
    with self.lock:
      if self.stopped.is_set():
        return
      if final:
        self.stopped.set()
      self.client.key_value_set(f"{_KEY}{self.me}", state, allow_overwrite=True)

  def peers_alive_since(self, moment: float) -> bool:
    return all(since > moment or state == "done" for state, since in self.seen.values())

  def run(self):
    beat = 0
    while not self.stopped.is_set():
      beat += 1
      try:
        self.publish(str(beat))
        states = dict(self.client.key_value_dir_get(_KEY))
      except Exception as e:  # noqa: BLE001  the coordinator (process 0) is gone
        if not self.stopped.is_set():
          _stop(f"lost the coordinator (process 0): {str(e).splitlines()[0]}")
        return
      now = time.monotonic()
      for p, (last, since) in list(self.seen.items()):
        state = states.get(f"{_KEY}{p}")
        if state and state.startswith("failed"):
          _stop(f"process {p} failed: {state[len('failed '):]}", "its log has the error")
        if state == "done":
          continue
        if state != last:
          self.seen[p] = (state, now)
        elif now - since > self.timeout:
          _stop(
              f"process {p} stopped responding (no heartbeat for {self.timeout:.0f} s): it died, was killed "
              "or lost its network"
          )
      self.stopped.wait(min(5.0, self.timeout / 5))


def _stop(
    reason: str,
    hint: str = "rerun the same command on every host (same --workdir) to resume from the " "last checkpoint",
):
  sys.stderr.write(f"\nexsearch: process {jax.process_index()} of {jax.process_count()} stops: {reason}; {hint}.\n")
  sys.stderr.flush()
  os._exit(PEER_LOST)


def _join(kwargs: dict, f) -> _Watchdog:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
  where = (
      f"process {kwargs['process_id']} of {kwargs['num_processes']} at {kwargs['coordinator_address']}"
      if kwargs
      else "the process group JAX detects"
  )
  print(f"exsearch: joining as {where}, waiting up to {f.init_timeout} s for every process", flush=True)
  if kwargs.get("process_id"):
    _wait_for_coordinator(kwargs["coordinator_address"], f.init_timeout)
  # JAX's heartbeat is the backstop: it aborts the process (C++) after its timeout, so it comes after ours
  jax.distributed.initialize(
      **kwargs,
      initialization_timeout=f.init_timeout,
      heartbeat_timeout_seconds=f.peer_timeout + 60,
      shutdown_timeout_seconds=120,
  )
  from jax._src import distributed as jax_distributed  # the coordinator's key-value store has no public handle

  watchdog = _Watchdog(jax_distributed.global_state.client, f.peer_timeout)
  watchdog.start()
  return watchdog


@contextlib.contextmanager
def session(mode: Optional[str] = None):
  """Joins the process group for the body (from the flags defined by `define_flags`); one process: no-op.

  If the body raises, the peers learn it at once and this process exits (status 1) without the orderly
  shutdown, which would wait for them. A failed collective may be a dead peer's doing: then this process
  first waits until every peer has shown a heartbeat (the error is its own) or the watchdog names the dead.
  """
  f = flags.FLAGS
  kwargs = detect(mode or f.distributed, f.coordinator_address, f.num_processes, f.process_id)
  if kwargs is None:
    yield
    return
  watchdog = _join(kwargs, f)
  try:
    yield
  except BaseException as e:  # noqa: BLE001
    failed_at = time.monotonic()
    while (
        isinstance(e, jax.errors.JaxRuntimeError)
        and not watchdog.peers_alive_since(failed_at)
        and time.monotonic() < failed_at + watchdog.timeout + 10
    ):
      time.sleep(0.5)
    with contextlib.suppress(Exception):
      watchdog.publish(f"failed {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300], final=True)
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)
  barrier("exsearch-finished")
  watchdog.publish("done", final=True)
  jax.distributed.shutdown()


# ---- what the rest of the code base uses --------------------------------------------------------------
def is_primary() -> bool:
  """Process 0 writes the workdir's files (metrics, trajectories, plots, E-step examples)."""
  return jax.process_index() == 0


def barrier(name: str):
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def primary_first(name: str):
  """Process 0 runs the body first (it may write shared files), then the others (who may find them)."""
  if not is_primary():
    barrier(name)
  yield
  if is_primary():
    barrier(name)


def share(items: Sequence) -> list:
  """This process's share of `items`: every process_count()-th one, from its own index."""
  return list(items[jax.process_index() :: jax.process_count()])


def gather_shares(local: Sequence, total: int, per_item: int = 1) -> list:
  """Every process's results for its `share` of `total` items (`per_item` results each), in the items' order."""
  parts = allgather_objects(list(local))
  count = len(parts)
  for p, part in enumerate(parts):
    if len(part) != len(range(p, total, count)) * per_item:
      raise ValueError(f"process {p} returned {len(part)} results for its share of {total} x {per_item}")
  return [parts[i % count][(i // count) * per_item + j] for i in range(total) for j in range(per_item)]


def _wire_types() -> dict:
  """The records processes send each other; nothing else is rebuilt from the wire (no pickle)."""
  from exsearch_jax.em.sequences import Example
  from exsearch_jax.trajectory import SearchStep, Trajectory

  return {"Example": Example, "SearchStep": SearchStep, "Trajectory": Trajectory}


def to_wire(obj) -> bytes:
  """JSON of lists, dicts, numbers, strings, numpy scalars and arrays (dtype kept, so results do not depend
  on the process count) and the records of `_wire_types`; compressed."""
  types = _wire_types()

  def default(o):
    if dataclasses.is_dataclass(o) and types.get(type(o).__name__) is type(o):
      return {"__record__": type(o).__name__, "fields": {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}}
    if isinstance(o, np.generic):
      return {"__scalar__": o.item(), "dtype": o.dtype.str}
    if isinstance(o, np.ndarray):
      return {"__array__": o.tolist(), "dtype": o.dtype.str, "shape": list(o.shape)}
    raise TypeError(f"cannot send a {type(o).__name__} between processes")

  return zlib.compress(json.dumps(obj, default=default).encode("utf-8"), 1)


def from_wire(data: bytes):
  types = _wire_types()

  def hook(d):
    if "__record__" in d:
      cls = types[d["__record__"]]
      fields = d["fields"]
      return cls.from_json(fields) if hasattr(cls, "from_json") else cls(**fields)
    if "__scalar__" in d:
      return np.dtype(d["dtype"]).type(d["__scalar__"])
    if "__array__" in d:
      return np.asarray(d["__array__"], dtype=np.dtype(d["dtype"])).reshape(d["shape"])
    return d

  return json.loads(zlib.decompress(data).decode("utf-8"), object_hook=hook)


def allgather_objects(obj) -> list:
  """[process 0's obj, process 1's obj, ...] on every process (as JSON, `to_wire`, through device collectives)."""
  if jax.process_count() == 1:
    return [obj]
  from jax.experimental import multihost_utils

  blob = np.frombuffer(to_wire(obj), np.uint8)
  sizes = np.asarray(multihost_utils.process_allgather(np.array(blob.size, np.int64))).reshape(-1)
  table = _chunked(blob, int(sizes.max()), multihost_utils.process_allgather)
  return [from_wire(table[p, : sizes[p]].tobytes()) for p in range(len(sizes))]


def broadcast_object(obj):
  """Process 0's `obj` on every process (the others' argument is ignored)."""
  if jax.process_count() == 1:
    return obj
  from jax.experimental import multihost_utils

  blob = np.frombuffer(to_wire(obj) if is_primary() else b"", np.uint8)
  size = int(multihost_utils.broadcast_one_to_all(np.array(blob.size, np.int64)))
  return from_wire(_chunked(blob, size, multihost_utils.broadcast_one_to_all)[:size].tobytes())


def _chunked(blob: np.ndarray, width: int, collective) -> np.ndarray:
  """`collective` over fixed-width, zero-padded slices of `blob`, joined along the last axis."""
  step = min(max(_CHUNK // jax.process_count(), 1), 1 << max(width - 1, 0).bit_length())  # few distinct shapes
  out = []
  for start in range(0, max(width, 1), step):
    piece = np.zeros(step, np.uint8)
    part = blob[start : start + step]
    piece[: part.size] = part
    out.append(np.asarray(collective(piece)))
  return np.concatenate(out, axis=-1)
