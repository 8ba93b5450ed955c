"""TFDS builders for the QA benchmarks: array_record files in file order, readable without TensorFlow.

`QABuilder` holds everything shared (features, version, file format, validation); a builder only says
which sources make its splits and yields example dicts in the common form (`examples.py`) from each:

    class World(QABuilder):
      def _split_sources(self, dl_manager): return {"train": "train", "dev": "dev"}
      def _generate_examples(self, source): yield from make_world(...).splits[source]

The benchmark builders (`ManualQABuilder`) read files the user downloads into `manual_dir`; the config
names the file of each split. Prepared data is cached in `data_dir`: delete it after changing a file.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from exsearch_jax.data import qa_formats
from exsearch_jax.data.examples import DatasetError, check_unique_ids, complete, to_features

BUILDERS: dict[str, type] = {}  # name -> builder class, filled as builder classes are defined


def features() -> tfds.features.FeaturesDict:
  """The stored features: the common example form, with the decomposition as JSON text."""
  text, texts = tfds.features.Text(), tfds.features.Sequence(tfds.features.Text())
  return tfds.features.FeaturesDict(
      {
          "id": text,
          "question": text,
          "golden_answers": texts,
          "supporting_ids": texts,
          "supporting_titles": texts,
          "hops": tfds.features.Scalar(dtype=np.int32),
          "type": text,
          "decomposition": text,
      }
  )


class QABuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):  # type: ignore[call-arg]
  """Shared base: subclasses implement `_split_sources` and `_generate_examples(source)` (yielding dicts)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  HOMEPAGE = ""

  def __init_subclass__(cls, skip_registration: bool = False, **kwargs):
    super().__init_subclass__(skip_registration=skip_registration, **kwargs)
    if not skip_registration:
      BUILDERS[cls.name] = cls

  def __init__(self, **kwargs):
    kwargs.setdefault("file_format", "array_record")  # the format `as_data_source` reads without TensorFlow
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(self.__doc__ or "").strip(),
        features=features(),
        homepage=self.HOMEPAGE or None,
        disable_shuffling=True,
    )

  def _split_sources(self, dl_manager) -> dict:
    """{split name: whatever `_generate_examples` needs to produce that split}."""
    raise NotImplementedError

  def _split_generators(self, dl_manager):
    return {split: self._encoded(split, source) for split, source in self._split_sources(dl_manager).items()}

  def _encoded(self, split: str, source) -> Iterator[tuple[int, dict]]:
    """Keys are positions, so with shuffling disabled the stored order is the generated order."""
    config = f"/{self.builder_config.name}" if self.builder_config else ""
    where = f"{self.name}{config} split {split!r} example"
    pairs = ((f"{where} {i}", complete(ex, f"{where} {i}")) for i, ex in enumerate(self._generate_examples(source)))
    for i, example in enumerate(check_unique_ids(pairs)):
      yield i, to_features(example)


@dataclasses.dataclass(eq=False)
class QAConfig(tfds.core.BuilderConfig):
  """`files`: split -> file name in manual_dir (or an absolute path)."""

  files: dict = dataclasses.field(default_factory=dict)


class ManualQABuilder(QABuilder, skip_registration=True):
  """A benchmark read from files in `manual_dir`; a split whose file is absent is left out."""

  SOURCE = ""  # where the files are published
  READER: Any = None  # qa_formats reader: (path, labelled) -> examples
  UNLABELLED_SPLITS: tuple[str, ...] = ("test",)  # files that ship without answers

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    if cls.SOURCE and "MANUAL_DOWNLOAD_INSTRUCTIONS" not in cls.__dict__:
      cls.MANUAL_DOWNLOAD_INSTRUCTIONS = cls.instructions()

  @classmethod
  def instructions(cls, config: QAConfig | None = None) -> str:
    configs = [config] if config else cls.BUILDER_CONFIGS
    files = sorted({f for c in configs for f in c.files.values()})
    return f"Download from {cls.SOURCE} and put the files of the splits you need in manual_dir: " + ", ".join(files)

  def split_path(self, split: str, manual_dir: str | None) -> str:
    """Where the file of `split` is expected (DatasetError if the config has no such split)."""
    files = self.builder_config.files
    if split not in files:
      raise DatasetError(f"{self.name}/{self.builder_config.name}: no split {split!r} (splits: {sorted(files)})")
    return os.path.join(os.fspath(manual_dir) if manual_dir else "", files[split])

  def _split_sources(self, dl_manager) -> dict:
    try:
      root = os.fspath(dl_manager.manual_dir)
    except AssertionError:  # TFDS: manual_dir missing or empty
      root = None
    paths = {split: self.split_path(split, root) for split in self.builder_config.files}
    found = {split: path for split, path in paths.items() if os.path.isfile(path)}
    if not found:
      shown = root or os.fspath(getattr(dl_manager, "_manual_dir", "") or "(none)")
      raise DatasetError(
          f"{self.name}/{self.builder_config.name}: none of the expected files is in manual_dir "
          f"{shown}. {self.instructions(self.builder_config)}"
      )
    return {split: (path, split not in self.UNLABELLED_SPLITS) for split, path in found.items()}

  def _generate_examples(self, source):
    path, labelled = source
    return type(self).READER(path, labelled)


class Hotpotqa(ManualQABuilder):
  """HotpotQA (Yang et al., 2018): 2-hop Wikipedia questions, bridge and comparison."""

  name = "hotpotqa"
  HOMEPAGE = SOURCE = "http://curtis.ml.cmu.edu/datasets/hotpot/"
  READER = staticmethod(qa_formats.read_hotpotqa)
  BUILDER_CONFIGS = [
      QAConfig(
          name="distractor",
          description="Dev questions with 2 gold + 8 distractor paragraphs.",
          files={"train": "hotpot_train_v1.1.json", "dev": "hotpot_dev_distractor_v1.json"},
      ),
      QAConfig(
          name="fullwiki",
          description="Open-domain setting; the test file has no answers.",
          files={
              "train": "hotpot_train_v1.1.json",
              "dev": "hotpot_dev_fullwiki_v1.json",
              "test": "hotpot_test_fullwiki_v1.json",
          },
      ),
  ]


class TwoWikiMultihopQa(ManualQABuilder):
  """2WikiMultihopQA (Ho et al., 2020): 2- and 4-hop questions with evidence triples."""

  name = "two_wiki_multihop_qa"  # TFDS names follow Python naming: no leading digit
  HOMEPAGE = SOURCE = "https://github.com/Alab-NII/2wikimultihop"
  READER = staticmethod(qa_formats.read_2wikimultihopqa)
  BUILDER_CONFIGS = [QAConfig(name="default", files={"train": "train.json", "dev": "dev.json", "test": "test.json"})]


class Musique(ManualQABuilder):
  """MuSiQue-Ans (Trivedi et al., 2022): 2-4-hop composed questions with decompositions."""

  name = "musique"
  HOMEPAGE = SOURCE = "https://github.com/StonyBrookNLP/musique"
  READER = staticmethod(qa_formats.read_musique)
  BUILDER_CONFIGS = [
      QAConfig(name="ans", files={split: f"musique_ans_v1.0_{split}.jsonl" for split in ("train", "dev", "test")})
  ]


class Bamboogle(ManualQABuilder):
  """Bamboogle (Press et al., 2022): 125 2-hop questions that search engines answer wrongly."""

  name = "bamboogle"
  HOMEPAGE = "https://github.com/ofirpress/self-ask"
  SOURCE = f"{HOMEPAGE} (the Bamboogle Google Sheet it links, saved as CSV)"
  READER = staticmethod(qa_formats.read_bamboogle)
  UNLABELLED_SPLITS = ()
  BUILDER_CONFIGS = [QAConfig(name="default", files={"test": "Bamboogle Prerelease - Sheet1.csv"})]


class NqOpen(ManualQABuilder):
  """NQ-open (Lee et al., 2019): Natural Questions with short answers, open-domain."""

  name = "nq_open"
  HOMEPAGE = SOURCE = "https://github.com/google-research-datasets/natural-questions/tree/master/nq_open"
  READER = staticmethod(qa_formats.read_nq_open)
  BUILDER_CONFIGS = [QAConfig(name="default", files={"train": "NQ-open.train.jsonl", "dev": "NQ-open.dev.jsonl"})]


# config name -> FlashRAG's folder (config names follow Python naming, as TFDS requires)
FLASHRAG_DATASETS = {
    "nq": "nq",
    "triviaqa": "triviaqa",
    "popqa": "popqa",
    "hotpotqa": "hotpotqa",
    "two_wiki_multihop_qa": "2wikimultihopqa",
    "musique": "musique",
    "bamboogle": "bamboogle",
}


def flashrag_config(name: str, files: dict) -> QAConfig:
  """A FlashRAG-format config over any files: `files` maps split -> path (absolute, or under manual_dir)."""
  return QAConfig(name=name, description="FlashRAG-format QA jsonl.", files=dict(files))


class FlashragQa(ManualQABuilder):
  """Any QA file in FlashRAG's jsonl form (`id`, `question`, `golden_answers`): its preprocessed benchmarks."""

  name = "flashrag_qa"
  HOMEPAGE = SOURCE = "https://huggingface.co/datasets/RUC-NLPIR/FlashRAG_datasets"
  READER = staticmethod(qa_formats.read_flashrag)
  UNLABELLED_SPLITS = ()
  BUILDER_CONFIGS = [
      flashrag_config(name, {split: f"{folder}/{split}.jsonl" for split in ("train", "dev", "test")})
      for name, folder in FLASHRAG_DATASETS.items()
  ]
