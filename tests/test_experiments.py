"""experiments/em_run.py: the tables an EM run's results are read from."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import em_run  # pylint: disable=wrong-import-position


def _trajectory(qid, answer, queries, gold):
  return {
      "question_id": qid,
      "answer": answer,
      "golden_answers": [gold],
      "steps": [{"query": q, "fact": ""} for q in queries],
  }


def test_estep_by_kind_counts_questions_with_a_correct_sample_and_repeated_queries(tmp_path):
  questions = [
      {"id": "a", "type": "bridge", "hops": 2},
      {"id": "b", "type": "bridge", "hops": 2},
      {"id": "c", "type": "compositional", "hops": 3},
  ]
  rows = [
      _trajectory("a", "Paris", ["Who founded X?", "Where was Y born?"], "paris"),  # right (normalised)
      _trajectory("a", "Rome", ["Who founded X?", "who founded x? "], "paris"),  # repeats a query
      _trajectory("b", "Oslo", ["Q"], "Bergen"),
      _trajectory("c", None, [], "Lyon"),
  ]
  os.makedirs(tmp_path / "estep" / "1")
  with open(tmp_path / "estep" / "1" / "trajectories.jsonl", "w", encoding="utf-8") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  lines = em_run._estep_kinds_table(str(tmp_path), questions).splitlines()  # pylint: disable=protected-access
  assert lines[2] == "| 1 | bridge | 1 / 2 | 1 / 3 | 1.67 | 0.33 |"
  assert lines[3] == "| 1 | compositional-3 | 0 / 1 | 0 / 1 | 0.00 | 0.00 |"


def test_estep_by_kind_before_the_first_e_step(tmp_path):
  assert em_run._estep_kinds_table(str(tmp_path), []) == "no E-step yet"  # pylint: disable=protected-access


def test_phase_minutes_add_up_the_parts_of_a_resumed_phase():
  table = em_run._phases_table(
      [
          {"phase": "estep/1", "seconds": 60},
          {"phase": "estep/1", "seconds": 30},  # pylint: disable=protected-access
          {"phase": "mstep/1", "seconds": 90},
      ]
  )
  assert "| estep/1 | 1.5 |" in table and "| total | 3.0 |" in table
