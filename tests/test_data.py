"""TFDS builders: each prepares from a manual_dir into tmp_path and round-trips through `as_data_source`,
with no TensorFlow; missing and malformed files give one clear error."""

import importlib.util
import os
import sys

import pytest
import tensorflow_datasets as tfds

from exsearch_jax.data import (
    DatasetError,
    load_split,
    read_2wikimultihopqa,
    read_bamboogle,
    read_flashrag,
    read_hotpotqa,
    read_musique,
    read_nq_open,
)
from exsearch_jax.data.builders import BUILDERS, Hotpotqa, QABuilder, flashrag_config
from tests.shared_data import shared_file

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "qa")


@pytest.mark.parametrize(
    "name,split,subdir,file,reader,labelled",
    [
        ("hotpotqa/distractor", "dev", "hotpotqa", "hotpot_dev_distractor_v1.json", read_hotpotqa, True),
        ("hotpotqa/fullwiki", "test", "hotpotqa", "hotpot_test_fullwiki_v1.json", read_hotpotqa, False),
        ("two_wiki_multihop_qa", "dev", "2wikimultihopqa", "dev.json", read_2wikimultihopqa, True),
        ("musique", "dev", "musique", "musique_ans_v1.0_dev.jsonl", read_musique, True),
        ("musique/ans", "test", "musique", "musique_ans_v1.0_test.jsonl", read_musique, False),
        ("bamboogle", "test", "bamboogle", "Bamboogle Prerelease - Sheet1.csv", read_bamboogle, True),
        ("nq_open", "dev", "nq_open", "NQ-open.dev.jsonl", read_nq_open, True),
        ("flashrag_qa/hotpotqa", "dev", "flashrag", os.path.join("hotpotqa", "dev.jsonl"), read_flashrag, True),
    ],
)
def test_builder_round_trip(tmp_path, name, split, subdir, file, reader, labelled):
  manual = os.path.join(FIXTURES, subdir)
  got = load_split(name, split, manual_dir=manual, data_dir=str(tmp_path))
  assert got == list(reader(os.path.join(manual, file), labelled))  # every field, in file order
  assert list(tmp_path.glob(f"{name.split('/')[0]}/**/*.array_record-*"))
  assert load_split(name, split, manual_dir=manual, data_dir=str(tmp_path)) == got  # prepared once, read again
  assert len(tfds.data_source(name, split=split, data_dir=str(tmp_path))) == len(got)  # plain TFDS, by name


def test_real_nq_sample_through_flashrag_builder(tmp_path):
  path = shared_file("nq_sample_16.jsonl")
  config = flashrag_config("nq_sample", {"test": path})
  got = load_split("flashrag_qa", "test", data_dir=str(tmp_path), config=config)
  with open(path, encoding="utf-8") as f:
    lines = sum(1 for line in f if line.strip())  # 17 questions, though the name says 16
  assert len(got) == lines >= 16 and [e["id"] for e in got] == [f"test_{i}" for i in range(lines)]
  assert got[0]["golden_answers"] == ["Wilhelm Conrad Röntgen"]
  assert got == list(read_flashrag(path))


def test_missing_split_file_names_it(tmp_path):
  with pytest.raises(
      DatasetError,
      match=r"musique/ans: split 'train' needs .*musique_ans_v1\.0_train\.jsonl, which is "
      r"missing\. Download from https://github\.com/StonyBrookNLP/musique",
  ):
    load_split("musique", "train", manual_dir=os.path.join(FIXTURES, "musique"), data_dir=str(tmp_path))


def test_empty_manual_dir_names_every_file(tmp_path):
  builder = Hotpotqa(config="fullwiki", data_dir=str(tmp_path / "data"))
  (tmp_path / "manual").mkdir()
  with pytest.raises(DatasetError) as err:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "manual")))
  message = str(err.value)
  assert "hotpotqa/fullwiki: none of the expected files is in manual_dir" in message
  for file in (
      "hotpot_train_v1.1.json",
      "hotpot_dev_fullwiki_v1.json",
      "hotpot_test_fullwiki_v1.json",
      "http://curtis.ml.cmu.edu/datasets/hotpot/",
  ):
    assert file in message
  assert "hotpot_dev_distractor_v1.json" in Hotpotqa.MANUAL_DOWNLOAD_INSTRUCTIONS


def test_split_missing_from_prepared_data(tmp_path):
  manual = os.path.join(FIXTURES, "hotpotqa")  # holds the fullwiki test file only
  load_split("hotpotqa/fullwiki", "test", manual_dir=manual, data_dir=str(tmp_path))
  with pytest.raises(DatasetError, match=r"split 'dev' is not in the data prepared at .*delete that folder"):
    load_split("hotpotqa/fullwiki", "dev", manual_dir=manual, data_dir=str(tmp_path))


def test_unknown_names(tmp_path):
  with pytest.raises(DatasetError, match=r"unknown dataset 'hotpot' \(known: .*hotpotqa"):
    load_split("hotpot", "dev", data_dir=str(tmp_path))
  with pytest.raises(DatasetError, match=r"no config 'open' \(configs: distractor, fullwiki\)"):
    load_split("hotpotqa/open", "dev", data_dir=str(tmp_path))
  with pytest.raises(DatasetError, match=r"bamboogle/default: no split 'dev' \(splits: \['test'\]\)"):
    load_split("bamboogle", "dev", manual_dir=os.path.join(FIXTURES, "bamboogle"), data_dir=str(tmp_path))


def test_malformed_manual_file(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "NQ-open.dev.jsonl").write_text(
      '{"question": "q", "answer": ["a"]}\n{"question": "q2"}\n', encoding="utf-8"
  )
  with pytest.raises(DatasetError, match=r"NQ-open\.dev\.jsonl:2: missing field 'answer'"):
    load_split("nq_open", "dev", manual_dir=str(manual), data_dir=str(tmp_path / "data"))


class _Generated(QABuilder):
  """A builder of generated questions, as the synthetic world is: no manual files, partial dicts."""

  name = "exsearch_test_generated"
  QUESTIONS = {
      "train": [
          {
              "id": "g0",
              "question": "Who?",
              "golden_answers": ["Ann"],
              "hops": 2,
              "internal": (1, 2),
              "decomposition": [{"query": "q", "fact": "f", "passage_id": "w000001"}],
          },
          {"id": "g1", "question": "What?", "golden_answers": ["Bo"], "supporting_ids": ["w000002"]},
      ],
      "broken": [{"id": "g0", "question": "Who?", "golden_answers": ["Ann"]}, {"id": "g1", "golden_answers": []}],
  }

  def _split_sources(self, dl_manager):
    return {split: split for split in self.QUESTIONS if split in self._splits}

  def _generate_examples(self, source):
    yield from self.QUESTIONS[source]

  def __init__(self, splits=("train",), **kwargs):
    self._splits = splits
    super().__init__(**kwargs)


def test_generated_builder(tmp_path):
  assert BUILDERS["exsearch_test_generated"] is _Generated
  got = load_split("exsearch_test_generated", "train", data_dir=str(tmp_path))
  assert got[0] == {
      "id": "g0",
      "question": "Who?",
      "golden_answers": ["Ann"],
      "supporting_ids": [],
      "supporting_titles": [],
      "hops": 2,
      "type": "",
      "decomposition": [{"query": "q", "fact": "f", "passage_id": "w000001"}],
  }
  assert got[1]["supporting_ids"] == ["w000002"] and got[1]["hops"] == 0
  broken = _Generated(splits=("broken",), data_dir=str(tmp_path / "broken"))
  with pytest.raises(
      DatasetError, match=r"exsearch_test_generated split 'broken' example 1 \(id 'g1'\): missing field " r"'question'"
  ):
    broken.download_and_prepare()


def test_reads_without_tensorflow(tmp_path):
  """The environment has no TensorFlow, and building and reading array_record data does not need it."""
  if importlib.util.find_spec("tensorflow") is not None:
    pytest.skip("TensorFlow is installed here; this test checks the TensorFlow-free path")
  got = load_split("bamboogle", "test", manual_dir=os.path.join(FIXTURES, "bamboogle"), data_dir=str(tmp_path))
  assert len(got) == 4 and got[3]["golden_answers"] == ["Joss Whedon"]
  assert "tensorflow" not in sys.modules


def test_manual_dir_required(tmp_path):
  with pytest.raises(
      DatasetError,
      match=r"nq_open/default: pass manual_dir, the folder holding 'NQ-open\.dev\.jsonl'\. "
      r"Download from https://github\.com/google-research-datasets",
  ):
    load_split("nq_open", "dev", data_dir=str(tmp_path))
