"""Encoder: sentence-transformers parity for all-MiniLM-L6-v2, bounded compiles, mesh == no mesh, clear errors."""

import os

import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec

from exsearch_jax.assets import asset_path
from exsearch_jax.errors import CheckpointError
from exsearch_jax.models.encoder import EncoderConfig, TextEncoder, length_bucket, load_encoder
from exsearch_jax.models.safetensors_io import SafetensorsFile, save_file
from exsearch_jax.sharding import make_mesh

LONG = "Retrieval augmented generation interleaves search queries with reasoning steps. " * 40
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "!!!???...;;; --- ***",
    "Crème brûlée, naïve café, Zürich, São Paulo and Ærøskøbing.",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "北京烤鸭很好吃",
    "I love pizza 🍕🍕 and rockets 🚀!",
    "🙂",
    "",
    "a",
    LONG,
    "Москва — столица России.",
    "القاهرة هي عاصمة مصر",
    "def square(x): return x ** 2  # the square",
    "3.14159 2.71828 1.41421 1729",
    "https://example.com/path?query=1&b=2",
    "ALL CAPS SHOUTING TEXT",
    "Who wrote the novel 'War and Peace'?",
    "Leo Tolstoy wrote War and Peace, which was published in full in 1869.",
    "Die Straße ist nass und die Brücke über den Fluss ist alt.",
    "नमस्ते दुनिया",
    " ".join(["A medium length passage about rivers, mountains and the history of trade routes."] * 4),
    " ".join(["Dense retrievers embed questions and passages into one vector space."] * 9),
]
BATCH = 5  # 24 texts: four full batches and a padded partial one


@pytest.fixture(scope="module")
def minilm():
  return asset_path("all-minilm-l6-v2")


@pytest.fixture(scope="module")
def loaded(minilm):
  return load_encoder(minilm)


@pytest.fixture(scope="module")
def reference(minilm):
  from sentence_transformers import SentenceTransformer

  return SentenceTransformer(minilm, device="cpu").encode(TEXTS, batch_size=64, convert_to_numpy=True)


@pytest.fixture(scope="module")
def encoded(loaded):
  """One TextEncoder; small batches, so that several length buckets and a partial last batch occur."""
  encoder = TextEncoder(*loaded)
  return encoder, encoder.encode(TEXTS, batch_size=BATCH)


def _cosine(a, b):
  return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_config_reads_sentence_transformers_files(loaded):
  config = loaded[0].config
  assert (config.pooling, config.normalize, config.max_seq_length) == ("mean", True, 256)
  assert (config.num_layers, config.hidden_size, config.num_heads, config.hidden_act) == (6, 384, 12, "gelu")


def test_matches_sentence_transformers_in_order(loaded, encoded, reference):
  lengths = [len(ids) for ids in loaded[1](TEXTS)["input_ids"]]
  assert max(lengths) > 256, "the long text must exercise truncation"
  ours = encoded[1]
  assert ours.shape == reference.shape == (len(TEXTS), 384) and ours.dtype == np.float32
  deficit = 1.0 - _cosine(ours, reference)
  worst = int(np.argmax(deficit))
  assert deficit.max() <= 1e-4, f"text {worst} {TEXTS[worst][:40]!r}: cosine deficit {deficit[worst]}"
  assert np.abs(ours - reference).max() <= 1e-5  # tighter than the cosine: catches e.g. tanh-approximated GELU
  assert np.abs(np.linalg.norm(ours, axis=1) - 1.0).max() <= 1e-5


def test_compiles_bounded_and_order_restored(loaded, encoded):
  encoder, ours = encoded
  lengths = sorted(len(ids) for ids in loaded[1](TEXTS, truncation=True, max_length=256)["input_ids"])
  longest = [max(lengths[i : i + BATCH]) for i in range(0, len(lengths), BATCH)]  # batches of sorted texts
  used = {length_bucket(n, 256) for n in longest}
  assert 1 <= encoder.compiles <= len(used) < len(longest), (encoder.compiles, sorted(used))
  before = encoder.compiles
  backwards = encoder.encode(TEXTS[::-1], batch_size=BATCH)  # same shapes, another order: no new program
  assert encoder.compiles == before
  np.testing.assert_allclose(backwards, ours[::-1], atol=1e-5)
  alone = encoder.encode([TEXTS[2]])  # another batch composition and shape, same embedding
  np.testing.assert_allclose(alone[0], ours[2], atol=1e-5)
  assert encoder.encode([]).shape == (0, 384)


def test_length_buckets():
  assert [length_bucket(n, 256) for n in (0, 1, 16, 17, 33, 64, 65, 130, 256, 300)] == [
      16,
      16,
      16,
      32,
      48,
      64,
      80,
      144,
      256,
      256,
  ]
  assert [length_bucket(n, 512) for n in (257, 300, 512, 600)] == [320, 320, 512, 512]


@pytest.mark.parametrize("shape", [{"data": 8}, {"data": 2, "fsdp": 2, "tensor": 2}])
def test_mesh_matches_single_device(minilm, encoded, shape):
  mesh = make_mesh(shape)
  model, tokenizer = load_encoder(minilm, mesh=mesh)
  expected = PartitionSpec("tensor", "fsdp") if shape.get("tensor") else PartitionSpec(None, None)
  assert model.word[...].sharding.spec == expected
  picks = [0, 3, 5, 8, 9, 11, 16, 22, 23]  # three buckets, 9 rows: the batch is padded to the data shards
  encoder = TextEncoder(model, tokenizer, mesh=mesh)
  got = encoder.encode([TEXTS[i] for i in picks], batch_size=8)
  assert np.abs(got - encoded[1][picks]).max() <= 1e-5


def _checkpoint_copy(minilm, target, tensors=None):
  """`target` with links to the MiniLM files; model.safetensors rewritten from `tensors` when given."""
  os.makedirs(target, exist_ok=True)
  for name in os.listdir(minilm):
    if name != "model.safetensors" or tensors is None:
      os.symlink(os.path.join(minilm, name), os.path.join(target, name))
  if tensors is not None:
    save_file(tensors, os.path.join(target, "model.safetensors"))
  return str(target)


def test_missing_config_names_the_file(minilm, tmp_path):
  path = _checkpoint_copy(minilm, tmp_path / "ckpt")
  os.remove(os.path.join(path, "config.json"))
  with pytest.raises(CheckpointError, match=os.path.join(path, "config.json")):
    load_encoder(path)


@pytest.mark.parametrize("damage", ["missing", "wrong shape"])
def test_bad_tensor_names_the_file(minilm, tmp_path, damage):
  st = SafetensorsFile(os.path.join(minilm, "model.safetensors"))
  name = "encoder.layer.3.attention.self.key.bias"
  tensors = {k: np.asarray(st.get(k)) for k in st.keys()}
  if damage == "missing":
    del tensors[name]
  else:
    tensors[name] = tensors[name][:100]
  path = _checkpoint_copy(minilm, tmp_path / "ckpt", tensors)
  with pytest.raises(CheckpointError, match=r"ckpt/model\.safetensors: tensor '" + name.replace(".", r"\.")) as e:
    load_encoder(path)
  assert ("(100,)" in str(e.value)) == (damage == "wrong shape")


def test_bert_prefixed_tensors_load_the_same(minilm, loaded, tmp_path):
  st = SafetensorsFile(os.path.join(minilm, "model.safetensors"))
  path = _checkpoint_copy(minilm, tmp_path / "ckpt", {"bert." + k: np.asarray(st.get(k)) for k in st.keys()})
  model, _ = load_encoder(path)
  assert model.config == EncoderConfig.from_directory(minilm)
  same = [
      bool((np.asarray(a) == np.asarray(b)).all())
      for a, b in zip(jax.tree.leaves(nnx.state(model)), jax.tree.leaves(nnx.state(loaded[0])))
  ]
  assert len(same) == 6 * 16 + 5 and all(same)
