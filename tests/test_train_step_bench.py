"""The train-step benchmark compares like with like: its PyTorch step is our step (loss, clipping, AdamW)."""

import importlib.util
import os
import tempfile

import jax
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from exsearch_jax.em.sequences import pack  # noqa: E402
from exsearch_jax.em.train_step import Trainer, make_optimizer  # noqa: E402
from exsearch_jax.models import DecoderConfig, init_model, save_pretrained  # noqa: E402
from exsearch_jax.models.weight_layout import weight_specs  # noqa: E402

_PATH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "train_step.py")
_spec = importlib.util.spec_from_file_location("train_step_bench", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

CONFIG = DecoderConfig(
    vocab_size=97,
    hidden_size=64,
    intermediate_size=96,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=16,
    tie_word_embeddings=True,
    max_position_embeddings=256,
)


def test_torch_step_equals_our_step():
  ours = init_model(CONFIG, seed=1)
  with tempfile.TemporaryDirectory() as directory:
    save_pretrained(ours, directory)
    reference = transformers.LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32).train()
  # Adam eps 1e-4 on both sides: with 1e-8 a ~0 gradient (a dead MLP unit) turns the two libraries' float
  # rounding into steps of different size
  trainer = Trainer(ours, make_optimizer(grad_clip=1.0, eps=1e-4), None)
  step_t = bench.torch_step(reference, 1e-2, eps=1e-4)
  batch = pack(bench.make_examples(6, 64, CONFIG.vocab_size, seed=2), 1, 6, 64)
  assert batch.attention_mask.sum() < batch.attention_mask.size  # some padding
  for _ in range(3):
    m_ours, m_torch = trainer.update(batch, 1e-2), step_t(*bench.torch_batch(batch))
    np.testing.assert_allclose(m_ours["loss"], m_torch["loss"], rtol=1e-4)
    np.testing.assert_allclose(m_ours["grad_norm"], m_torch["grad_norm"], rtol=1e-3)
  state = dict(nnx.to_flat_state(nnx.state(trainer.model(), nnx.Param)))
  hf = {k: v.detach().numpy() for k, v in reference.state_dict().items()}
  for spec in weight_specs(CONFIG):
    mine = spec.to_hf(np.asarray(jax.device_get(state[spec.path].get_value())))
    np.testing.assert_allclose(mine, hf[spec.hf_name], atol=2e-5, err_msg=spec.hf_name)
