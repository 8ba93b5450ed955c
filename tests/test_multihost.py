"""Multi-process runs: where the process group comes from, host-local sampling meshes, two processes x 4 CPU
devices (one killed mid-run, then resumed) reaching the parameters of one 8-device process, and
the others' bounded, clear exit when a process dies or fails."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file

from exsearch_jax import distributed
from exsearch_jax.errors import ConfigError
from exsearch_jax.models import DecoderConfig, init_model
from exsearch_jax.sharding import host_local_copy, make_mesh, sampling_meshes, train_mesh
from tests.tiny_config import get_config as tiny_config

pytestmark = pytest.mark.slow  # process groups over gloo: seconds to minutes each

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = [sys.executable, os.path.join(ROOT, "launch", "train.py")]
WORKER = [sys.executable, "-m", "tests.multihost_worker"]


# ---- the process group ----------------------------------------------------------------------------------
def test_group_from_flags_environment_slurm_and_tpu():
  assert distributed.detect(environ={}) is None
  assert distributed.detect(coordinator_address="h:12", num_processes=2, process_id=1, environ={}) == {
      "coordinator_address": "h:12",
      "num_processes": 2,
      "process_id": 1,
  }
  env = {"JAX_COORDINATOR_ADDRESS": "h:9", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
  assert distributed.detect(environ=env) == {"coordinator_address": "h:9", "num_processes": 4, "process_id": 3}
  assert distributed.detect("off", environ=env) is None
  assert distributed.detect(environ={"SLURM_NTASKS": "16", "SLURM_PROCID": "5"}) == {}  # JAX reads SLURM itself
  assert distributed.detect(environ={"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None
  assert distributed.detect(environ={"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}) == {}
  assert distributed.detect(environ={"TPU_WORKER_HOSTNAMES": "localhost"}) is None  # a single-host TPU VM
  assert distributed.detect("on", environ={}) == {}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(coordinator_address="h:1", num_processes=2), "missing --process_id"),
        (dict(coordinator_address="h", num_processes=2, process_id=0), "must be host:port"),
        (dict(coordinator_address="h:1", num_processes=2, process_id=2), "need 0 <= id < count"),
        (
            dict(environ={"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}),
            "need integers",
        ),
    ],
)
def test_inconsistent_group_is_one_clear_error(kwargs, message):
  with pytest.raises(distributed.DistributedError, match=message):
    distributed.detect(**{"environ": {}, **kwargs})


def test_unreachable_coordinator_is_a_clear_error():
  started = time.monotonic()
  with pytest.raises(distributed.DistributedError, match="nothing answers at the coordinator address"):
    distributed._wait_for_coordinator(f"localhost:{_free_port()}", timeout=1)
  assert time.monotonic() - started < 10


def test_one_process_shares_and_gathers_everything():
  items = list(range(7))
  assert distributed.share(items) == items and distributed.gather_shares(items, 7) == items
  assert distributed.allgather_objects({"a": 1}) == [{"a": 1}] and distributed.broadcast_object([2]) == [2]
  with pytest.raises(ValueError, match="returned 6 results"):
    distributed.gather_shares(items[:6], 7)


# ---- meshes ---------------------------------------------------------------------------------------------
def test_train_mesh_dcn_degrees_need_that_many_processes():
  cfg = tiny_config().mesh
  assert dict(train_mesh(cfg).shape) == {"data": 1, "fsdp": 8, "tensor": 1}
  cfg.dcn.fsdp = 2
  with pytest.raises(ConfigError, match=r"mesh.dcn: .* needs 2 processes, but 1 are visible"):
    train_mesh(cfg)


def test_host_local_copy_reshards_for_sampling():
  config = DecoderConfig(
      vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=4, num_kv_heads=2, head_dim=8
  )
  meshes = sampling_meshes({"data": -1, "tensor": 2})
  assert meshes[0] is meshes[1] and dict(meshes[1].shape) == {"data": 4, "fsdp": 1, "tensor": 2}
  state = nnx.state(init_model(config, mesh=make_mesh({"fsdp": 8}), seed=1))
  copy = host_local_copy(state, meshes)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(copy)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert b.sharding.mesh == meshes[1] and b.is_fully_addressable


# ---- real processes -------------------------------------------------------------------------------------
def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start(command, devices: int, log: str) -> subprocess.Popen:
  env = dict(
      os.environ,
      XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
      JAX_DEFAULT_MATMUL_PRECISION="highest",
      PYTHONPATH=ROOT,
  )
  with open(log, "w") as out:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _group(command, count: int, devices: int, logs: str, *flags) -> list:
  port = _free_port()
  return [
      _start(
          command
          + [f"--coordinator_address=localhost:{port}", f"--num_processes={count}", f"--process_id={i}", *flags],
          devices,
          f"{logs}{i}.log",
      )
      for i in range(count)
  ]


def _wait(procs, timeout: float) -> list:
  """Exit statuses; kills every process (and fails) past `timeout` so a test never hangs."""
  deadline = time.monotonic() + timeout
  try:
    return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
  except subprocess.TimeoutExpired:
    pytest.fail(f"processes still running after {timeout} s")
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()


def _until(condition, timeout: float, procs):
  deadline = time.monotonic() + timeout
  while not condition():
    if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
      _wait(procs, 1)
      pytest.fail("the run never reached the point where a process is to be killed")
    time.sleep(0.2)


def _read(path) -> str:
  with open(path, encoding="utf-8") as f:
    return f.read()


def _records(workdir: str) -> dict:
  """The last E-step and eval record of each iteration (a resumed run repeats the phase it was killed in)."""
  rows = [json.loads(line) for line in _read(os.path.join(workdir, "metrics.jsonl")).splitlines()]
  return {
      (r["kind"], r["iteration"]): {k: v for k, v in r.items() if k != "seconds"}
      for r in rows
      if r["kind"] in ("estep", "eval")
  }


def test_two_processes_killed_and_resumed_equal_one_process(tiny_run, tmp_path):
  """One EM iteration from the tiny run's model: rollout of each process's share, weights, two M-steps with
  a hybrid (ICI x DCN) mesh, checkpoints. The 8-device reference is a process group of one, so it uses the
  same (gloo) collectives. The parameters matched bit for bit until the decoder's matmuls became 2-D
  (B*T, E) @ (E, O): XLA now partitions them differently on the hybrid mesh and 4% of the embedding differs
  by one float32 ulp (<= 3e-8) after two steps, far below a repeated or lost step (~lr = 3e-3). (With XLA's
  in-process CPU collectives the gradient all-reduce adds in another order: up to ~4e-6.)"""
  config = f"--config={ROOT}/tests/tiny_config.py:{os.path.join(tiny_run[0], 'final_model')}"
  multi, single = str(tmp_path / "multi"), str(tmp_path / "single")
  reference = _group(TRAIN + [config, f"--workdir={single}"], 1, 8, str(tmp_path / "single"))
  flags = (config, f"--workdir={multi}", "--peer_timeout=10", "--config.mesh.dcn.fsdp=2")
  procs = _group(TRAIN, 2, 4, str(tmp_path / "first"), *flags)
  _until(lambda: os.path.isdir(os.path.join(multi, "checkpoints", "1")), 180, procs + reference)
  procs[1].send_signal(signal.SIGKILL)
  killed = time.monotonic()
  assert _wait(procs, 60)[0] == distributed.PEER_LOST
  assert time.monotonic() - killed < 10 + 15  # peer_timeout + a heartbeat interval + slack on a loaded machine
  assert "process 0 of 2 stops: process 1 stopped responding" in _read(tmp_path / "first0.log")

  assert _wait(_group(TRAIN, 2, 4, str(tmp_path / "again"), *flags), 240) == [0, 0]
  assert "resuming: " in _read(tmp_path / "again0.log")
  assert _wait(reference, 120) == [0], _read(tmp_path / "single0.log")[-3000:]
  ours, theirs = (load_file(os.path.join(w, "final_model", "model.safetensors")) for w in (multi, single))
  assert set(ours) == set(theirs)
  for name in ours:
    np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=1e-6, err_msg=name)
  records, reference_records = _records(multi), _records(single)
  assert set(records) == set(reference_records) == {("eval", 0), ("estep", 1), ("eval", 1)}
  for key, record in records.items():  # E-step scores: each process scores its share in a batch of its own
    expected = reference_records[key]  # height, so its statistics may be a few ulps apart; evaluations equal
    assert record.keys() == expected.keys(), key
    for field, value in record.items():
      close = isinstance(value, float) and key[0] == "estep" and math.isclose(value, expected[field], rel_tol=1e-5)
      assert close or value == expected[field], (key, field, value, expected[field])
  estep = records["estep", 1]
  assert estep["trajectories"] == 24 and estep["examples"] > 0  # both processes' shares, and something to learn
  assert os.path.getsize(os.path.join(multi, "estep", "1", "trajectories.html")) > 0


@pytest.mark.parametrize("error", ["RuntimeError", "JaxRuntimeError"])
def test_a_failing_process_stops_the_others_before_the_peer_timeout(tmp_path, error):
  """A runtime (XLA) error first waits for the peers' next heartbeat: a dead peer could have caused it."""
  procs = _group(WORKER, 2, 2, str(tmp_path / "w"), "--peer_timeout=60", "--fail=1", f"--error={error}")
  started = time.monotonic()
  assert _wait(procs, 90) == [distributed.PEER_LOST, 1]
  assert time.monotonic() - started < 45
  assert f"process 1 failed: {error}: boom" in _read(tmp_path / "w0.log")
  assert f"{error}: boom" in _read(tmp_path / "w1.log")


def test_killed_coordinator_ends_the_others(tmp_path):
  procs = _group(WORKER, 2, 2, str(tmp_path / "w"), "--peer_timeout=30")
  _until(lambda: "joined" in _read(tmp_path / "w1.log"), 60, procs)
  procs[0].send_signal(signal.SIGKILL)
  killed = time.monotonic()
  assert _wait(procs[1:], 60)[0] != 0
  assert time.monotonic() - killed < 30
  log = _read(tmp_path / "w1.log")  # JAX's client aborts at once when the coordinator's socket closes
  assert "lost the coordinator" in log or "distributed service detected fatal errors" in log


def test_objects_cross_processes_as_json_with_their_dtypes():
  from exsearch_jax.em.sequences import Example
  from exsearch_jax.trajectory import SearchStep, Trajectory

  traj = Trajectory(
      question_id="q",
      sample=1,
      question="Who?",
      tokens=[1, 2, 3],
      loss_mask=[False, True, True],
      logprobs=[0.0, -0.5, -1.25],
      prompt_length=1,
      steps=[SearchStep("x", retrieved_ids=["p1"], shown_ids=["p1"], rerank=[0])],
      answer="A",
      stop_reason="answered",
      answer_start=2,
      golden_answers=["A"],
      weight=None,
  )
  example = Example((1, 2, 3), (False, True, True), 0.75)
  items = [
      (traj, np.float32(-1.2345678), np.int64(7)),
      example,
      np.arange(6, dtype=np.float16).reshape(2, 3),
      {"nan": float("nan"), "list": [1, "two"]},
  ]
  back = distributed.from_wire(distributed.to_wire(items))
  assert back[0][0] == traj and back[1] == example
  assert back[0][1] == np.float32(-1.2345678) and back[0][1].dtype == np.float32 and back[0][2].dtype == np.int64
  assert back[2].dtype == np.float16 and back[2].shape == (2, 3) and np.array_equal(back[2], items[2])
  assert np.isnan(back[3]["nan"]) and back[3]["list"] == [1, "two"]
  with pytest.raises(TypeError, match="cannot send a object"):
    distributed.to_wire([object()])


def test_no_pickle_and_no_remote_code_anywhere():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  found = []
  for folder in ("exsearch_jax", "launch", "experiments", "benchmarks"):
    for dirpath, _, files in os.walk(os.path.join(root, folder)):
      for name in files:
        if name.endswith(".py"):
          text = open(os.path.join(dirpath, name), encoding="utf-8").read()
          for bad in ("import pickle", "pickle.load", "allow_pickle=True", "trust_remote_code=True", "torch.load("):
            if bad in text:
              found.append(f"{name}: {bad}")
  assert not found
