"""E-step weights, the weighted M-step loss and train step (masking, equal weights = SFT, sharded = single,
NaN skipped), and batching that a resumed run can replay."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from exsearch_jax.em import sequences as S
from exsearch_jax.em.train_step import Trainer, learning_rate, make_optimizer, sequence_logprobs
from exsearch_jax.em.weights import compute_weights
from exsearch_jax.models import DecoderConfig, init_model
from exsearch_jax.sharding import make_mesh

CONFIG = DecoderConfig(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    eos_token_id=None,
)
# Adam's first step is ~lr*g/(|g|+eps): with the default 1e-8, float rounding in a ~0 gradient becomes a
# full step, so comparisons of two computations of the same step use a larger eps
ADAM_EPS = 1e-4
GROUPS = ["a", "a", "a", "b", "b", "b"]
LOGP = np.log([0.5, 0.25, 0.0001, 0.01, 0.01, 0.02])
COUNT = np.array([2, 2, 2, 4, 4, 4])
CORRECT = np.array([1, 0, 0, 0, 0, 0], bool)
VALID = np.array([1, 1, 1, 1, 1, 0], bool)


def test_paper_weights_normalise_per_question_and_zero_invalid():
  w, stats = compute_weights("paper", GROUPS, LOGP, COUNT, CORRECT, VALID)
  np.testing.assert_allclose(w[:3], np.array([0.5, 0.25, 0.0001]) / 0.7501)
  np.testing.assert_allclose(w[3:], [0.5, 0.5, 0.0])  # all-wrong question b still carries total weight 1
  assert stats["questions_without_correct_sample"] == 0.5
  np.testing.assert_allclose(stats["effective_sample_size"], 2.0**2 / np.square(w).sum())


def test_guard_drops_questions_whose_best_sample_is_unlikely():
  w, stats = compute_weights("paper", GROUPS, LOGP, COUNT, CORRECT, VALID, guard=0.1)
  assert w[3:].sum() == 0 and w[:3].sum() == pytest.approx(1.0) and stats["questions_dropped_by_guard"] == 1


def test_code_uniform_and_rejection_weights():
  code, _ = compute_weights("code", GROUPS, LOGP, COUNT, CORRECT, VALID)
  np.testing.assert_allclose(code[:5], 4 * np.exp(LOGP[:5] / COUNT[:5]))
  assert code[5] == 0
  uniform, _ = compute_weights("uniform", GROUPS, LOGP, COUNT, CORRECT, VALID)
  assert uniform.tolist() == [1, 1, 1, 1, 1, 0]
  rejection, stats = compute_weights("rejection", GROUPS, LOGP, COUNT, CORRECT, VALID)
  assert rejection.tolist() == [1, 0, 0, 0, 0, 0] and stats["effective_sample_size"] == 1.0
  balanced, _ = compute_weights(
      "balanced", ["a", "a", "a", "b", "b"], LOGP[:5], COUNT[:5], np.array([1, 1, 0, 1, 0], bool), VALID[:5]
  )
  np.testing.assert_allclose(balanced, np.array([0.5, 0.5, 0, 1, 0]) * 3 / 2)  # each question 1, mean 1
  nan, _ = compute_weights("uniform", ["x"], np.array([np.nan]), np.array([1]), np.array([True]), np.array([True]))
  assert nan.tolist() == [0.0]
  with pytest.raises(ValueError, match="unknown weighting"):
    compute_weights("best", GROUPS, LOGP, COUNT, CORRECT, VALID)


def _examples(n=8, seed=0, weights=None):
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    length = int(rng.integers(6, 30))
    mask = tuple(bool(m) for m in rng.random(length) < 0.5)
    out.append(
        S.Example(tuple(int(t) for t in rng.integers(1, 64, length)), mask, 1.0 if weights is None else weights[i])
    )
  return out


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_masked_tokens_get_zero_gradient():
  model = init_model(CONFIG, seed=1)
  graphdef, params = nnx.split(model)
  tokens = np.array([[5, 6, 7, 8, 9, 10]])
  attention = np.ones_like(tokens, bool)

  def loss(p):  # only token 8 (position 3) is trained on
    total, _ = sequence_logprobs(nnx.merge(graphdef, p), tokens, np.array([[0, 0, 0, 1, 0, 0]], bool), attention)
    return -total.sum()

  rows = np.abs(np.asarray(jax.grad(loss)(params)["embed"].get_value())).sum(axis=1)
  # the input embeddings of tokens 8, 9, 10 only feed predictions of masked (untrained) tokens
  assert rows[[8, 9, 10]].tolist() == [0.0, 0.0, 0.0] and (rows[[5, 6, 7]] > 0).all()


@pytest.mark.slow  # a parity check over a real forward/backward: 10-40 s
def test_equal_weights_equal_plain_sft():
  examples = _examples(8)
  batch = S.pack(examples, 1, 8, 64)
  runs = []
  for weight in (1.0, None):
    model = init_model(CONFIG, seed=2)
    trainer = Trainer(model, make_optimizer(eps=ADAM_EPS), None)
    if weight is None:  # plain SFT: mean over sequences of the mean token NLL, by hand with optax
      graphdef, params = nnx.split(init_model(CONFIG, seed=2))
      tx = make_optimizer(eps=ADAM_EPS)
      opt = tx.init(params)

      def sft(p):
        m = nnx.merge(graphdef, p)
        total, count = sequence_logprobs(m, batch.tokens[0], batch.loss_mask[0], batch.attention_mask[0])
        return jnp_mean(-total / count)

      grads = jax.grad(sft)(params)
      updates, _ = tx.update(grads, opt, params)
      runs.append(optax.apply_updates(params, jax.tree.map(lambda u: 1e-2 * u, updates)))
    else:
      trainer.update(batch, 1e-2)
      runs.append(trainer.state.params)
  for a, b in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(runs[1])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def jnp_mean(x):
  return x.mean()


def test_training_the_top_layer_moves_it_as_full_training_does_and_freezes_the_rest():
  """With clipping off, the top layer's step depends on its own gradient only: the same as in full training."""
  batch = S.pack(_examples(8, seed=7), 1, 8, 64)
  full = Trainer(init_model(CONFIG, seed=8), make_optimizer(grad_clip=1e9, eps=ADAM_EPS), None)
  top = Trainer(init_model(CONFIG, seed=8), make_optimizer(grad_clip=1e9, eps=ADAM_EPS), None, trainable_layers=1)
  before = [np.asarray(x) for x in jax.tree.leaves(top.state.params)]
  full.update(batch, 1e-2)
  top.update(batch, 1e-2)
  names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(top.state.params)[0]]
  assert sum(top.mask) == 10 and all(("[1]" in n) == m or "final_norm" in n for n, m in zip(names, top.mask))
  for name, trained, old, new, reference in zip(
      names, top.mask, before, jax.tree.leaves(top.state.params), jax.tree.leaves(full.state.params)
  ):
    if trained:
      np.testing.assert_allclose(np.asarray(new), np.asarray(reference), rtol=1e-5, atol=1e-6, err_msg=name)
      assert not np.array_equal(np.asarray(new), old), name
    else:
      np.testing.assert_array_equal(np.asarray(new), old, err_msg=name)
  assert len(jax.tree.leaves(top.state.opt_state)) < len(jax.tree.leaves(full.state.opt_state))


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_zero_weight_rows_and_micro_batches_do_not_change_the_step():
  examples = _examples(8, weights=[1, 2, 0.5, 1, 3, 1, 1, 0])
  results = []
  for micro in (1, 4):
    trainer = Trainer(init_model(CONFIG, seed=3), make_optimizer(eps=ADAM_EPS), None)
    metrics = trainer.update(S.pack(examples, micro, 8 // micro, 64), 1e-2)
    results.append((metrics["loss"], jax.tree.leaves(trainer.state.params)))
  assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
  for a, b in zip(results[0][1], results[1][1]):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_a_step_compiles_once_per_batch_shape_from_the_first_update_and_after_an_optimizer_reset():
  """The fresh optimizer state is placed as the step's outputs are: else the second step compiles again
  (15 s per batch width for SmolLM2), once at the start and after every reset."""
  batch = S.pack(_examples(8, seed=9), 1, 8, 64)
  trainer = Trainer(init_model(CONFIG, seed=9), make_optimizer(eps=ADAM_EPS), None, trainable_layers=1)
  for _ in range(2):
    trainer.update(batch, 1e-2)
  trainer.reset_optimizer()
  trainer.update(batch, 1e-2)
  assert trainer._jit._cache_size() == 1  # pylint: disable=protected-access


@pytest.mark.slow  # a parity check over a real forward/backward: 10-40 s
def test_sharded_train_step_equals_single_device():
  examples = _examples(16, seed=4)
  batch = S.pack(examples, 2, 8, 64)
  single = Trainer(init_model(CONFIG, seed=5), make_optimizer(weight_decay=0.01, eps=ADAM_EPS), None)
  mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  sharded = Trainer(init_model(CONFIG, mesh=mesh, seed=5), make_optimizer(weight_decay=0.01, eps=ADAM_EPS), mesh)
  for _ in range(2):
    m1, m8 = single.update(batch, 1e-2), sharded.update(batch, 1e-2)
    assert m1["loss"] == pytest.approx(m8["loss"], rel=1e-5)
  q = sharded.state.params["layers"][0]["attn"]["q"].get_value()
  assert len({s.device for s in q.addressable_shards}) == 8 and q.addressable_shards[0].data.shape != q.shape
  for a, b in zip(jax.tree.leaves(single.state.params), jax.tree.leaves(sharded.state.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_non_finite_step_is_skipped():
  trainer = Trainer(init_model(CONFIG, seed=6), make_optimizer(), None)
  before = [np.asarray(x).copy() for x in jax.tree.leaves(trainer.state.params)]
  batch = S.pack(_examples(4, weights=[1, float("nan"), 1, 1]), 1, 4, 64)
  metrics = trainer.update(batch, 1e-2)
  assert metrics["skipped"] == 1.0
  for a, b in zip(before, jax.tree.leaves(trainer.state.params)):
    np.testing.assert_array_equal(a, np.asarray(b))
  assert trainer.update(S.pack(_examples(4), 1, 4, 64), 1e-2)["skipped"] == 0.0


def test_batches_are_replayable_and_cover_every_example():
  examples = _examples(37, weights=[1.0] * 36 + [0.0])
  full = list(S.batches(examples, 8, 2, 256, seed=1, iteration=2, epochs=2))
  assert len(full) == S.steps_per_run(examples, 8, 2) == 10
  resumed = list(S.batches(examples, 8, 2, 256, seed=1, iteration=2, epochs=2, start=6))
  assert [s for s, _ in resumed] == list(range(6, 10))
  for (_, a), (_, b) in zip(full[6:], resumed):
    np.testing.assert_array_equal(a.tokens, b.tokens)
  first_epoch = np.concatenate([b.weights.reshape(-1) for _, b in full[:5]])
  assert (first_epoch > 0).sum() == 36  # the zero-weight example is dropped, every other one seen once
  assert all(b.tokens.shape[-1] % 64 == 0 for _, b in full)


def test_learning_rate_schedule_warms_up_then_decays():
  lrs = [learning_rate(s, 100, 1.0, 0.1) for s in range(100)]
  assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
  assert lrs[50] < lrs[20] < 1.0 and lrs[-1] == pytest.approx(0.1, abs=0.01)


def test_a_registered_scheme_is_a_weighting_like_the_others():
  from exsearch_jax.em import weights as W

  W.scheme("halved")(lambda s: 0.5 * s.valid)
  try:
    w, stats = compute_weights("halved", GROUPS, LOGP, COUNT, CORRECT, VALID)
    assert stats["weight_scheme"] == "halved" and np.allclose(w, 0.5 * (VALID & np.isfinite(LOGP)))
  finally:
    del W.SCHEMES["halved"]
