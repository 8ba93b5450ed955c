"""An optional HTTP front for a retriever (one batched endpoint); its client is `remote.RemoteRetriever`.

POST /search  {"queries": ["...", ...], "k": 10}  ->  {"results": [[{"id", "score", "title", "text"}, ...], ...]}
GET  /health  ->  {"ok": true, "kind": ..., "num_passages": ...}
Bound to 127.0.0.1 by default. Oversized bodies get 413, malformed requests 400; the server keeps serving.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from exsearch_jax.retrieval.remote import RemoteRetriever

MAX_BODY_BYTES = 1 << 20
MAX_QUERIES = 4096
MAX_K = 1000


class _BadRequest(Exception):

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status


def _parse(body: bytes) -> tuple[list[str], int]:
  try:
    request = json.loads(body)
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise _BadRequest(400, f"body is not JSON: {e}") from None
  if not isinstance(request, dict):
    raise _BadRequest(400, "body must be a JSON object with 'queries' and 'k'")
  queries, k = request.get("queries"), request.get("k", 10)
  if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
    raise _BadRequest(400, "field 'queries' must be a list of strings")
  if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
    raise _BadRequest(400, f"field 'k' must be an integer in [1, {MAX_K}]")
  if len(queries) > MAX_QUERIES:
    raise _BadRequest(413, f"{len(queries)} queries; at most {MAX_QUERIES} per request")
  return queries, k


class _Server(ThreadingHTTPServer):
  """Its listen backlog holds a burst of connections (the default 5 refuses clients beyond it under load)."""

  request_queue_size = 256


def make_server(
    retriever, host: str = "127.0.0.1", port: int = 8000, max_body_bytes: int = MAX_BODY_BYTES
) -> ThreadingHTTPServer:
  lock = threading.Lock()  # one batched search at a time: the index and jitted encoder are not re-entrant

  class Handler(BaseHTTPRequestHandler):
    timeout = 30  # seconds a connection may sit idle (a client that stalls mid-request is dropped)

    def _reply(self, status: int, payload: dict):
      data = json.dumps(payload).encode()
      self.send_response(status)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server naming)
      if self.path != "/health":
        return self._reply(404, {"error": f"no route {self.path}; use POST /search"})
      self._reply(200, {"ok": True, "kind": retriever.kind, "num_passages": len(retriever.passages)})

    def do_POST(self):  # noqa: N802
      if self.path != "/search":
        return self._reply(404, {"error": f"no route {self.path}; use POST /search"})
      try:
        length = int(self.headers.get("Content-Length", "-1"))
      except ValueError:
        length = -1
      if length < 0:
        return self._reply(400, {"error": "a Content-Length header is required"})
      if length > max_body_bytes:
        self.close_connection = True
        return self._reply(413, {"error": f"body of {length} bytes; at most {max_body_bytes}"})
      try:
        queries, k = _parse(self.rfile.read(length))
      except _BadRequest as e:
        return self._reply(e.status, {"error": str(e)})
      with lock:
        results = retriever.search(queries, k)
      self._reply(200, {"results": [[dataclasses.asdict(h) for h in hits] for hits in results]})

    def log_message(self, fmt, *args):  # quiet by default; the launcher logs requests itself
      pass

  server = _Server((host, port), Handler)
  server.daemon_threads = True  # a stalled client never keeps the process alive at shutdown
  return server


class RetrieverClient(RemoteRetriever):
  """Talks to `make_server`; kept for existing callers, `remote.RemoteRetriever` is the one implementation."""

  def __init__(self, url: str, timeout: float = 60.0, batch_size: int = 1024, **kwargs):
    super().__init__(url, "exsearch", timeout=timeout, batch_size=batch_size, **kwargs)
