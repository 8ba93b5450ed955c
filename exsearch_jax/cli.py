"""How every launcher ends on bad input: one line on stderr naming what is wrong, and exit status 2.

`cli.run(main)` replaces `absl.app.run(main)`. The project's errors (`ExsearchError`: bad files, configs,
checkpoints), flag errors (an unknown preset, a config file that raises, a malformed `--config.x=v`) and a
full disk become `error: <message>`; `--verbosity=1` or `EXSEARCH_TRACEBACK=1` shows the traceback instead.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from typing import Callable, Optional

from absl import app, flags

from exsearch_jax.errors import ExsearchError

EXIT_BAD_INPUT = 2
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space, over quota, file over the size limit


def _disk_full(error: Optional[BaseException]) -> Optional[OSError]:
  """The OSError saying the disk is full, wherever it is in `error`'s chain (orbax and tensorstore wrap it)."""
  seen: set[int] = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in DISK_FULL:
      return error
    error = error.__cause__ or error.__context__
  return None


def _tracebacks() -> bool:
  if os.environ.get("EXSEARCH_TRACEBACK", "") not in ("", "0"):
    return True
  try:
    return bool(flags.FLAGS["verbosity"].present and flags.FLAGS.verbosity >= 1)
  except (KeyError, flags.UnparsedFlagAccessError):
    return False


def fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(EXIT_BAD_INPUT)


def _lines(error: Exception) -> list[str]:
  return [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]


def _flag_error_line(error: Exception) -> str:
  """A flag error's message in one line: config_flags puts the config file's whole traceback into it; its
  last line is the error itself."""
  return _lines(error)[-1] if "Traceback" in str(error) else " ".join(_lines(error))


def _field_error_line(e: Exception) -> str:
  """An unknown `--config.a.b=v` field: which argument, and ml_collections' "did you mean" when it has one."""
  text = str(e).replace("\\'", "'").replace("\\n", " ")
  key = re.search(r"'(\w+)'", text)
  arg = next(
      (
          a.split("=")[0]
          for a in sys.argv[1:]
          if a.startswith("--") and "." in a.split("=")[0] and key and key.group(1) in a.split("=")[0].split(".")
      ),
      "a --config.* flag",
  )
  hint = re.search(r'Did you mean "(\w+)"', text)
  return f"{arg}: no such config field" + (f' (did you mean "{hint.group(1)}"?)' if hint else "")


def define_config(name: str, default: Optional[str], help_text: str):
  """`config_flags.DEFINE_config_file`, whose `--NAME.field=value` overrides of the default are applied as the
  flag is defined: an unknown field is one line and status 2 here too."""
  from ml_collections import config_flags

  try:
    return config_flags.DEFINE_config_file(name, default, help_text)
  except (AttributeError, KeyError) as e:
    if _tracebacks():
      raise
    fail(_field_error_line(e))


def _parse(argv):
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:  # config_flags: an unknown field in an override
    if _tracebacks():
      raise
    fail(_field_error_line(e))
  except flags.Error as e:
    if _tracebacks():
      raise
    fail(_flag_error_line(e))


def run(main: Callable) -> None:
  """`absl.app.run(main)`, with the project's errors and flag errors as one line and status 2."""

  def guarded(argv):
    for name in list(flags.FLAGS):
      value = flags.FLAGS[name].value
      if type(value).__name__ == "_ErrorConfig" and not _tracebacks():  # config_flags defers a load failure
        fail(f"--{name}: " + _lines(object.__getattribute__(value, "_error"))[-1])
    try:
      return main(argv)
    except ExsearchError as e:
      if _tracebacks():
        raise
      fail(str(e))
    except Exception as e:  # pylint: disable=broad-except  (only a full disk is turned into one line)
      full = _disk_full(e)
      if full is None or _tracebacks():
        raise
      fail(
          f"{full.filename or 'writing a file'}: {full.strerror or 'disk full'}: free space (or use another "
          "--workdir) and rerun the same command; a run resumes from its last complete checkpoint"
      )

  app.run(guarded, flags_parser=_parse)
