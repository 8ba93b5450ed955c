"""A seeded, fictional multi-hop world: entities, encyclopedia passages, and questions no model can answer
without searching.

`make_world(seed, size)` is deterministic (one `random.Random(seed)`, fixed iteration orders), so the
same seed writes byte-identical files. Questions come with gold answers, the gold passage of every hop,
and an oracle decomposition (sub-query, the fact it yields) that renders as a seed trajectory.
Dev and test questions are drawn first and their facts reserved, so no train question uses a fact that
a dev or test question needs: a model can only answer them by searching.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import random

from exsearch_jax.data.world_names import NameMaker
from exsearch_jax.data.world_schema import COMPARISONS, FILLERS, KINDS, RELATIONS, chain_question, chains


@dataclasses.dataclass(frozen=True)
class WorldSize:
  countries: int
  cities: int
  people: int
  companies: int
  films: int
  universities: int
  train: int
  dev: int
  test: int
  max_hops: int = 4
  twin_share: float = 0.15  # share of people/companies/films with a near-duplicate-named twin
  # question mix: one-hop, 2-hop bridge, 3-4-hop compositional chains, comparison
  mix: tuple = (("single", 0.2), ("bridge", 0.4), ("compositional", 0.2), ("comparison", 0.2))


SIZES = {
    "tiny": WorldSize(4, 16, 60, 20, 30, 6, train=120, dev=40, test=40),
    "demo": WorldSize(12, 120, 500, 150, 250, 30, train=2400, dev=300, test=300),
    "large": WorldSize(40, 600, 4000, 1200, 2000, 150, train=20000, dev=2000, test=2000),
}


@dataclasses.dataclass
class World:
  seed: int
  size: str
  entities: dict  # id -> {"id", "kind", "name"}
  facts: dict  # (subject_id, relation) -> object id or year string
  passages: list  # [{"id", "title", "text"}]
  fact_passage: dict  # (subject_id, relation) -> passage id that states it
  twins: list  # [(entity id, twin id)] near-duplicate names made on purpose
  splits: dict  # split -> [question dicts in the FlashRAG QA form]

  def name(self, value: str) -> str:
    return self.entities[value]["name"] if value in self.entities else value


def _build_entities(rng: random.Random, size: WorldSize):
  names = NameMaker(rng)
  firsts, lasts = names.pool(max(8, size.people // 5)), names.pool(max(10, size.people // 3))
  make = {
      "country": names.country,
      "city": names.city,
      "company": names.company,
      "film": names.film,
      "university": names.university,
      "person": lambda: names.person(firsts, lasts),
  }
  counts = {
      "country": size.countries,
      "city": size.cities,
      "person": size.people,
      "company": size.companies,
      "film": size.films,
      "university": size.universities,
  }
  entities, by_kind = {}, collections.defaultdict(list)
  for kind in KINDS:
    for i in range(counts[kind]):
      eid = f"{kind}/{i}"
      entities[eid] = {"id": eid, "kind": kind, "name": make[kind]()}
      by_kind[kind].append(eid)
  twins = []
  for kind in ("person", "company", "film"):
    for eid in list(by_kind[kind]):
      if rng.random() < size.twin_share:
        twin_name = names.near_duplicate(entities[eid]["name"])
        if twin_name:
          tid = f"{kind}/{len(by_kind[kind])}"
          entities[tid] = {"id": tid, "kind": kind, "name": twin_name}
          by_kind[kind].append(tid)
          twins.append((eid, tid))
  return entities, by_kind, twins


def _build_facts(rng: random.Random, entities: dict, by_kind: dict) -> dict:
  facts = {}
  years = {"person": (1900, 1995), "company": (1850, 2015), "film": (1930, 2020)}
  for eid in sorted(entities, key=lambda e: (entities[e]["kind"], int(e.split("/")[1]))):
    kind = entities[eid]["kind"]
    for rel in RELATIONS.values():
      if rel.subject != kind:
        continue
      if rel.object == "year":
        facts[(eid, rel.name)] = str(rng.randint(*years[kind]))
      else:
        facts[(eid, rel.name)] = rng.choice(by_kind[rel.object])
  return facts


def _build_passages(rng: random.Random, entities: dict, facts: dict):
  """Each entity's facts, shuffled, go 1-2 per passage (varied templates); some passages carry fillers only."""
  by_subject = collections.defaultdict(list)
  for subject, rel in facts:
    by_subject[subject].append(rel)
  passages, fact_passage = [], {}
  for eid in sorted(entities, key=lambda e: (entities[e]["kind"], int(e.split("/")[1]))):
    entity, rels = entities[eid], list(by_subject[eid])
    rng.shuffle(rels)
    groups = []
    while rels:
      take = rng.choice((1, 2))
      groups.append(rels[:take])
      rels = rels[take:]
    groups += [[]] if len(groups) < 2 or rng.random() < 0.3 else []  # every entity has a distractor
    for group in groups:
      pid = f"w{len(passages):06d}"
      sentences = []
      for rel in group:
        obj = facts[(eid, rel)]
        obj_name = entities[obj]["name"] if obj in entities else obj
        sentences.append(rng.choice(RELATIONS[rel].templates).format(s=entity["name"], o=obj_name))
        fact_passage[(eid, rel)] = pid
      if not group or rng.random() < 0.4:
        sentences.append(rng.choice(FILLERS[entity["kind"]]).format(s=entity["name"]))
      passages.append({"id": pid, "title": entity["name"], "text": " ".join(sentences)})
  return passages, fact_passage


def _walk(facts, start, path):
  """Entities visited along `path` from `start` (start first); None when the chain revisits an entity."""
  visited = [start]
  for rel in path:
    visited.append(facts[(visited[-1], rel)])
  return visited if len(set(visited)) == len(visited) else None


def _chain_question(world_facts, entities, fact_passage, path, start, kind):
  visited = _walk(world_facts, start, path)
  if visited is None:
    return None
  name = lambda v: entities[v]["name"] if v in entities else v  # noqa: E731
  steps = [
      {
          "query": RELATIONS[rel].question.format(s=name(s)),
          "fact": RELATIONS[rel].fact.format(s=name(s), o=name(o)),
          "passage_id": fact_passage[(s, rel)],
          "answer": name(o),
      }
      for rel, s, o in zip(path, visited, visited[1:])
  ]
  return {
      "question": chain_question(path, name(start)),
      "golden_answers": [name(visited[-1])],
      "type": kind,
      "hops": len(path),
      "decomposition": steps,
      "facts": [(s, rel) for rel, s in zip(path, visited)],
  }


def _comparison_question(world_facts, entities, fact_passage, comparison, a, b):
  rel, template = COMPARISONS[comparison]
  va, vb = world_facts[(a, rel)], world_facts[(b, rel)]
  if rel.endswith("year") and va == vb:
    return None
  na, nb = entities[a]["name"], entities[b]["name"]
  if comparison == "same_birthplace":
    answer = "yes" if va == vb else "no"
  else:
    answer = na if int(va) < int(vb) else nb
  r = RELATIONS[rel]
  steps = [
      {
          "query": r.question.format(s=n),
          "fact": r.fact.format(s=n, o=entities.get(v, {"name": v})["name"]),
          "passage_id": fact_passage[(e, rel)],
          "answer": entities.get(v, {"name": v})["name"],
      }
      for e, n, v in ((a, na, va), (b, nb, vb))
  ]
  return {
      "question": template.format(a=na, b=nb),
      "golden_answers": [answer],
      "type": "comparison",
      "hops": 2,
      "decomposition": steps,
      "facts": [(a, rel), (b, rel)],
  }


def _draw_question(rng, size, facts, entities, by_kind, fact_passage, paths_by_hops):
  kinds, weights = zip(*size.mix)
  kind = rng.choices(kinds, weights)[0]
  if kind == "comparison":
    comparison = rng.choice(sorted(COMPARISONS))
    subject_kind = RELATIONS[COMPARISONS[comparison][0]].subject
    a, b = rng.sample(by_kind[subject_kind], 2)
    if comparison == "same_birthplace" and rng.random() < 0.5:  # balance yes/no: "no" alone must not score
      same = [p for p in by_kind[subject_kind] if p != a and facts[(p, "born_in")] == facts[(a, "born_in")]]
      b = rng.choice(same) if same else b
    return _comparison_question(facts, entities, fact_passage, comparison, a, b)
  hops = 1 if kind == "single" else 2 if kind == "bridge" else rng.randint(3, size.max_hops)
  path = rng.choice(paths_by_hops[hops])
  start = rng.choice(by_kind[RELATIONS[path[0]].subject])
  return _chain_question(facts, entities, fact_passage, path, start, kind)


def _draw_splits(rng, size, facts, entities, by_kind, fact_passage):
  paths_by_hops = collections.defaultdict(list)
  for path in chains(size.max_hops):
    paths_by_hops[len(path)].append(path)
  reserved, seen, splits = set(), set(), {}
  for split, target in (("dev", size.dev), ("test", size.test), ("train", size.train)):
    out = []
    for _ in range(target * 200):
      if len(out) == target:
        break
      q = _draw_question(rng, size, facts, entities, by_kind, fact_passage, paths_by_hops)
      if q is None or q["question"] in seen:
        continue
      if split == "train" and any(f in reserved for f in q["facts"]):
        continue
      seen.add(q["question"])
      if split != "train":
        reserved.update(f for f in q["facts"] if RELATIONS[f[1]].subject != "city")
      q["supporting_ids"] = [s["passage_id"] for s in q["decomposition"]]
      q["id"] = f"{split}-{len(out):05d}"
      out.append(q)
    if len(out) < target:
      raise RuntimeError(f"world too small for {target} {split} questions (got {len(out)}); use a larger size")
    splits[split] = out
  return splits


def make_world(seed: int, size: str = "demo") -> World:
  if size not in SIZES:
    raise ValueError(f"unknown world size {size!r}; choose one of {sorted(SIZES)}")
  spec, rng = SIZES[size], random.Random(seed)
  entities, by_kind, twins = _build_entities(rng, spec)
  facts = _build_facts(rng, entities, by_kind)
  passages, fact_passage = _build_passages(rng, entities, facts)
  splits = _draw_splits(rng, spec, facts, entities, by_kind, fact_passage)
  return World(seed, size, entities, facts, passages, fact_passage, twins, splits)


QA_FIELDS = ("id", "question", "golden_answers", "supporting_ids", "hops", "type", "decomposition")


def write_world(world: World, out_dir: str) -> dict:
  """Writes corpus.jsonl and train/dev/test.jsonl (FlashRAG QA form); returns {name: path}."""
  from exsearch_jax import atomic

  os.makedirs(out_dir, exist_ok=True)
  paths = {"corpus": os.path.join(out_dir, "corpus.jsonl")}
  with atomic.replaced_file(paths["corpus"]) as f:
    for p in world.passages:
      f.write(json.dumps({"id": p["id"], "title": p["title"], "text": p["text"]}, ensure_ascii=False) + "\n")
  for split, questions in world.splits.items():
    paths[split] = os.path.join(out_dir, f"{split}.jsonl")
    with atomic.replaced_file(paths[split]) as f:
      for q in questions:
        f.write(json.dumps({k: q[k] for k in QA_FIELDS}, ensure_ascii=False) + "\n")
  return paths


def statistics(world: World) -> dict:
  stats = {
      "seed": world.seed,
      "size": world.size,
      "entities": len(world.entities),
      "facts": len(world.facts),
      "passages": len(world.passages),
      "near_duplicate_twins": len(world.twins),
  }
  for split, questions in world.splits.items():
    stats[split] = {
        "questions": len(questions),
        "by_type": dict(sorted(collections.Counter(q["type"] for q in questions).items())),
        "by_hops": dict(sorted(collections.Counter(q["hops"] for q in questions).items())),
    }
  return stats
