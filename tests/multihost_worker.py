"""A minimal multi-process program for tests/test_multihost.py: joins the group with the launchers' flags,
then meets the others at barriers (a collective each) until it is told to fail, or is killed."""

import time

import jax
from absl import app, flags

from exsearch_jax import distributed

distributed.define_flags()
_FAIL = flags.DEFINE_integer("fail", -1, "This process raises after the first barrier.")
_ERROR = flags.DEFINE_enum("error", "RuntimeError", ["RuntimeError", "JaxRuntimeError"], "What it raises.")


def main(argv):
  del argv
  with distributed.session():
    distributed.barrier("joined")
    print(f"joined {jax.process_index()}", flush=True)
    if jax.process_index() == _FAIL.value:
      raise getattr(jax.errors, _ERROR.value, RuntimeError)("boom")
    for i in range(600):
      distributed.barrier(f"round-{i}")
      time.sleep(0.1)


if __name__ == "__main__":
  app.run(main)
