"""Locating `../shared/data` (real text beside the project): skip outside CI, fail inside CI."""

import os

import pytest

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")


def shared_file(name: str) -> str:
  path = os.path.normpath(os.path.join(SHARED, name))
  if not os.path.exists(path):
    if os.environ.get("CI"):
      pytest.fail(f"{path} is missing in CI")
    pytest.skip(f"{path} not found (real data lives beside the project in ../shared/data)")
  return path
