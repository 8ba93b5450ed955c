"""Decoder: logit parity with transformers (PyTorch, float32) and cached decoding == full forward."""

import numpy as np
import pytest

from exsearch_jax.models import DecoderConfig, from_pretrained, init_cache, init_model
from tests.hf_reference import CASES, hf_logits, make_hf_model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  """Each tiny HF model saved by transformers itself, loaded once by us."""
  out = {}
  for case in CASES:
    hf = make_hf_model(case)
    directory = tmp_path_factory.mktemp(case)
    hf.save_pretrained(directory)
    out[case] = (hf, from_pretrained(str(directory)))
  return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_logits_match_transformers(checkpoints, case):
  hf, ours = checkpoints[case]
  ids = np.random.default_rng(0).integers(0, hf.config.vocab_size, (2, 24))
  delta = np.abs(np.asarray(ours(ids)) - hf_logits(hf, ids)).max()
  assert delta <= 1e-4, f"{case}: max |dlogit| {delta}"


@pytest.mark.parametrize("case", ["llama_gqa4_tied_theta", "qwen2_gqa_bias", "mistral_gqa_window"])
def test_left_padded_batch_matches_transformers(checkpoints, case):
  hf, ours = checkpoints[case]
  ids = np.random.default_rng(1).integers(0, hf.config.vocab_size, (3, 20))
  mask = np.ones_like(ids)
  mask[1, :6] = 0
  mask[2, :13] = 0
  ref = hf_logits(hf, ids, mask)
  got = np.asarray(ours(ids, attention_mask=mask))
  real = mask.astype(bool)
  assert np.abs(got[real] - ref[real]).max() <= 1e-4


def _tiny(**kw):
  base = dict(
      vocab_size=101,
      hidden_size=48,
      intermediate_size=64,
      num_layers=2,
      num_heads=6,
      num_kv_heads=2,
      head_dim=8,
      rope_theta=5000.0,
  )
  return DecoderConfig(**{**base, **kw})


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
@pytest.mark.parametrize("window", [None, 5])
def test_token_by_token_decoding_equals_full_forward(window):
  model = init_model(_tiny(sliding_window=window), seed=3)
  ids = np.random.default_rng(2).integers(0, 101, (2, 12))
  full = np.asarray(model(ids))
  cache = init_cache(model.config, batch=2, max_length=16)
  steps = []
  for t in range(ids.shape[1]):
    logits, cache = model.decode(ids[:, t : t + 1], cache)
    steps.append(np.asarray(logits[:, 0]))
  assert np.abs(np.stack(steps, 1) - full).max() <= 1e-4
  assert list(np.asarray(cache.lengths)) == [12, 12]


@pytest.mark.slow  # a parity check over a real forward/backward: 10-40 s
def test_padded_batches_decode_like_unpadded_rows():
  """Rows of lengths 9, 5, 2 prefilled left-padded, then right-padded, then continued token by token."""
  model = init_model(_tiny(), seed=4)
  rng = np.random.default_rng(5)
  lengths = [9, 5, 2]
  rows = [rng.integers(0, 101, n + 4) for n in lengths]  # prompt + 4 continuation tokens
  alone = [np.asarray(model(r[None]))[0] for r in rows]
  for side in ("left", "right"):
    ids = np.zeros((3, 9), np.int32)
    mask = np.zeros((3, 9), np.int32)
    for i, n in enumerate(lengths):
      span = slice(9 - n, 9) if side == "left" else slice(0, n)
      ids[i, span], mask[i, span] = rows[i][:n], 1
    cache = init_cache(model.config, batch=3, max_length=16)
    logits, cache = model.decode(ids, cache, attention_mask=mask)
    for i, n in enumerate(lengths):
      last = 8 if side == "left" else n - 1
      assert np.abs(np.asarray(logits[i, last]) - alone[i][n - 1]).max() <= 1e-4
    for step in range(4):
      nxt = np.array([[r[n + step]] for r, n in zip(rows, lengths)])
      logits, cache = model.decode(nxt, cache)
      for i, n in enumerate(lengths):
        assert np.abs(np.asarray(logits[i, 0]) - alone[i][n + step]).max() <= 1e-4, (side, step, i)
    assert list(np.asarray(cache.lengths)) == [n + 4 for n in lengths]


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_appending_a_multi_token_turn_equals_recomputing():
  """A padded multi-token chunk appended to a warm cache (the sampler's new turn) == full recompute."""
  model = init_model(_tiny(num_kv_heads=1), seed=6)
  rng = np.random.default_rng(7)
  a, b = rng.integers(0, 101, 7), rng.integers(0, 101, 3)
  turn_a, turn_b = rng.integers(0, 101, 5), rng.integers(0, 101, 2)
  cache = init_cache(model.config, batch=2, max_length=20)
  _, cache = model.decode(
      np.array([a, np.r_[b, [0] * 4]]), cache, attention_mask=np.array([[1] * 7, [1] * 3 + [0] * 4])
  )
  logits, cache = model.decode(
      np.array([turn_a, np.r_[[0] * 3, turn_b]]), cache, attention_mask=np.array([[1] * 5, [0] * 3 + [1] * 2])
  )
  full_a = np.asarray(model(np.r_[a, turn_a][None]))[0, -1]
  full_b = np.asarray(model(np.r_[b, turn_b][None]))[0, -1]
  assert np.abs(np.asarray(logits[0, -1]) - full_a).max() <= 1e-4
  assert np.abs(np.asarray(logits[1, -1]) - full_b).max() <= 1e-4


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_a_packed_prefill_equals_the_padded_one():
  """Rows holding 6, 3 and 0 tokens append 5, 0 and 2 tokens with pads between them: with `packing` the dense
  layers compute the 7 real tokens (and 3 unused entries) instead of 24 slots, and the cache, the lengths and
  each row's last-token logits (`logits_at`) equal the padded call's."""
  model = init_model(_tiny(num_kv_heads=1), seed=8)
  rng = np.random.default_rng(9)
  cache = init_cache(model.config, batch=3, max_length=24)
  held = np.array([[1] * 6, [1] * 3 + [0] * 3, [0] * 6])
  _, cache = model.decode(rng.integers(0, 101, (3, 6)), cache, attention_mask=held)
  ids = rng.integers(0, 101, (3, 8))
  mask = np.array([[1, 1, 0, 1, 1, 1, 0, 0], [0] * 8, [0, 1, 0, 0, 0, 0, 0, 1]], bool)
  final = 7 - np.argmax(mask[:, ::-1], axis=1)
  every_logit, _ = model.decode(ids, cache, attention_mask=mask)
  padded_logits, padded = model.decode(ids, cache, attention_mask=mask, logits_at=final)
  packing = np.r_[np.flatnonzero(mask), [mask.size] * 3]
  packed_logits, packed = model.decode(ids, cache, attention_mask=mask, packing=packing, logits_at=final)
  assert packed_logits.shape == (3, 1, model.config.vocab_size)
  for r in (0, 2):  # row 1 appended nothing: its logits are not used
    np.testing.assert_allclose(np.asarray(padded_logits[r, 0]), np.asarray(every_logit[r, final[r]]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(packed_logits[r, 0]), np.asarray(padded_logits[r, 0]), atol=1e-5)
  np.testing.assert_array_equal(np.asarray(packed.lengths), [11, 3, 2])
  np.testing.assert_array_equal(np.asarray(packed.lengths), np.asarray(padded.lengths))
  for got, want in zip(packed.keys + packed.values, padded.keys + padded.values):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_rematerialised_layers_give_the_same_loss_and_gradients():
  import jax
  from flax import nnx
  from exsearch_jax.em.train_step import weighted_loss_sum

  model = init_model(_tiny(num_layers=3), seed=4)
  graphdef, params = nnx.split(model)
  rng = np.random.default_rng(5)
  tokens = rng.integers(0, 101, (2, 20))
  mask = np.ones((2, 20), bool)
  mask[1, :6] = False  # left padding
  loss_mask = rng.random((2, 20)) < 0.5

  def loss(p, remat):
    return weighted_loss_sum(nnx.merge(graphdef, p), tokens, loss_mask, mask, np.array([1.0, 0.5]), remat=remat)

  jaxpr = lambda remat: str(jax.make_jaxpr(jax.grad(loss), static_argnums=1)(params, remat))  # noqa: E731
  assert jaxpr(True).count("remat2") == 3 and "remat2" not in jaxpr(False)  # one per layer
  plain, plain_grads = jax.value_and_grad(loss)(params, False)
  remat, remat_grads = jax.jit(jax.value_and_grad(loss), static_argnums=1)(params, True)
  assert abs(float(plain) - float(remat)) < 1e-5
  for a, b in zip(jax.tree.leaves(plain_grads), jax.tree.leaves(remat_grads)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-4)
