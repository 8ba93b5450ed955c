"""Crash-safe writes: a file or directory is written under a temporary name and renamed into place, so a run
killed at any moment leaves either the old complete version or the new one, never a torn one; a rerun then
resumes from it or rebuilds it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
from typing import Iterator


def _tmp(path: str) -> str:
  return f"{path}.tmp-{os.getpid()}"


@contextlib.contextmanager
def replaced_file(path: str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
  """`with replaced_file(p) as f:` writes `p` whole or not at all (flushed to disk before the rename)."""
  tmp = _tmp(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  f = open(tmp, mode, encoding=None if "b" in mode else encoding)  # pylint: disable=consider-using-with
  try:
    yield f
    f.flush()
    os.fsync(f.fileno())
    f.close()
    os.replace(tmp, path)
  finally:
    if not f.closed:
      f.close()
    if os.path.exists(tmp):
      os.remove(tmp)


@contextlib.contextmanager
def replaced_directory(path: str) -> Iterator[str]:
  """`with replaced_directory(d) as tmp:` fill `tmp`; on success it becomes `d` (an old `d` is removed).

  A kill while filling leaves `d` as it was (the temporary is cleared by the next write); a kill between the
  two renames leaves no `d`, which a rerun rebuilds."""
  path = os.path.abspath(path)
  for stale in glob.glob(f"{glob.escape(path)}.tmp-*") + glob.glob(f"{glob.escape(path)}.old-*"):
    shutil.rmtree(stale, ignore_errors=True)
  tmp = _tmp(path)
  os.makedirs(tmp)
  try:
    yield tmp
    old = f"{path}.old-{os.getpid()}"
    if os.path.lexists(path):
      os.rename(path, old)
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def append_line(path: str, line: str) -> None:
  """Appends one line to a JSONL log, first cutting a torn last line (a kill mid-append) so it never merges
  with the next record; flushed to disk before returning."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "a+b") as f:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    if size:
      f.seek(size - 1)
      if f.read(1) != b"\n":
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)
    f.seek(0, os.SEEK_END)
    f.write(line.rstrip("\n").encode("utf-8") + b"\n")
    f.flush()
    os.fsync(f.fileno())


def read_jsonl(path: str, what: str = "a JSON line") -> list[tuple[int, object]]:
  """(line number, value) of each non-blank line of a log `append_line` writes. A last line that does not parse
  was torn by a kill while appending and is left out; any other is an error naming the file and line."""
  import json
  from exsearch_jax.errors import ExsearchError

  with open(path, encoding="utf-8") as f:
    lines = [(n, line) for n, line in enumerate(f.read().splitlines(), 1) if line.strip()]
  rows = []
  for i, (number, line) in enumerate(lines):
    try:
      rows.append((number, json.loads(line)))
    except json.JSONDecodeError:
      if i < len(lines) - 1:
        raise ExsearchError(f"{path}:{number}: not {what}") from None
  return rows
