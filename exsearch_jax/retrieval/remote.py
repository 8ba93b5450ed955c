"""A client for retrieval servers people already run, with the same `search` as the in-process retrievers.

Protocols (`protocol=`):
  exsearch   our `server.py`:  POST /search {"queries", "k"} -> {"results": [[{"id", "score", "title", "text"}]]}
  search_r1  Search-R1's retrieval_server.py:  POST /retrieve {"queries", "topk", "return_scores": true}
             -> {"result": [[{"document": {"id", "contents"}, "score"}]]}; contents is FlashRAG '"Title"' newline text
  colbert    ColBERT's (and SearchLM's) Flask server:  GET /api/search?query=..&k=..
             -> {"topk": [{"pid", "text", "score", "rank", "prob"}]},
             one query per request, so one `search` sends its queries concurrently; text "Title | passage" is split
             at the first " | " (the collection loader joins DPR title and text that way), else the title is "".
Every failure is one `RemoteRetrieverError` naming the URL and protocol: unreachable after retries, a 4xx, or a
response of the wrong shape (never silently fewer result lists). JSON over the standard library only.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional, Sequence

from exsearch_jax.errors import ExsearchError
from exsearch_jax.retrieval.base import Hit
from exsearch_jax.retrieval.corpus import split_contents

PROTOCOLS = ("exsearch", "search_r1", "colbert")


class RemoteRetrieverError(ExsearchError):
  """A retrieval server is unreachable, refused a request, or answered in the wrong shape."""


class _Malformed(Exception):
  """A response that does not have the protocol's shape; wrapped into RemoteRetrieverError with URL and protocol."""


def _hit_exsearch(h: dict) -> Hit:
  return _hit(h["id"], h["score"], h["title"], h["text"])


def _hit_search_r1(item: dict) -> Hit:
  # With return_scores the item is {"document", "score"}; without it, the document itself.
  doc, score = (item["document"], item["score"]) if "document" in item else (item, 0.0)
  if "contents" in doc:
    title, text = split_contents(doc["contents"])
  else:  # Search-R1's BM25 retriever returns {"title", "text", "contents"}; others may drop contents
    title, text = doc.get("title") or "", doc["text"]
  return _hit(doc.get("id"), score, title, text)


def _hit_colbert(h: dict) -> Hit:
  title, sep, text = h["text"].partition(" | ")
  title, text = (title.strip().strip('"'), text.strip()) if sep else ("", h["text"].strip())
  return _hit(h.get("pid"), h["score"], title, text)


def _hit(id_, score, title, text) -> Hit:
  if not isinstance(title, str) or not isinstance(text, str):
    raise TypeError("title/text must be strings")
  return Hit(title if id_ is None else str(id_), float(score), title, text)


_HIT = {"exsearch": _hit_exsearch, "search_r1": _hit_search_r1, "colbert": _hit_colbert}


class RemoteRetriever:
  """`search(queries, k) -> list[list[Hit]]` against a retrieval server; see the module docstring for protocols.

  timeout: seconds per HTTP request. retries: further tries after a failed one (connection error, timeout,
  HTTP 5xx), waiting backoff * 2**n seconds between; a 4xx or a malformed response is never retried.
  batch_size: queries per request (exsearch, search_r1). workers: concurrent requests (colbert).
  """

  def __init__(
      self,
      url: str,
      protocol: str = "exsearch",
      timeout: float = 60.0,
      retries: int = 3,
      batch_size: int = 256,
      workers: int = 8,
      backoff: float = 0.5,
  ):
    if protocol not in PROTOCOLS:
      raise RemoteRetrieverError(f"retriever at {url}: protocol {protocol!r}; choose one of {PROTOCOLS}")
    if batch_size < 1 or workers < 1 or retries < 0:
      raise RemoteRetrieverError(f"retriever at {url}: batch_size and workers must be >= 1, retries >= 0")
    self.url = url.rstrip("/")
    if "://" not in self.url:
      self.url = "http://" + self.url
    self.protocol = protocol
    self.timeout, self.retries, self.backoff = timeout, retries, backoff
    self.batch_size, self.workers = batch_size, workers

  def _error(self, what: str) -> RemoteRetrieverError:
    return RemoteRetrieverError(f"retriever at {self.url} ({self.protocol}) {what}")

  def _request(self, path: str, body: Optional[dict] = None):
    """One JSON request with retries; returns the decoded JSON or raises one RemoteRetrieverError."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        self.url + path, data=data, headers={"Content-Type": "application/json", "Accept": "application/json"}
    )
    tries, route = self.retries + 1, f"{request.get_method()} {path.partition('?')[0]}"
    for attempt in range(tries):
      if attempt:
        time.sleep(self.backoff * 2 ** (attempt - 1))
      try:
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
          raw = response.read()
        break
      except urllib.error.HTTPError as e:
        failure = f"HTTP {e.code} on {route}: {e.read()[:500].decode(errors='replace')}"
        if e.code < 500:
          raise self._error(f"rejected the request: {failure}") from None
      except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        failure = (
            f"{str(getattr(e, 'reason', None) or e) or type(e).__name__}; is the server running at that "
            "address and speaking this protocol?"
        )
    else:
      verdict = "failed" if failure.startswith("HTTP ") else "unreachable"
      raise self._error(f"{verdict} after {tries} tries: {failure}") from None
    try:
      return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise self._error(f"sent a response that is not JSON ({e}): {raw[:200]!r}") from None

  @staticmethod
  def _field(payload, key: str) -> list:
    if not isinstance(payload, dict) or not isinstance(payload.get(key), list):
      raise _Malformed(f"expected a JSON object with a list {key!r}, got {str(payload)[:200]}")
    return payload[key]

  def _hits(self, lists: list, n: int, k: int) -> list[list[Hit]]:
    """n lists of hits, each converted by the protocol's hit parser, k at most."""
    if len(lists) != n:
      raise _Malformed(f"{len(lists)} result lists for {n} queries")
    results = []
    for i, hits in enumerate(lists):
      if not isinstance(hits, list):
        raise _Malformed(f"the results of query {i} are not a list: {str(hits)[:200]}")
      try:
        results.append([_HIT[self.protocol](h) for h in hits[:k]])
      except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _Malformed(
            f"a hit of query {i} lacks the expected fields ({type(e).__name__}: {e}): " f"{str(hits[:1])[:200]}"
        ) from None
    return results

  def _batch(self, queries: list[str], k: int) -> list[list[Hit]]:
    if self.protocol == "exsearch":
      lists = self._field(self._request("/search", {"queries": queries, "k": k}), "results")
    else:
      lists = self._field(self._request("/retrieve", {"queries": queries, "topk": k, "return_scores": True}), "result")
    return self._hits(lists, len(queries), k)

  def _one_colbert(self, query: str, k: int) -> list[Hit]:
    payload = self._request("/api/search?" + urllib.parse.urlencode({"query": query, "k": k}))
    return self._hits([self._field(payload, "topk")], 1, k)[0]

  def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
    queries = list(queries)
    if not queries:
      return []
    try:
      if self.protocol != "colbert":
        return [
            hits
            for s in range(0, len(queries), self.batch_size)
            for hits in self._batch(queries[s : s + self.batch_size], k)
        ]
      pool = concurrent.futures.ThreadPoolExecutor(min(self.workers, len(queries)), thread_name_prefix="colbert")
      try:
        return list(pool.map(lambda q: self._one_colbert(q, k), queries))  # map keeps query order
      finally:
        pool.shutdown(wait=True, cancel_futures=True)
    except _Malformed as e:
      raise self._error(f"sent a malformed response: {e}") from None

  def health(self) -> bool:
    """One tiny search, so a wrong URL or protocol fails at startup rather than mid-training."""
    self.search(["health check"], 1)
    return True


def connect(
    url: str,
    protocol: str = "exsearch",
    timeout: float = 60.0,
    retries: int = 3,
    batch_size: int = 256,
    check: bool = True,
) -> RemoteRetriever:
  """A client for the server at `url`; with `check`, fails now (one clear error) if it does not answer."""
  client = RemoteRetriever(url, protocol, timeout=timeout, retries=retries, batch_size=batch_size)
  if check:
    client.health()
  return client
