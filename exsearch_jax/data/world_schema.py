"""The synthetic world's schema: entity kinds, relations, and the language each relation is written in.

Each relation has a question for one hop ("Who directed X?"), the fact a searcher records after
reading the answer ("X was directed by Y."), several sentence templates the encyclopedia passages use
(so a passage never has to match the sub-query word for word), and a noun phrase that nests hops into
multi-hop questions ("the city where the director of X was born").
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Relation:
  name: str
  subject: str  # entity kind
  object: str  # entity kind, or "year"
  question: str  # one-hop question about {s}
  fact: str  # the canonical fact a searcher records: {s}, {o}
  templates: tuple  # passage sentences: {s}, {o}
  phrase: str = ""  # noun phrase for the object, nesting {s}; empty = cannot be an inner hop


RELATIONS = {
    r.name: r
    for r in (
        Relation(
            "born_in",
            "person",
            "city",
            "Where was {s} born?",
            "{s} was born in {o}.",
            ("{s} was born in {o}.", "Born in {o}, {s} grew up near the old market.", "{s} is a native of {o}."),
            "the city where {s} was born",
        ),
        Relation(
            "birth_year",
            "person",
            "year",
            "When was {s} born?",
            "{s} was born in {o}.",
            ("{s} was born in the year {o}.", "{s} (born {o}) first appeared in public records early."),
            "",
        ),
        Relation(
            "employer",
            "person",
            "company",
            "Which company does {s} work for?",
            "{s} works for {o}.",
            ("{s} works for {o}.", "{s} joined {o} as an engineer.", "{s} is employed by {o}."),
            "the company that {s} works for",
        ),
        Relation(
            "educated_at",
            "person",
            "university",
            "Where did {s} study?",
            "{s} studied at {o}.",
            ("{s} studied at {o}.", "{s} is a graduate of {o}."),
            "the school where {s} studied",
        ),
        Relation(
            "country",
            "city",
            "country",
            "In which country is {s}?",
            "{s} is in {o}.",
            ("{s} is a city in {o}.", "{s} lies in the north of {o}.", "The city of {s} belongs to {o}."),
            "the country that {s} is in",
        ),
        Relation(
            "founder",
            "company",
            "person",
            "Who founded {s}?",
            "{s} was founded by {o}.",
            ("{s} was founded by {o}.", "{o} started {s} in a small workshop.", "{o} is the founder of {s}."),
            "the founder of {s}",
        ),
        Relation(
            "headquarters",
            "company",
            "city",
            "Where is {s} based?",
            "{s} is based in {o}.",
            ("{s} is based in {o}.", "The headquarters of {s} are in {o}."),
            "the city where {s} is based",
        ),
        Relation(
            "founded_year",
            "company",
            "year",
            "When was {s} founded?",
            "{s} was founded in {o}.",
            ("{s} was founded in the year {o}.", "{s} has operated since {o}."),
            "",
        ),
        Relation(
            "director",
            "film",
            "person",
            "Who directed {s}?",
            "{s} was directed by {o}.",
            ("{s} is a film directed by {o}.", "{o} directed the film {s}.", "{s} was made by director {o}."),
            "the director of {s}",
        ),
        Relation(
            "producer",
            "film",
            "company",
            "Which company produced {s}?",
            "{s} was produced by {o}.",
            ("{s} was produced by {o}.", "{o} produced the film {s}.", "The producer of {s} is {o}."),
            "the company that produced {s}",
        ),
        Relation(
            "release_year",
            "film",
            "year",
            "When was {s} released?",
            "{s} was released in {o}.",
            ("{s} was released in {o}.", "{s} premiered in {o}."),
            "",
        ),
        Relation(
            "location",
            "university",
            "city",
            "Where is {s} located?",
            "{s} is located in {o}.",
            ("{s} is located in {o}.", "{s} has its campus in {o}."),
            "the city where {s} is located",
        ),
    )
}

KINDS = ("country", "city", "person", "company", "film", "university")

# Sentences without facts: they give passages about an entity that do not answer a hop (distractors).
FILLERS = {
    "person": (
        "{s} enjoys long walks and old maps.",
        "{s} once gave a lecture on river bridges.",
        "Friends describe {s} as quiet and patient.",
    ),
    "city": (
        "{s} is known for its stone bridges.",
        "{s} holds a lantern festival every spring.",
        "Many travellers pass through {s} in summer.",
    ),
    "country": ("{s} has a long coastline.", "{s} is famous for its mountain tea."),
    "company": (
        "{s} opened a second office last decade.",
        "{s} is known for its bright logo.",
        "{s} sponsors a local football club.",
    ),
    "film": ("{s} received mixed reviews.", "{s} was shown at several festivals.", "Critics praised the music of {s}."),
    "university": ("{s} has a large library.", "{s} is known for its rowing team."),
}

# Comparison questions (HotpotQA's "comparison" type): two one-hop lookups, then a comparison.
COMPARISONS = {
    "born_first": ("birth_year", "Who was born first, {a} or {b}?"),
    "released_first": ("release_year", "Which film was released first, {a} or {b}?"),
    "same_birthplace": ("born_in", "Were {a} and {b} born in the same city?"),
}


def chains(max_hops: int) -> list[tuple[str, ...]]:
  """Every relation path of 1..max_hops hops whose kinds connect (years only at the end)."""
  out: list[tuple[str, ...]] = []
  frontier: list[tuple[str, ...]] = [(r,) for r in RELATIONS]
  while frontier:
    path = frontier.pop(0)
    out.append(path)
    last = RELATIONS[path[-1]]
    if len(path) < max_hops and last.phrase:
      frontier += [path + (r.name,) for r in RELATIONS.values() if r.subject == last.object]
  return out


def chain_question(path: tuple[str, ...], start_name: str) -> str:
  """'Where was the director of X born?': inner hops nest as noun phrases into the last hop's question."""
  described = start_name
  for name in path[:-1]:
    described = RELATIONS[name].phrase.format(s=described)
  return RELATIONS[path[-1]].question.format(s=described)
