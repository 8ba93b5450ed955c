"""retrieval.kind=remote: one client for our server, Search-R1's and ColBERT's, against stand-ins speaking their shapes.

Our server is the real `make_server` over a BM25 index; the Search-R1 and ColBERT stand-ins answer from the same
passages with a word-overlap score, chosen so that every ranking below is unambiguous under both scorers.
"""

import json
import re
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from exsearch_jax import retrieval
from exsearch_jax.errors import ExsearchError
from exsearch_jax.retrieval import RemoteRetriever, RemoteRetrieverError
from exsearch_jax.retrieval.server import make_server

PASSAGES = [  # (id, title, text); ids are numeric strings because ColBERT's pid is the collection row number
    ("0", "Aurora Borealis", "Polar lights glow above Tromso during winter nights."),
    ("1", "Basalt Columns", "Hexagonal basalt columns formed from cooling lava flows."),
    ("2", "Cobalt Pigment", "Cobalt blue pigment colored Ming porcelain glazes."),
    ("3", "Dune Migration", "Desert dunes migrate downwind as sand grains saltate."),
    ("4", "Estuary Tides", "Brackish estuary water mixes river flow with ocean tides."),
    ("5", "Fjord Glaciers", "Glaciers carved deep fjords along the Norwegian coast."),
]
QUERIES = ["cobalt porcelain glazes winter", "glaciers fjords tides", "desert sand dunes lava", "hexagonal basalt"]
TOP2 = [["2", "0"], ["5", "4"], ["3", "1"], ["1"]]  # the last query matches one passage; its 2nd hit is a tie
FAST = dict(timeout=5, retries=3, backoff=0.01)


def _overlap(query: str, k: int) -> list[tuple[int, int]]:
  words = lambda s: set(re.findall(r"\w+", s.lower()))  # noqa: E731
  scored = [(len(words(query) & words(f"{title} {text}")), i) for i, (_, title, text) in enumerate(PASSAGES)]
  return sorted(scored, key=lambda si: (-si[0], si[1]))[:k]


def search_r1(method, path, params, body):
  """Search-R1's POST /retrieve: documents are corpus rows {"id", "contents"}; wrapped with scores on request."""

  def item(score, i):
    doc = {"id": PASSAGES[i][0], "contents": f'"{PASSAGES[i][1]}"\n{PASSAGES[i][2]}'}
    return {"document": doc, "score": float(score)} if body.get("return_scores") else doc

  return 200, {"result": [[item(s, i) for s, i in _overlap(q, body.get("topk") or 3)] for q in body["queries"]]}


def colbert(method, path, params, body):
  """ColBERT's GET /api/search: one query; "title | text" passages, pid = row number, k capped at 100."""
  k = min(int(params.get("k", ["10"])[0]), 100)
  hits = [
      {"text": f"{PASSAGES[i][1]} | {PASSAGES[i][2]}", "pid": i, "rank": r + 1, "score": float(s), "prob": 0.1}
      for r, (s, i) in enumerate(_overlap(params["query"][0], k))
  ]
  return 200, {"query": params["query"][0], "topk": hits}


class Stub:
  """A stand-in server on 127.0.0.1: `answer(method, path, params, body) -> (status, payload)`; records requests."""

  def __init__(self, answer):
    self.requests, self.lock = [], threading.Lock()
    stub = self

    class Handler(BaseHTTPRequestHandler):

      def _handle(self, method):
        parts = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length)) if length else None
        with stub.lock:
          stub.requests.append((method, parts.path, body))
        status, payload = answer(method, parts.path, urllib.parse.parse_qs(parts.query), body)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
          self.send_response(status)
          self.send_header("Content-Type", "application/json")
          self.send_header("Content-Length", str(len(data)))
          self.end_headers()
          self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left (test_timeout_...)
          pass

      def do_GET(self):  # noqa: N802
        self._handle("GET")

      def do_POST(self):  # noqa: N802
        self._handle("POST")

      def log_message(self, fmt, *args):
        pass

    self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
    threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

  def close(self):
    self.server.shutdown()
    self.server.server_close()


@pytest.fixture
def stub():
  stubs = []

  def start(answer):
    stubs.append(Stub(answer))
    return stubs[-1]

  yield start
  for s in stubs:
    s.close()


class RecordingRetriever:
  """The real BM25 retriever, recording how many queries each server-side search got."""

  def __init__(self, inner):
    self.inner, self.sizes = inner, []
    self.kind, self.passages = inner.kind, inner.passages

  def search(self, queries, k):
    self.sizes.append(len(queries))
    return self.inner.search(queries, k)


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
  corpus = tmp_path_factory.mktemp("c") / "corpus.jsonl"
  corpus.write_text("".join(json.dumps({"id": i, "title": t, "text": x}) + "\n" for i, t, x in PASSAGES))
  recorder = RecordingRetriever(
      retrieval.build(str(corpus), str(tmp_path_factory.mktemp("idx")), kind="bm25", progress=False)
  )
  server = make_server(recorder, port=0)
  threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
  yield recorder, "http://127.0.0.1:%d" % server.server_address[1]
  server.shutdown()
  server.server_close()


def _view(results):
  return [[(h.id, h.title, h.text) for h in hits] for hits in results]


def test_protocols_agree(ours, stub):
  recorder, url = ours
  expected = _view(recorder.inner.search(QUERIES, 2))
  assert [[i for i, _, _ in hits][: len(top)] for hits, top in zip(expected, TOP2)] == TOP2
  for protocol, target in [("exsearch", url), ("search_r1", stub(search_r1).url), ("colbert", stub(colbert).url)]:
    got = RemoteRetriever(target, protocol, **FAST).search(QUERIES, 2)
    assert [[(h.id, h.title, h.text) for h in hits][: len(top)] for hits, top in zip(got, TOP2)] == [
        hits[: len(top)] for hits, top in zip(expected, TOP2)
    ], protocol
    assert all(len(hits) == 2 for hits in got) and all(h.title for hits in got for h in hits)
  assert RemoteRetriever(url, "exsearch").search([], 3) == []


def test_batches_of_at_most_batch_size(ours, stub):
  recorder, url = ours
  recorder.sizes.clear()
  queries = QUERIES + ["polar lights"]
  first = RemoteRetriever(url, "exsearch", batch_size=2, **FAST).search(queries, 1)
  assert recorder.sizes == [2, 2, 1] and [h[0].id for h in first] == ["2", "5", "3", "1", "0"]
  r1 = stub(search_r1)
  assert _view(RemoteRetriever(r1.url, "search_r1", batch_size=2, **FAST).search(queries, 1)) == _view(first)
  assert [len(body["queries"]) for _, _, body in r1.requests] == [2, 2, 1]
  assert all(body["topk"] == 1 and body["return_scores"] is True for _, _, body in r1.requests)


def test_k_is_at_most_k(ours, stub):
  _, url = ours
  for protocol, target in [("exsearch", url), ("search_r1", stub(search_r1).url), ("colbert", stub(colbert).url)]:
    assert [len(h) for h in RemoteRetriever(target, protocol, **FAST).search(QUERIES, 3)] == [3] * 4
  greedy = stub(lambda m, p, params, b: (200, {"topk": colbert(m, p, {**params, "k": ["6"]}, b)[1]["topk"]}))
  assert [len(h) for h in RemoteRetriever(greedy.url, "colbert", **FAST).search(QUERIES, 2)] == [2] * 4


def test_colbert_concurrent_requests_keep_query_order(stub):
  state = {"now": 0, "peak": 0}
  lock = threading.Lock()

  def slow_first(method, path, params, body):  # earlier queries answer later
    with lock:
      state["now"] += 1
      state["peak"] = max(state["peak"], state["now"])
    time.sleep(0.05 * (len(QUERIES) - QUERIES.index(params["query"][0])))
    with lock:
      state["now"] -= 1
    return colbert(method, path, params, body)

  server = stub(slow_first)
  got = RemoteRetriever(server.url, "colbert", **FAST).search(QUERIES, 2)
  assert [[h.id for h in hits][: len(top)] for hits, top in zip(got, TOP2)] == TOP2
  assert state["peak"] > 1 and len(server.requests) == 4


def test_retries_a_503_then_succeeds(stub):
  calls = []

  def flaky(*args):
    calls.append(1)
    return (503, {"error": "warming up"}) if len(calls) == 1 else search_r1(*args)

  got = RemoteRetriever(stub(flaky).url, "search_r1", **FAST).search(QUERIES[:1], 2)
  assert len(calls) == 2 and [h.id for h in got[0]] == ["2", "0"]


def test_persistent_5xx_fails_after_all_tries(stub):
  server = stub(lambda *a: (502, {"error": "bad gateway"}))
  with pytest.raises(RemoteRetrieverError, match=r"\(colbert\) failed after 4 tries: HTTP 502 on GET /api/search"):
    RemoteRetriever(server.url, "colbert", **FAST).search(["q"], 1)
  assert len(server.requests) == 4


def test_wrong_protocol_for_the_server_is_rejected_once(ours):
  _, url = ours
  with pytest.raises(RemoteRetrieverError, match=r"\(search_r1\) rejected the request: HTTP 404 on POST /retrieve"):
    RemoteRetriever(url, "search_r1", **FAST).search(["q"], 1)


def test_no_retry_on_400(stub):
  server = stub(lambda *a: (400, {"error": "field 'k' must be an integer"}))
  with pytest.raises(RemoteRetrieverError, match=r"127\.0\.0\.1.*\(exsearch\) rejected the request: HTTP 400.*'k'"):
    RemoteRetriever(server.url, "exsearch", **FAST).search(["q"], 1)
  assert len(server.requests) == 1


def test_unreachable_is_one_clear_error_within_the_timeout():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  start = time.monotonic()
  with pytest.raises(ExsearchError, match=rf"http://127\.0\.0\.1:{port} \(search_r1\) unreachable after 3 tries"):
    RemoteRetriever(f"127.0.0.1:{port}", "search_r1", timeout=2, retries=2, backoff=0.01).search(["q"], 1)
  assert time.monotonic() - start < 2


def test_timeout_then_clear_error(stub):
  server = stub(lambda *a: (time.sleep(1), colbert(*a))[1])
  with pytest.raises(RemoteRetrieverError, match=r"\(colbert\) unreachable after 2 tries: .*timed out"):
    RemoteRetriever(server.url, "colbert", timeout=0.2, retries=1, backoff=0.01).search(["q"], 1)


@pytest.mark.parametrize(
    "protocol,payload,message",
    [
        ("exsearch", {"results": [[]]}, "1 result lists for 2 queries"),
        ("search_r1", {"result": [[], [], []]}, "3 result lists for 2 queries"),
        ("search_r1", {"results": [[], []]}, "a list 'result'"),
        ("exsearch", {"results": [[{"id": "1"}], []]}, "a hit of query 0 lacks the expected fields"),
        ("search_r1", {"result": [[], [{"document": {"id": 3}, "score": 1}]]}, "query 1 lacks"),
        ("search_r1", {"result": ["no", []]}, "results of query 0 are not a list"),
        ("colbert", {"query": "q", "topk": [{"pid": 1, "score": 2.0}]}, "lacks the expected fields"),
        ("colbert", ["not", "an object"], "a list 'topk'"),
        ("exsearch", b"<html>oops</html>", "not JSON"),
    ],
)
def test_malformed_response_is_one_clear_error(stub, protocol, payload, message):
  server = stub(lambda *a: (200, payload))
  with pytest.raises(RemoteRetrieverError, match=rf"{re.escape(server.url)} \({protocol}\) .*{re.escape(message)}"):
    RemoteRetriever(server.url, protocol, **FAST).search(["q1", "q2"], 2)


def test_search_r1_documents_without_ids_or_scores(stub):
  """Search-R1's BM25 retriever returns {"title", "text", "contents"} without an id: the title stands in."""
  doc = {
      "title": "Fjord Glaciers",
      "text": "Glaciers carved deep fjords.",
      "contents": '"Fjord Glaciers"\nGlaciers carved deep fjords.',
  }
  got = RemoteRetriever(stub(lambda *a: (200, {"result": [[doc]]})).url, "search_r1", **FAST).search(["q"], 1)
  assert got == [[retrieval.Hit("Fjord Glaciers", 0.0, "Fjord Glaciers", "Glaciers carved deep fjords.")]]


def test_bad_protocol_and_connect(ours):
  with pytest.raises(RemoteRetrieverError, match="choose one of"):
    RemoteRetriever("http://127.0.0.1:1", "elastic")
  _, url = ours
  assert retrieval.connect(url, "exsearch", timeout=5).search(["Tromso winter"], 1)[0][0].id == "0"
