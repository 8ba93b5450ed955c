"""What every retriever returns and the one method the sampler calls."""

from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence


@dataclasses.dataclass(frozen=True)
class Hit:
  id: str
  score: float
  title: str
  text: str


class Retriever(Protocol):
  """In-process indexes and the HTTP client both satisfy this."""

  def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
    ...
