"""EM / F1 / Acc follow the official SQuAD/HotpotQA normalisation and FlashRAG's acc, case by case."""

import pytest

from exsearch_jax.eval import (MetricError, accuracy, corpus_metrics, exact_match, extract_answer, f1, normalize_answer)


@pytest.mark.parametrize(
    "raw,normalised",
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("a  cat and AN apple", "cat and apple"),
        ("Theatre", "theatre"),  # articles are whole words only
        ("Ai Weiwei", "ai weiwei"),  # guards the reference bug that strips 'a' and 'i'
        ("Iran", "iran"),
        ("I, Robot", "i robot"),
        ("Washington, D.C.!", "washington dc"),
        ("  rock  'n'  roll ", "rock n roll"),
        ("Zürich", "zürich"),
        ("São Paulo", "são paulo"),
        ("東京", "東京"),
        ("Ærøskøbing", "ærøskøbing"),
        ("“Quoted”", "“quoted”"),  # official: only ASCII punctuation is removed
        ("1,000", "1000"),  # the thousands comma is punctuation: "1,000" == "1000"
        ("3.5", "35"),  # ... and so is the decimal point
        ("the-the", "thethe"),  # punctuation goes before articles: "thethe" is no article
        ("", ""),
    ],
)
def test_normalize_answer(raw, normalised):
  assert normalize_answer(raw) == normalised


def test_numbers_as_official():
  assert exact_match("1,000", "1000") == 1.0
  assert exact_match("1 000", "1000") == 0.0
  assert exact_match("one thousand", "1000") == 0.0


def test_exact_match_and_multiple_golds():
  assert exact_match("the Eiffel tower.", "Eiffel Tower") == 1.0
  assert exact_match("Paris", ["London", "paris"]) == 1.0
  assert exact_match("Paris, France", ["Paris"]) == 0.0
  assert exact_match("Zurich", "Zürich") == 0.0  # accents are not folded (official behaviour)


def test_f1():
  assert f1("Paris France", "Paris") == pytest.approx(2 * 0.5 * 1 / 1.5)
  assert f1("the cat sat", ["a dog", "cat sat down"]) == pytest.approx(0.8)
  assert f1("Steve Hillage", "steve hillage") == 1.0
  assert f1("nothing in common", "Paris") == 0.0


def test_yes_no_rule():
  assert f1("yes", "yes") == 1.0
  assert f1("yes", "no") == 0.0
  assert f1("yes it is", "yes") == 0.0  # gold is yes/no and they differ: no partial credit
  assert f1("no", "no way") == 0.0  # prediction is yes/no and they differ
  assert f1("noanswer", "no answer") == 0.0
  assert exact_match("Yes.", "yes") == 1.0


def test_accuracy_is_substring():
  assert accuracy("It was Steve Hillage, the guitarist.", "Steve Hillage") == 1.0
  assert accuracy("Hillage", "Steve Hillage") == 0.0
  assert accuracy("in 1,000 years", ["900", "1000"]) == 1.0
  assert accuracy("anything", ["the"]) == 0.0  # a gold that normalises to nothing matches nothing


@pytest.mark.parametrize("metric", [exact_match, f1, accuracy])
def test_empty_prediction_scores_zero(metric):
  assert metric("", "Paris") == 0.0
  assert metric(None, "Paris") == 0.0
  assert metric("the", ["the", "a"]) == 0.0  # empty after normalisation


@pytest.mark.parametrize("metric", [exact_match, f1, accuracy])
def test_no_golds_is_an_error(metric):
  with pytest.raises(MetricError, match="no gold answers"):
    metric("Paris", [])


def test_corpus_metrics():
  got = corpus_metrics(["Paris", "the cat sat", "", "yes"], ["Paris", ["cat sat down"], "x", "no"])
  assert got["n"] == 4
  assert got["em"] == pytest.approx(1 / 4)
  assert got["f1"] == pytest.approx((1 + 0.8) / 4)
  assert got["acc"] == pytest.approx(1 / 4)
  with pytest.raises(MetricError, match="2 predictions but 1 gold"):
    corpus_metrics(["a", "b"], ["a"])
  with pytest.raises(MetricError, match="no predictions"):
    corpus_metrics([], [])


@pytest.mark.parametrize(
    "text,answer",
    [
        ("Paris", "Paris"),
        ("  Paris.  \n", "Paris"),
        ("Steve Hillage<|im_end|>", "Steve Hillage"),
        ("<|im_start|>assistant\nMiquette Giraudy<|im_end|>", "Miquette Giraudy"),
        ("<|start_header_id|>assistant<|end_header_id|>\n\nParis<|eot_id|>", "Paris"),
        ("The answer is Ai Weiwei.", "Ai Weiwei"),
        ("Let me think. Answer: 1,000\nBecause ...", "1,000"),
        ("answer: wrong\nFinal answer: **Iran**.", "Iran"),
        ('The answer is: "São Paulo"', "São Paulo"),
        ("Washington D.C.", "Washington D.C"),
        ("The answer isolates nothing", "The answer isolates nothing"),
        ("", ""),
        (None, ""),
    ],
)
def test_extract_answer(text, answer):
  assert extract_answer(text) == answer
