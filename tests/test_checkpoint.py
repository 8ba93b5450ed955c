"""HF directories in and out, and one clear error for each kind of bad checkpoint."""

import json
import os

import numpy as np
import pytest

from exsearch_jax.errors import CheckpointError
from exsearch_jax.models import DecoderConfig, from_pretrained, init_model, save_pretrained
from exsearch_jax.models.safetensors_io import SafetensorsFile, save_file
from tests.hf_reference import hf_logits, make_hf_model

IDS = np.random.default_rng(0).integers(0, 97, (2, 16))


@pytest.mark.parametrize("case", ["llama_mqa_bias", "qwen2_gqa_bias", "mistral_gqa_window", "llama3_rope_scaling"])
def test_save_pretrained_loads_in_transformers_with_same_logits(tmp_path, case):
  from transformers import AutoModelForCausalLM

  hf = make_hf_model(case)
  hf.save_pretrained(tmp_path / "in")
  ours = from_pretrained(str(tmp_path / "in"))
  save_pretrained(ours, str(tmp_path / "out"))
  reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
  assert type(reloaded).__name__ == type(hf).__name__
  assert np.abs(hf_logits(reloaded, IDS) - np.asarray(ours(IDS))).max() <= 1e-4


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_sharded_save_with_index_round_trips(tmp_path):
  model = init_model(
      DecoderConfig(
          vocab_size=97, hidden_size=32, intermediate_size=64, num_layers=3, num_heads=4, num_kv_heads=2, head_dim=8
      ),
      seed=1,
  )
  save_pretrained(model, str(tmp_path), max_shard_bytes=20_000)
  index = json.load(open(tmp_path / "model.safetensors.index.json"))
  assert len(set(index["weight_map"].values())) > 2
  assert np.array_equal(np.asarray(from_pretrained(str(tmp_path))(IDS)), np.asarray(model(IDS)))


def test_bfloat16_save_and_load(tmp_path):
  model = init_model(
      DecoderConfig(
          vocab_size=97, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=4, num_kv_heads=4, head_dim=8
      ),
      seed=2,
  )
  save_pretrained(model, str(tmp_path), dtype="bfloat16")
  assert SafetensorsFile(str(tmp_path / "model.safetensors")).header["model.norm.weight"]["dtype"] == "BF16"
  loaded = from_pretrained(str(tmp_path), dtype="bfloat16")
  assert str(loaded.embed.get_value().dtype) == "bfloat16"
  assert np.abs(np.asarray(loaded(IDS)) - np.asarray(model(IDS))).max() < 0.05


@pytest.fixture
def good_dir(tmp_path):
  hf = make_hf_model("llama_mha_untied")
  hf.save_pretrained(tmp_path / "ckpt")
  return tmp_path / "ckpt"


def _rewrite_config(directory, **changes):
  cfg = json.load(open(directory / "config.json"))
  cfg.update(changes)
  json.dump(cfg, open(directory / "config.json", "w"))


def _rewrite_tensors(directory, edit):
  path = str(directory / "model.safetensors")
  st = SafetensorsFile(path)
  tensors = {k: np.array(st.get(k)) for k in st.keys()}
  del st
  edit(tensors)
  save_file(tensors, path)


def test_missing_config(good_dir):
  os.remove(good_dir / "config.json")
  with pytest.raises(CheckpointError, match=r"config\.json: missing config\.json"):
    from_pretrained(str(good_dir))


def test_missing_directory(tmp_path):
  with pytest.raises(CheckpointError, match="no such checkpoint directory"):
    from_pretrained(str(tmp_path / "nope"))


def test_invalid_json_names_line(good_dir):
  (good_dir / "config.json").write_text('{\n  "vocab_size": 97,\n  oops\n}')
  with pytest.raises(CheckpointError, match=r"config\.json: line 3: invalid JSON"):
    from_pretrained(str(good_dir))


def test_unknown_architecture(good_dir):
  _rewrite_config(good_dir, architectures=["GPT2LMHeadModel"], model_type="gpt2")
  with pytest.raises(CheckpointError, match=r"config\.json: field 'architectures' = \['GPT2LMHeadModel'\]"):
    from_pretrained(str(good_dir))


def test_missing_field(good_dir):
  cfg = json.load(open(good_dir / "config.json"))
  del cfg["intermediate_size"]
  json.dump(cfg, open(good_dir / "config.json", "w"))
  with pytest.raises(CheckpointError, match="missing field 'intermediate_size'"):
    from_pretrained(str(good_dir))


def test_missing_tensor(good_dir):
  _rewrite_tensors(good_dir, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
  with pytest.raises(
      CheckpointError, match=r"model\.safetensors: tensor 'model\.layers\.1\.mlp\.up_proj\.weight' is missing"
  ):
    from_pretrained(str(good_dir))


def test_wrong_shape(good_dir):
  def shrink(t):
    t["model.layers.0.self_attn.k_proj.weight"] = t["model.layers.0.self_attn.k_proj.weight"][:8]

  _rewrite_tensors(good_dir, shrink)
  with pytest.raises(CheckpointError, match=r"k_proj\.weight' has shape \(8, 64\), the config implies \(64, 64\)"):
    from_pretrained(str(good_dir))


def test_truncated_safetensors(good_dir):
  path = good_dir / "model.safetensors"
  data = path.read_bytes()
  path.write_bytes(data[: len(data) - 1000])
  with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated safetensors file: tensor"):
    from_pretrained(str(good_dir))
  path.write_bytes(data[:5])
  with pytest.raises(CheckpointError, match="truncated safetensors file .*no header"):
    from_pretrained(str(good_dir))


def test_index_naming_a_missing_shard(tmp_path):
  model = init_model(
      DecoderConfig(
          vocab_size=97, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8
      )
  )
  save_pretrained(model, str(tmp_path), max_shard_bytes=20_000)
  shard = sorted(p for p in os.listdir(tmp_path) if p.endswith(".safetensors"))[-1]
  os.remove(tmp_path / shard)
  with pytest.raises(CheckpointError, match=f"lists shard .*{shard} which does not exist"):
    from_pretrained(str(tmp_path))


def test_gguf_of_unsupported_architecture(tmp_path):
  import gguf

  path = str(tmp_path / "gpt2.gguf")
  writer = gguf.GGUFWriter(path, "gpt2")
  writer.add_block_count(1)
  writer.add_tensor("token_embd.weight", np.zeros((8, 4), np.float32))
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  with pytest.raises(CheckpointError, match=r"gpt2\.gguf: field 'general\.architecture' = 'gpt2' is not supported"):
    from_pretrained(path)


def test_gguf_not_a_gguf_file(tmp_path):
  path = tmp_path / "junk.gguf"
  path.write_bytes(b"definitely not gguf" * 10)
  with pytest.raises(CheckpointError, match=r"junk\.gguf: not a readable GGUF file"):
    from_pretrained(str(path))
  with pytest.raises(CheckpointError, match="no such GGUF file"):
    from_pretrained(str(tmp_path / "absent.gguf"))
