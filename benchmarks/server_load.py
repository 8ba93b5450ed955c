"""The retriever server under load: N concurrent clients sending batched queries, with and without bad clients.

  python benchmarks/server_load.py [--clients 1,8,64] [--seconds 60] [--batch 8] [--k 10] [--index bm25]

`launch/serve_retriever.py` in its own process (127.0.0.1, a free port) over the demo world's corpus
(3,283 passages; `--index scann` for the dense index). For each client count it runs twice for `--seconds`:
good clients only, then the same good clients with three bad ones alongside (malformed JSON, bodies over the
size limit, and a client that trickles its body one byte a second). It reports queries/s, p50/p99 request
latency and errors of the good clients, the bad requests' status codes, and the server's resident memory
before and after. The stated bound: with the bad clients the good clients' p99 stays
within 2x of theirs alone, and none of their requests fails.
"""

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np


def _rss_mb(pid: int) -> float:
  with open(f"/proc/{pid}/status", encoding="utf-8") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start_server(index_dir: str, port: int) -> subprocess.Popen:
  """launch/serve_retriever.py in its own process (its own GIL), ready when /health answers."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.Popen(
      [sys.executable, os.path.join(root, "launch", "serve_retriever.py"), f"--index={index_dir}", f"--port={port}"],
      cwd=root,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
  )
  deadline = time.time() + 300
  while time.time() < deadline:
    try:
      conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
      conn.request("GET", "/health")
      if conn.getresponse().status == 200:
        return proc
    except OSError:
      time.sleep(0.2)
  proc.kill()
  raise RuntimeError("the server did not answer /health within 300 s")


def _good_client(port, queries, batch, k, stop, latencies, errors, seed):
  rng = np.random.default_rng(seed)
  conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
  while not stop.is_set():
    body = json.dumps({"queries": list(rng.choice(queries, batch)), "k": k})
    start = time.perf_counter()
    try:
      conn.request("POST", "/search", body, {"Content-Type": "application/json"})
      response = conn.getresponse()
      data = response.read()
      if response.status != 200 or len(json.loads(data)["results"]) != batch:
        errors.append(response.status)
      else:
        latencies.append(time.perf_counter() - start)
    except (OSError, http.client.HTTPException, ValueError) as e:
      errors.append(type(e).__name__)
      conn.close()
      conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
  conn.close()


def _bad_client(port, kind, stop, statuses):
  while not stop.is_set():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
      if kind == "malformed":
        conn.request("POST", "/search", "{not json", {"Content-Type": "application/json"})
      elif kind == "oversized":
        conn.putrequest("POST", "/search")
        conn.putheader("Content-Length", str(64 << 20))
        conn.endheaders()
        conn.send(b"[" * 4096)
      else:  # trickle: a valid body, one byte a second
        body = json.dumps({"queries": ["who founded it"], "k": 3}).encode()
        conn.putrequest("POST", "/search")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        for i in range(len(body)):
          if stop.is_set():
            break
          conn.send(body[i : i + 1])
          time.sleep(1.0)
      statuses.append((kind, conn.getresponse().status))
    except (OSError, http.client.HTTPException) as e:
      statuses.append((kind, type(e).__name__))
    finally:
      conn.close()
    time.sleep(0.05)


def run_level(port, queries, clients, seconds, batch, k, bad):
  stop, latencies, errors, statuses = threading.Event(), [], [], []
  threads = [
      threading.Thread(target=_good_client, args=(port, queries, batch, k, stop, latencies, errors, i))
      for i in range(clients)
  ]
  if bad:
    threads += [
        threading.Thread(target=_bad_client, args=(port, kind, stop, statuses))
        for kind in ("malformed", "oversized", "trickle")
    ]
  for t in threads:
    t.start()
  time.sleep(seconds)
  stop.set()
  for t in threads:
    t.join(timeout=5)
  lat = np.array(latencies) * 1000
  return {
      "clients": clients,
      "bad": bad,
      "requests": len(latencies),
      "qps": len(latencies) * batch / seconds,
      "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
      "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
      "errors": len(errors),
      "bad_statuses": sorted({f"{kind}:{s}" for kind, s in statuses}),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--clients", default="1,8,64")
  parser.add_argument("--seconds", type=float, default=60.0)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--k", type=int, default=10)
  parser.add_argument("--index", default="bm25", choices=["bm25", "scann", "exact"])
  parser.add_argument("--json", default="", help="also write the rows to this file")
  args = parser.parse_args()
  from exsearch_jax import retrieval
  from exsearch_jax.data import world as W

  with tempfile.TemporaryDirectory() as tmp:
    world = W.make_world(0, "demo")
    corpus = W.write_world(world, tmp)["corpus"]
    retriever = retrieval.build(corpus, os.path.join(tmp, "index"), kind=args.index, progress=False)
    queries = [q["question"] for q in world.splits["dev"]]
    port = _free_port()
    server = _start_server(os.path.join(tmp, "index"), port)
    try:
      rss_before = _rss_mb(server.pid)
      rows = []
      for clients in (int(c) for c in args.clients.split(",")):
        for bad in (False, True):
          rows.append(run_level(port, queries, clients, args.seconds, args.batch, args.k, bad))
          print(json.dumps(rows[-1]), flush=True)
      rss_after = _rss_mb(server.pid)
    finally:
      server.kill()
  print(
      f"\n{args.index} index, {len(retriever.passages)} passages, {args.batch} queries per request, k={args.k}, "
      f"{args.seconds:g} s per row; server process RSS {rss_before:.0f} -> {rss_after:.0f} MB\n"
  )
  print("| clients | bad clients | queries/s | p50 ms | p99 ms | errors | bad requests answered |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    print(
        f"| {r['clients']} | {'3' if r['bad'] else '0'} | {r['qps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
        f"| {r['errors']} | {', '.join(r['bad_statuses']) or '-'} |"
    )
  for alone, mixed in zip(rows[0::2], rows[1::2]):
    ratio = mixed["p99_ms"] / alone["p99_ms"] if alone["p99_ms"] > 0 else float("nan")
    print(
        f"{alone['clients']} clients: p99 with bad clients / alone = {ratio:.2f}x "
        f"({'within' if ratio <= 2 and mixed['errors'] == 0 else 'OUTSIDE'} the 2x bound, "
        f"{mixed['errors']} good-client errors)"
    )
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump({"rows": rows, "rss_mb": [rss_before, rss_after]}, f, indent=1)


if __name__ == "__main__":
  main()
