"""experiments/catalog.py, sweep.py, aggregate.py: configs resolve, records survive kills, intervals are right."""

import dataclasses
import json
import math
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from exsearch_jax.errors import ConfigError, ExsearchError  # pylint: disable=wrong-import-position
from experiments import aggregate, catalog, sweep  # pylint: disable=wrong-import-position


@pytest.mark.parametrize("name", sorted(catalog.EXPERIMENTS))
def test_every_run_of_every_experiment_resolves_its_config(name):
  exp = catalog.EXPERIMENTS[name]
  for size in catalog.SIZES:
    for variant, key in sweep.plan(exp, None, size):
      cfg = exp.config(variant, key.seed, size)
      assert cfg.seed == key.seed
      for dotted, value in {**variant.overrides, **(variant.smoke if size == "smoke" else {})}.items():
        node = cfg
        for part in dotted.split("."):
          node = node[part]
        assert node == value
  assert exp.config(exp.variants[0], 0, "smoke").em.iterations == 1  # smoke sizes are small


def test_unknown_override_field_names_the_field():
  with pytest.raises(ConfigError, match="em.wieghts"):
    catalog.apply_overrides(catalog.load_base("demo"), {"em.wieghts": "paper"}, "here")
  with pytest.raises(ConfigError, match="nope.x"):
    catalog.apply_overrides(catalog.load_base("demo"), {"nope.x": 1}, "here")


def test_experiment_checks_its_variants():
  with pytest.raises(ConfigError, match="distinct"):
    catalog.Experiment("x", "?", "demo", (catalog.Variant("a"), catalog.Variant("a")))
  with pytest.raises(ConfigError, match="reference"):
    catalog.Experiment("x", "?", "demo", (catalog.Variant("a"),), reference="b")
  with pytest.raises(ConfigError, match="label"):
    catalog.Variant("a/b")
  with pytest.raises(ConfigError, match="unknown"):
    catalog.get("nope")
  with pytest.raises(ConfigError, match="rollout"):
    catalog.Variant("b", {"em.iterations": 0}, evaluates="a")
  with pytest.raises(ConfigError, match="training variants"):
    catalog.Experiment("x", "?", "demo", (catalog.Variant("a"), catalog.Variant("b", evaluates="c")))


def test_an_evaluating_variant_takes_its_source_config_and_changes_the_rollout_only():
  exp = catalog.get("baselines")
  cfg = exp.config(exp.variant("single_shot"), 1, "full")
  assert (cfg.em.iterations, cfg.rollout.policy, cfg.rollout.max_steps, cfg.seed) == (0, "question", 1, 1)


def test_runs_with_the_same_config_share_a_directory(tmp_path):
  demo, code = catalog.get("iterations"), catalog.get("weighting")
  key_a, key_b = sweep.RunKey("demo", 0, "full"), sweep.RunKey("code", 0, "full")
  a = sweep.run_directory(str(tmp_path), "iterations", key_a, demo.config(demo.variant("demo"), 0, "full"))
  b = sweep.run_directory(str(tmp_path), "weighting", key_b, code.config(code.variant("code"), 0, "full"))
  assert a == b and os.path.realpath(tmp_path / "full" / "weighting" / "code" / "seed0") == os.path.realpath(a)
  c = sweep.run_directory(
      str(tmp_path), "weighting", sweep.RunKey("paper", 0, "full"), code.config(code.variant("paper"), 0, "full")
  )
  assert c != a


def test_plan_runs_every_variant_of_a_seed_before_the_next_seed():
  exp = catalog.get("weighting")
  keys = [k for _, k in sweep.plan(exp, [0, 1], "full")]
  assert [(k.seed, k.variant) for k in keys[:5]] == [
      (0, s) for s in ("paper", "code", "uniform", "rejection", "balanced")
  ]
  assert len(keys) == 10 and keys[5].seed == 1
  assert [k.seed for _, k in sweep.plan(exp, None, "smoke")] == [0] * 5  # smoke: one seed unless told
  assert [k.variant for _, k in sweep.plan(exp, [2], "full", ["uniform"])] == ["uniform"]


def _record(variant, seed, ems, bound=-1.0):
  evals = [
      {"iteration": i, "em": em, "f1": em, "acc": em, "by_type": {"bridge": [int(em), 100]}} for i, em in enumerate(ems)
  ]
  esteps = [{"iteration": i, "log_marginal_bound": bound} for i in range(1, len(ems))]
  return sweep.RunRecord(
      experiment="weighting",
      key=sweep.RunKey(variant, seed, "full"),
      config_hash="abc",
      evals=evals,
      esteps=esteps,
      correct={0: "01", len(ems) - 1: "11"},
      minutes=1.5,
      revision="r",
      finished="t",
  )


def test_records_round_trip_and_a_torn_last_line_counts_as_not_finished(tmp_path):
  out = str(tmp_path)
  a, b = _record("code", 0, [10, 20]), _record("paper", 0, [10, 30])
  sweep.append_record(out, a)
  sweep.append_record(out, b)
  with open(sweep.runs_path(out, "weighting"), "a", encoding="utf-8") as f:
    f.write('{"experiment": "weighting", "key": {"vari')  # killed while appending
  got = {r.key: r for r in sweep.read_records(out, "weighting")}
  assert got == {a.key: a, b.key: b}
  assert list(got[a.key].last_correct()) == [1.0, 1.0]


def test_a_broken_line_inside_runs_jsonl_is_one_error_naming_file_and_line(tmp_path):
  out = str(tmp_path)
  sweep.append_record(out, _record("code", 0, [10, 20]))
  with open(sweep.runs_path(out, "weighting"), "a", encoding="utf-8") as f:
    f.write("not json\n")
  sweep.append_record(out, _record("code", 1, [10, 20]))
  with pytest.raises(ExsearchError, match=r"runs.jsonl:2: not a run record"):
    sweep.read_records(out, "weighting")


def test_interval_is_the_student_t_interval():
  mean, low, high = aggregate.interval([1.0, 2.0, 3.0])
  assert mean == 2.0 and math.isclose(high - mean, 4.302652729911275 / math.sqrt(3), rel_tol=1e-9)
  assert math.isclose(low, 2 * mean - high)
  one = aggregate.interval([5.0])
  assert one[0] == 5.0 and math.isnan(one[1]) and math.isnan(one[2])
  assert math.isnan(aggregate.interval([])[0])


def test_comparison_pairs_by_seed_and_says_when_a_difference_is_not_significant():
  exp = catalog.get("weighting")
  records = [_record("code", s, [10, em]) for s, em in ((0, 20), (1, 30), (2, 40))]
  records += [_record("paper", s, [10, em]) for s, em in ((0, 25), (1, 36), (2, 44))]  # +5, +6, +4: clear
  records += [_record("uniform", s, [10, em]) for s, em in ((0, 30), (1, 20), (2, 41))]  # +10, -10, +1
  records += [_record("rejection", s, [10, em]) for s, em in ((0, 20 - 25 / 3), (1, 30 - 25 / 3))]  # no spread
  table = aggregate.comparison_table(exp, records)
  row = lambda name: next(line for line in table.splitlines() if line.startswith(f"| {name}"))  # noqa: E731
  assert "| 5.0 (2.5..7.5) | 3 | yes |" in row("paper")
  assert "not significant" in row("uniform")
  assert "| 2 | not judged (the same difference at every seed" in row("rejection")
  assert "| 30.0 (5.2..54.8) | reference |" in table


def test_scores_table_kinds_table_and_plot(tmp_path):
  exp = catalog.get("weighting")
  records = [_record("code", s, [10, 20 + s], bound=-2.0 - s) for s in range(3)]
  scores = aggregate.scores_table(exp, records)
  assert "| code | 3 | 1 | 21.0 (18.5..23.5) |" in scores
  assert "-3.000 (-5.484..-0.516)" in scores
  kinds = aggregate.kinds_table(exp, records)
  assert "| code | last | 63 / 300 |" in kinds
  aggregate.plot(exp, records, str(tmp_path / "p.png"))
  assert (tmp_path / "p.png").stat().st_size > 10_000


def test_gain_table_gives_each_seed_its_bootstrap_and_the_seeds_their_interval():
  exp = catalog.get("weighting")
  records = [_record("code", s, [10, 20]) for s in range(2)]
  for r, last in zip(records, ("1" * 30 + "0" * 70, "1" * 40 + "0" * 60)):
    r.correct = {0: "1" * 10 + "0" * 90, 1: last}
  table = aggregate.gain_table(exp, records)
  assert "| code | 0 | 10.0 | 30.0 | +20.0 |" in table and "| code | 1 | 10.0 | 40.0 | +30.0 |" in table
  assert "| code | mean of 2 | | | +25.0 | Student-t over seeds: -38.5 .. +88.5 |" in table
  low, high = (float(x) for x in table.splitlines()[2].split("|")[6].split(".."))
  assert 10 < low < 20 < high < 30  # 20 of 100 questions turned right: the interval holds the gain, not 0


def test_record_serialises_to_json():
  r = _record("code", 0, [1, 2])
  assert sweep.RunRecord.from_json(json.loads(json.dumps(r.to_json()))) == r


def test_a_run_another_experiment_recorded_with_the_same_config_is_not_trained_again(tmp_path):
  out, root = str(tmp_path / "results"), str(tmp_path / "runs")
  iterations, weighting = catalog.get("iterations"), catalog.get("weighting")
  demo = dataclasses.replace(
      _record("demo", 0, [10, 20]),
      experiment="iterations",
      config_hash=sweep.config_hash(iterations.config(iterations.variant("demo"), 0, "full")),
  )
  sweep.append_record(out, demo)
  planned = sweep.plan(weighting, [0], "full", ["code", "paper"])
  lines = []
  for line in sweep.execute(weighting, planned, out, root, progress=False):
    lines.append(line)
    if "paper" in line:  # its config differs: it would train; stop before it does
      break
  assert lines[0] == "weighting/code seed 0: recorded as iterations/demo"
  assert lines[1].startswith("weighting/paper seed 0: run 2 of 2")
  (got,) = sweep.read_records(out, "weighting")
  assert got.key == sweep.RunKey("code", 0, "full") and got.experiment == "weighting"
  assert (got.evals, got.correct, got.revision) == (demo.evals, demo.correct, demo.revision)
  assert not os.path.exists(os.path.join(root, "full", "weighting", "code"))  # no workdir: nothing trained
