"""Fictional names for the synthetic world, so no answer can be recalled from pre-training.

Names are built from syllables with a seeded `random.Random`; every full name is unique. Near-duplicate
names (one letter changed) are made on purpose by `near_duplicate` and recorded by the world as such.
"""

from __future__ import annotations

import random

_ONSETS = (
    "b",
    "d",
    "f",
    "g",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "kr",
    "st",
    "th",
    "gr",
    "tr",
    "sk",
    "vr",
)
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "ia")
_CODAS = ("", "", "n", "r", "l", "s", "th", "k", "m", "nd", "rk")
_FILM_NOUNS = (
    "Harbor",
    "Garden",
    "Signal",
    "River",
    "Crown",
    "Letters",
    "Winter",
    "Machine",
    "Lantern",
    "Orchard",
    "Mirror",
    "Voyage",
    "Tide",
    "Ember",
    "Citadel",
    "Meadow",
)
_COMPANY_SUFFIXES = ("Motors", "Works", "Labs", "Group", "Studios", "Systems", "Foods", "Textiles")
_UNIVERSITY_SUFFIXES = ("Institute", "College", "Academy")


class NameMaker:
  """Draws unique pronounceable words; each kind of entity combines them into a full name."""

  def __init__(self, rng: random.Random):
    self.rng = rng
    self.words: set[str] = set()
    self.full_names: set[str] = set()

  def word(self, syllables: tuple[int, int] = (2, 3)) -> str:
    for _ in range(10_000):
      n = self.rng.randint(*syllables)
      w = "".join(
          self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) + self.rng.choice(_CODAS) for _ in range(n)
      ).capitalize()
      if w not in self.words and 4 <= len(w) <= 9:
        self.words.add(w)
        return w
    raise RuntimeError("name space exhausted; use fewer entities")

  def pool(self, n: int) -> list[str]:
    return [self.word() for _ in range(n)]

  def claim(self, name: str) -> bool:
    if name in self.full_names:
      return False
    self.full_names.add(name)
    return True

  def unique(self, make) -> str:
    for _ in range(10_000):
      name = make()
      if self.claim(name):
        return name
    raise RuntimeError("could not draw a unique name; enlarge the name pools")

  def person(self, firsts: list[str], lasts: list[str]) -> str:
    return self.unique(lambda: f"{self.rng.choice(firsts)} {self.rng.choice(lasts)}")

  def city(self) -> str:
    return self.unique(self.word)

  def country(self) -> str:
    return self.unique(lambda: self.word((2, 2)) + "ia")

  def company(self) -> str:
    return self.unique(lambda: f"{self.word((2, 2))} {self.rng.choice(_COMPANY_SUFFIXES)}")

  def film(self) -> str:
    return self.unique(lambda: f"{self.word((2, 2))} {self.rng.choice(_FILM_NOUNS)}")

  def university(self) -> str:
    return self.unique(lambda: f"{self.word((2, 2))} {self.rng.choice(_UNIVERSITY_SUFFIXES)}")

  def near_duplicate(self, name: str) -> str | None:
    """The same name with one letter of its last word changed (a confusable twin), or None."""
    parts = name.split(" ")
    target = (
        1
        if len(parts) > 1
        and parts[0] != "The"
        and parts[-1] not in _FILM_NOUNS + _COMPANY_SUFFIXES + _UNIVERSITY_SUFFIXES
        else 0
    )
    word = parts[target]
    for _ in range(50):
      i = self.rng.randrange(1, len(word))
      letter = self.rng.choice("aeiourstnlk")
      twin_word = word[:i] + letter + word[i + 1 :]
      if twin_word == word:
        continue
      twin = " ".join(parts[:target] + [twin_word] + parts[target + 1 :])
      if self.claim(twin):
        self.words.add(twin_word)
        return twin
    return None
