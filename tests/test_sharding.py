"""Mesh from config, the logical-axis rules, and sharded == single-device numerics on 8 CPU devices."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from exsearch_jax.errors import ConfigError
from exsearch_jax.models import DecoderConfig, from_pretrained, init_model, save_pretrained
from exsearch_jax.sharding import batch_sharding, logical_to_spec, make_mesh, state_shardings

CONFIG = DecoderConfig(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=96,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=16,
    tie_word_embeddings=False,
)


def test_mesh_shapes_and_errors():
  assert jax.device_count() == 8
  assert dict(make_mesh({"data": 2, "fsdp": 2, "tensor": 2}).shape) == {"data": 2, "fsdp": 2, "tensor": 2}
  assert dict(make_mesh({"data": -1, "tensor": 2}).shape) == {"data": 4, "fsdp": 1, "tensor": 2}
  with pytest.raises(ConfigError, match="needs 6 devices, but 8"):
    make_mesh({"data": 3, "fsdp": 2})
  with pytest.raises(ConfigError, match="cannot fill 8 devices"):
    make_mesh({"data": -1, "tensor": 3})
  with pytest.raises(ConfigError, match="unknown axes"):
    make_mesh({"model": 8})
  with pytest.raises(ConfigError, match="at most one -1"):
    make_mesh({"data": -1, "fsdp": -1})


def test_rules_fall_back_to_replication_when_an_axis_does_not_divide():
  mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  assert logical_to_spec(("embed", "heads", "head_dim"), (64, 4, 16), mesh) == P("fsdp", "tensor", None)
  assert logical_to_spec(("embed", "kv_heads", "head_dim"), (576, 3, 64), mesh) == P("fsdp", None, None)
  assert logical_to_spec(("batch", "length"), (8, 5), mesh) == P(("data", "fsdp"), None)
  with pytest.raises(ConfigError, match="no rule"):
    logical_to_spec(("nonsense",), (4,), mesh)


def _loss(model, ids):
  logits = model(ids[:, :-1])
  return optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:]).mean()


def _step_fn(graphdef, in_shardings=None, out_shardings=None):
  def step(state, ids):
    model = nnx.merge(graphdef, state)
    loss, grads = nnx.value_and_grad(_loss)(model, ids)
    new_state = jax.tree.map(lambda p, g: p - 0.5 * g, nnx.state(model, nnx.Param), grads)
    return loss, model(ids), new_state

  if in_shardings is None:
    return jax.jit(step)
  return jax.jit(step, in_shardings=in_shardings, out_shardings=out_shardings, donate_argnums=0)


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_sharded_forward_and_gradient_step_equal_single_device():
  ids = np.random.default_rng(0).integers(0, 128, (8, 16))
  model = init_model(CONFIG, seed=1)
  graphdef, state = nnx.split(model)
  loss1, logits1, state1 = _step_fn(graphdef)(state, ids)

  mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  shardings = state_shardings(state, mesh)
  sharded = jax.device_put(state, shardings)
  q = sharded["layers"][0]["attn"]["q"].get_value()
  assert q.sharding.spec == P("fsdp", "tensor", None)
  assert q.addressable_shards[0].data.shape == (32, 2, 16)  # really split 2 x 2
  logit_sharding = jax.sharding.NamedSharding(mesh, P(("data", "fsdp"), None, "tensor"))
  step = _step_fn(
      graphdef, (shardings, batch_sharding(mesh)), (jax.sharding.NamedSharding(mesh, P()), logit_sharding, shardings)
  )
  loss8, logits8, state8 = step(sharded, jax.device_put(ids, batch_sharding(mesh)))

  assert np.allclose(loss8, loss1, rtol=1e-5)
  assert np.abs(np.asarray(logits8) - np.asarray(logits1)).max() <= 1e-5 * np.abs(np.asarray(logits1)).max()
  for a, b in zip(jax.tree.leaves(state8), jax.tree.leaves(state1)):
    assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 1e-5 * max(1.0, np.abs(np.asarray(b)).max())
  assert state8["layers"][1]["mlp"]["down"].get_value().sharding.spec == P("tensor", "fsdp")


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_from_pretrained_places_weights_directly_into_shards(tmp_path):
  model = init_model(CONFIG, seed=2)
  save_pretrained(model, str(tmp_path))
  mesh = make_mesh({"fsdp": 4, "tensor": 2})
  loaded = from_pretrained(str(tmp_path), mesh=mesh)
  embed = loaded.embed.get_value()
  assert embed.sharding.spec == P("tensor", "fsdp")
  assert {s.data.shape for s in embed.addressable_shards} == {(64, 16)}
  ids = np.random.default_rng(3).integers(0, 128, (2, 10))
  assert np.abs(np.asarray(loaded(ids)) - np.asarray(model(ids))).max() <= 1e-5
