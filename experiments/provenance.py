"""What an experiment writes beside its numbers, so anyone can rerun it: command, config, revision, machine."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def revision(root: str) -> str:
  """The git revision of `root`, with "+dirty" when it has uncommitted changes ("unknown" outside git)."""
  try:
    rev = subprocess.run(
        ["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
    ).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"
  return rev + ("+dirty" if dirty else "")


def machine() -> dict:
  """CPU model, cores this process may use, accelerators JAX sees."""
  import jax

  cpu = platform.processor() or platform.machine()
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = names[0] if names else cpu
  devices = jax.devices()
  return {
      "cpu": cpu,
      "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
      "platform": devices[0].platform,
      "devices": len(devices),
      "jax": jax.__version__,
      "python": platform.python_version(),
  }


def record(out_dir: str, config=None, **extra) -> dict:
  """Writes <out_dir>/provenance.json (the command line, the resolved config, revision, machine, time)."""
  info = {
      "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
      "revision": revision(ROOT),
      "machine": machine(),
      "finished": datetime.datetime.now().isoformat(timespec="seconds"),
      **extra,
  }
  if config is not None:
    info["config"] = (
        json.loads(config.to_json())
        if hasattr(config, "to_json")
        else config.to_dict()
        if hasattr(config, "to_dict")
        else config
    )
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "provenance.json"), "w", encoding="utf-8") as f:
    json.dump(info, f, indent=1)
  return info
