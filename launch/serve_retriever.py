"""Serve a built index over HTTP (127.0.0.1 by default): `python launch/serve_retriever.py --index DIR`.

Clients: `exsearch_jax.retrieval.server.RetrieverClient("http://127.0.0.1:8000").search(queries, k)`.
"""

from absl import flags, logging

from exsearch_jax import cli

_INDEX = flags.DEFINE_string("index", None, "Index directory written by launch/build_index.py.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Bind address (use 0.0.0.0 only on a trusted network).")
_PORT = flags.DEFINE_integer("port", 8000, "Port.")
flags.mark_flag_as_required("index")


def main(argv):
  del argv
  from exsearch_jax import retrieval
  from exsearch_jax.retrieval.server import make_server

  if _HOST.value not in ("127.0.0.1", "localhost", "::1"):
    logging.warning(
        "binding %s, not 127.0.0.1: anyone who can reach this host on port %d can query the index "
        "(there is no authentication)",
        _HOST.value,
        _PORT.value,
    )
  retriever = retrieval.load(_INDEX.value)
  server = make_server(retriever, _HOST.value, _PORT.value)
  logging.info(
      "serving %s index of %d passages on http://%s:%d/search",
      retriever.kind,
      len(retriever.passages),
      _HOST.value,
      _PORT.value,
  )
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    server.shutdown()


if __name__ == "__main__":
  cli.run(main)
