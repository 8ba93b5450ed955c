"""A token per row from its logits: greedy, or temperature / top-k / nucleus sampling by inverse CDF, exact and
independent of the other rows in the batch (`DecodeSession`'s decode rounds call it every step)."""

import jax
import jax.numpy as jnp

CANDIDATES = 256  # nucleus candidates per row (see `sample_logits`)
WIDE_CANDIDATES = 4096  # ... for the rare row whose nucleus is wider


def sample_logits(logits, key, temperature: float, top_p: float, top_k: int):
  """Greedy when temperature == 0, else temperature / top-k / nucleus sampling. logits (B, V), key (B,).

  A row draws one uniform and picks its token by inverse CDF over the allowed tokens, best first. The
  nucleus is looked for among the `CANDIDATES` most likely tokens (`lax.top_k`: a full sort of the
  vocabulary every step costs more than the model on CPU). A row whose nucleus reaches past them, which
  is rare at top_p <= 0.95 (< 1% of SmolLM2 steps at temperature 0.8), is redone alone among its
  `WIDE_CANDIDATES` best tokens, and sorted in full if even those fall short. So the result is exact,
  and a row's token depends on its own logits and key only, never on the other rows.
  """
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = jnp.asarray(logits, jnp.float32) / temperature
  u = jax.vmap(jax.random.uniform)(key)
  if not top_k and top_p >= 1.0:
    return _pick(jnp.exp(logits - jax.nn.logsumexp(logits, axis=-1, keepdims=True)), u)
  values, ids = jax.lax.top_k(logits, min(top_k or CANDIDATES, logits.shape[-1]))
  lse = jax.nn.logsumexp(values if top_k else logits, axis=-1)  # top-k renormalises over its k tokens
  token, covered = _nucleus(values, ids, lse, u, top_p)
  if top_k or top_p >= 1.0:
    return token
  return _wide_rows(logits, lse, u, top_p, ~covered, token)


def _pick(probs, u):
  """Inverse CDF: the first index whose cumulative (unnormalised) probability reaches u * total."""
  cum = jnp.cumsum(probs, axis=-1)
  return jnp.minimum((cum < u[..., None] * cum[..., -1:]).sum(-1), probs.shape[-1] - 1).astype(jnp.int32)


def _nucleus(values, ids, lse, u, top_p):
  """Picks among candidates sorted best first (values, ids (..., k)); `covered`: the nucleus fits in them."""
  probs = jnp.exp(values - lse[..., None])
  cum = jnp.cumsum(probs, axis=-1)
  keep = cum - probs < top_p  # the first token past top_p is kept
  token = jnp.take_along_axis(ids, _pick(jnp.where(keep, probs, 0.0), u)[..., None], axis=-1)[..., 0]
  return token, cum[..., -1] >= top_p


def _wide_rows(logits, lse, u, top_p, rows, token):
  """Redoes the flagged rows one at a time among their WIDE_CANDIDATES best tokens, or the whole vocabulary."""
  wide = min(WIDE_CANDIDATES, logits.shape[-1])

  def body(state):
    token, rows = state
    r = jnp.argmax(rows)
    row = logits[r]
    best, covered = _nucleus(*jax.lax.top_k(row, wide), lse[r], u[r], top_p)

    def full_sort():
      order = jnp.argsort(-row)
      return _nucleus(row[order], order, lse[r], u[r], top_p)[0]

    return token.at[r].set(jax.lax.cond(covered, lambda: best, full_sort)), rows.at[r].set(False)

  return jax.lax.while_loop(lambda s: s[1].any(), body, (token, rows))[0]
