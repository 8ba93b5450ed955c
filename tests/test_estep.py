"""The E-step scorer: log p(gold answer | x, z) from the answer positions alone equals the full-logits value."""

import numpy as np
import pytest

from exsearch_jax.em import sequences as S
from exsearch_jax.em.estep import score
from exsearch_jax.em.train_step import sequence_logprobs
from exsearch_jax.models import DecoderConfig, init_model

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


@pytest.mark.slow  # several seconds of compiling: in `make test`, not `make test-fast`
def test_answer_scores_equal_the_full_forward_pass_and_respect_max_length():
  rng = np.random.default_rng(0)
  examples = []
  for n, answer in ((20, 3), (45, 7), (9, 1), (70, 12)):
    tokens = tuple(int(t) for t in rng.integers(1, 64, n))
    examples.append(S.Example(tokens, (False,) * (n - answer) + (True,) * answer))
  examples.insert(1, None)
  model = init_model(CONFIG, seed=1)
  logp, count = score(model, examples, rows=2, max_length=64)
  assert np.isnan(logp[1]) and count[1] == 0
  present = [e for e in examples if e is not None]
  batch = S.pack(present, 1, len(present), 64)
  total, n = sequence_logprobs(model, batch.tokens[0], batch.loss_mask[0], batch.attention_mask[0])
  np.testing.assert_allclose(logp[[0, 2, 3, 4]], np.asarray(total), rtol=1e-5)
  np.testing.assert_array_equal(count[[0, 2, 3, 4]], np.asarray(n))
  assert count.tolist() == [3, 0, 7, 1, 6]  # the 70-token example is cut at 64: 6 of its 12 are scored
  wide, _ = score(model, examples, rows=64, max_length=64)  # one partial chunk: 4 examples in 8 rows, not 64
  np.testing.assert_allclose(wide[[0, 2, 3, 4]], logp[[0, 2, 3, 4]], rtol=1e-5)
