"""The HTTP retriever on 127.0.0.1: same results as in-process; 400/413 on bad requests; keeps serving."""

import os
import http.client
import json
import shutil
import threading

import pytest

from exsearch_jax import retrieval
from exsearch_jax.errors import ExsearchError
from exsearch_jax.retrieval.server import RetrieverClient, make_server
from tests.shared_data import shared_file


@pytest.fixture(scope="module")
def served(tmp_path_factory):
  corpus = tmp_path_factory.mktemp("c") / "wiki.jsonl"
  shutil.copy(shared_file("wiki_sample_1000.jsonl"), corpus)
  retriever = retrieval.build(str(corpus), str(tmp_path_factory.mktemp("idx")), kind="bm25", progress=False)
  server = make_server(retriever, port=0, max_body_bytes=4096)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield retriever, server.server_address
  server.shutdown()
  server.server_close()


def _post(address, body: bytes, path="/search"):
  conn = http.client.HTTPConnection(*address, timeout=30)
  conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
  response = conn.getresponse()
  payload = json.loads(response.read() or b"{}")
  conn.close()
  return response.status, payload


def test_client_equals_in_process(served):
  retriever, (host, port) = served
  assert host == "127.0.0.1"
  queries = ["Genentech lobbyist in Washington", "the Clinton White House intern", "football club history"]
  client = RetrieverClient(f"http://{host}:{port}", batch_size=2)
  assert client.search(queries, 5) == retriever.search(queries, 5)


@pytest.mark.parametrize(
    "body,status,message",
    [
        (b"not json", 400, "not JSON"),
        (b'["a list"]', 400, "JSON object"),
        (b'{"queries": "one string", "k": 3}', 400, "list of strings"),
        (b'{"queries": ["q"], "k": 0}', 400, "field 'k'"),
        (b'{"queries": ["q"], "k": "ten"}', 400, "field 'k'"),
        (json.dumps({"queries": ["x" * 5000], "k": 3}).encode(), 413, "at most 4096"),
    ],
)
def test_bad_requests_then_still_serving(served, body, status, message):
  retriever, address = served
  got_status, payload = _post(address, body)
  assert got_status == status and message in payload["error"]
  ok_status, ok = _post(address, b'{"queries": ["Roche Genentech"], "k": 2}')
  assert ok_status == 200 and len(ok["results"][0]) == 2


def test_unknown_route_and_unreachable_server(served):
  _, address = served
  assert _post(address, b"{}", path="/nope")[0] == 404
  with pytest.raises(ExsearchError, match="unreachable"):
    RetrieverClient("http://127.0.0.1:9", timeout=2).search(["q"], 1)


@pytest.mark.slow  # runs the load benchmark's clients for seconds
def test_load_benchmark_runs_and_bad_clients_are_answered(tmp_path):
  """benchmarks/server_load.py end to end at a tiny size (its numbers are measured elsewhere, not asserted here)."""
  import json
  import subprocess
  import sys

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run(
      [
          sys.executable,
          os.path.join(root, "benchmarks", "server_load.py"),
          "--seconds=2",
          "--clients=2",
          f"--json={tmp_path}/load.json",
      ],
      capture_output=True,
      text=True,
      cwd=root,
      timeout=600,
      check=False,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  rows = json.load(open(tmp_path / "load.json"))["rows"]
  assert [r["bad"] for r in rows] == [False, True] and all(r["errors"] == 0 and r["requests"] > 0 for r in rows)
  assert {"malformed:400", "oversized:413"} <= set(rows[1]["bad_statuses"])
