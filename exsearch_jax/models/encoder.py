"""Flax NNX BERT sentence encoder (all-MiniLM-L6-v2 and friends): sentence-transformers embeddings in JAX.

The retriever needs dense text embeddings on the same devices as the policy, so we port the encoder
instead of calling PyTorch. Weights carry `logical_axes` like the decoder's; `TextEncoder` buckets
lengths (and fixes the row count per call) so a corpus of any size compiles a handful of programs.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from exsearch_jax.errors import CheckpointError
from exsearch_jax.models.hf_checkpoint import read_config, read_json as _read_json
from exsearch_jax.models.params import param
from exsearch_jax.models.safetensors_io import SafetensorsFile
from exsearch_jax.models.tokenizer import load_tokenizer
from exsearch_jax.models.weight_layout import WeightSpec
from exsearch_jax.sharding import batch_sharding, state_shardings

_MASKED = -1e30  # finite: an all-pad row (batch padding) gives a uniform softmax, not NaN
ACTIVATIONS = {"gelu": False, "gelu_new": True, "gelu_pytorch_tanh": True}  # name -> tanh approximation
POOLING_FLAGS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
ST_MODULES = ("Transformer", "Pooling", "Normalize")  # sentence-transformers modules we reproduce
MIN_BUCKET = 16
CPU_BATCH = 8  # TextEncoder rows per call on CPU


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  intermediate_size: int
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  pooling: str = "mean"  # mean | cls | max, from 1_Pooling/config.json
  normalize: bool = True  # a Normalize module in modules.json
  max_seq_length: int = 512  # sentence_bert_config.json; longer texts are truncated
  pad_token_id: int = 0
  initializer_range: float = 0.02

  def __post_init__(self):
    if self.hidden_size % self.num_heads:
      raise CheckpointError(f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads={self.num_heads}")
    if self.hidden_act not in ACTIVATIONS:
      raise CheckpointError(f"hidden_act={self.hidden_act!r} is not supported; supported: {sorted(ACTIVATIONS)}")
    if self.pooling not in POOLING_FLAGS.values():
      raise CheckpointError(f"pooling={self.pooling!r} is not supported; supported: mean, cls, max")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @classmethod
  def from_hf_dict(cls, cfg: dict, source: str = "config.json", **overrides) -> "EncoderConfig":
    def need(key):
      if key not in cfg:
        raise CheckpointError(f"{source}: missing field {key!r}")
      return cfg[key]

    if cfg.get("model_type", "bert") != "bert":
      raise CheckpointError(f"{source}: field 'model_type' = {cfg['model_type']!r} is not supported (only bert)")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
      raise CheckpointError(
          f"{source}: field 'position_embedding_type' = {cfg['position_embedding_type']!r} "
          "is not supported (only absolute)"
      )
    positions = cfg.get("max_position_embeddings", 512)
    kwargs = dict(
        vocab_size=need("vocab_size"),
        hidden_size=need("hidden_size"),
        num_layers=need("num_hidden_layers"),
        num_heads=need("num_attention_heads"),
        intermediate_size=need("intermediate_size"),
        max_position_embeddings=positions,
        type_vocab_size=cfg.get("type_vocab_size", 2),
        layer_norm_eps=cfg.get("layer_norm_eps", 1e-12),
        hidden_act=cfg.get("hidden_act", "gelu"),
        max_seq_length=positions,
        pad_token_id=cfg.get("pad_token_id") or 0,
        initializer_range=cfg.get("initializer_range", 0.02),
    )
    try:
      return cls(**{**kwargs, **overrides})
    except CheckpointError as e:
      raise CheckpointError(f"{source}: {e}") from None

  @classmethod
  def from_directory(cls, path: str) -> "EncoderConfig":
    """config.json, plus the sentence-transformers files (pooling, normalize, max length) when present."""
    config = cls.from_hf_dict(read_config(path), source=os.path.join(path, "config.json"))
    pooling_dir: Optional[str] = "1_Pooling"
    normalize = True
    modules_path = os.path.join(path, "modules.json")
    if os.path.exists(modules_path):
      modules = _read_json(modules_path)
      kinds = {m.get("type", "").rsplit(".", 1)[-1]: m for m in modules}
      unknown = sorted(set(kinds) - set(ST_MODULES))
      if unknown:
        raise CheckpointError(f"{modules_path}: modules {unknown} are not supported (only {list(ST_MODULES)})")
      pooling_dir = kinds["Pooling"].get("path", pooling_dir) if "Pooling" in kinds else None
      normalize = "Normalize" in kinds
    changes: dict[str, Any] = dict(normalize=normalize)
    pooling_path = pooling_dir and os.path.join(path, pooling_dir, "config.json")
    if pooling_path and os.path.exists(pooling_path):
      changes["pooling"] = _pooling_mode(_read_json(pooling_path), pooling_path)
    st_path = os.path.join(path, "sentence_bert_config.json")
    max_length = os.path.exists(st_path) and _read_json(st_path).get("max_seq_length")
    if max_length:
      changes["max_seq_length"] = min(int(max_length), config.max_position_embeddings)
    return dataclasses.replace(config, **changes)


def _pooling_mode(cfg: dict, source: str) -> str:
  if cfg.get("pooling_mode") in POOLING_FLAGS.values():
    return cfg["pooling_mode"]
  modes = [mode for flag, mode in POOLING_FLAGS.items() if cfg.get(flag)]
  others = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v and k not in POOLING_FLAGS]
  if len(modes) != 1 or others:
    raise CheckpointError(
        f"{source}: exactly one of {sorted(POOLING_FLAGS)} must be true " f"(got {modes + others or 'none'})"
    )
  return modes[0]


class LayerNorm(nnx.Module):

  def __init__(self, size: int, eps: float, rngs: nnx.Rngs):
    self.eps = eps
    self.scale = param(rngs, (size,), ("norm",), std="ones")
    self.bias = param(rngs, (size,), ("norm",))

  def __call__(self, x):
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]


class SelfAttention(nnx.Module):
  """Bidirectional multi-head attention with biases on every projection (BERT)."""

  def __init__(self, config: EncoderConfig, rngs: nnx.Rngs):
    e, h, d, std = config.hidden_size, config.num_heads, config.head_dim, config.initializer_range
    for name in ("q", "k", "v"):
      setattr(self, name, param(rngs, (e, h, d), ("embed", "heads", "head_dim"), std=std))
      setattr(self, name + "_bias", param(rngs, (h, d), ("heads", "head_dim")))
    self.o = param(rngs, (h, d, e), ("heads", "head_dim", "embed"), std=std)
    self.o_bias = param(rngs, (e,), ("embed",))

  def __call__(self, x, bias):
    """x (B,T,E); bias (B,1,1,T): 0 at real keys, _MASKED at padding.

    Written for XLA CPU, where attention was ~60% of the forward: plain (B*T,E)@(E,E) projections, heads
    major, and the softmax normalised after the value product (T*D divides, not T*T), which lets XLA
    fuse the whole score-exp-value chain into one kernel.
    """
    b, t, e = x.shape
    h, d = self.q.shape[1:]
    q, k, v = (
        (x @ getattr(self, n)[...].reshape(e, h * d) + getattr(self, n + "_bias")[...].reshape(h * d))
        .reshape(b, t, h, d)
        .transpose(0, 2, 1, 3)
        for n in ("q", "k", "v")
    )
    scores = (q * d**-0.5) @ k.swapaxes(-1, -2) + bias
    weights = jnp.exp(scores - scores.max(-1, keepdims=True))
    out = ((weights @ v) / weights.sum(-1, keepdims=True)).transpose(0, 2, 1, 3).reshape(b, t, h * d)
    return out @ self.o[...].reshape(h * d, e) + self.o_bias[...]


class MLP(nnx.Module):

  def __init__(self, config: EncoderConfig, rngs: nnx.Rngs):
    e, f, std = config.hidden_size, config.intermediate_size, config.initializer_range
    self.tanh = ACTIVATIONS[config.hidden_act]
    self.up = param(rngs, (e, f), ("embed", "mlp"), std=std)
    self.up_bias = param(rngs, (f,), ("mlp",))
    self.down = param(rngs, (f, e), ("mlp", "embed"), std=std)
    self.down_bias = param(rngs, (e,), ("embed",))

  def __call__(self, x):
    hidden = jax.nn.gelu(x @ self.up[...] + self.up_bias[...], approximate=self.tanh)
    return hidden @ self.down[...] + self.down_bias[...]


class Layer(nnx.Module):
  """Post-LN: x = LN(x + attn(x)); x = LN(x + mlp(x))."""

  def __init__(self, config: EncoderConfig, rngs: nnx.Rngs):
    self.attn = SelfAttention(config, rngs)
    self.attn_norm = LayerNorm(config.hidden_size, config.layer_norm_eps, rngs)
    self.mlp = MLP(config, rngs)
    self.mlp_norm = LayerNorm(config.hidden_size, config.layer_norm_eps, rngs)

  def __call__(self, x, bias):
    x = self.attn_norm(x + self.attn(x, bias))
    return self.mlp_norm(x + self.mlp(x))


class BertEncoder(nnx.Module):
  """`model(input_ids, attention_mask)` -> pooled (and, per config, L2-normalised) float32 (batch, hidden)."""

  def __init__(self, config: EncoderConfig, rngs: nnx.Rngs):
    self.config = config
    e, std = config.hidden_size, config.initializer_range
    self.word = param(rngs, (config.vocab_size, e), ("vocab", "embed"), std=std)
    self.position = param(rngs, (config.max_position_embeddings, e), (None, "embed"), std=std)
    self.token_type = param(rngs, (config.type_vocab_size, e), (None, "embed"), std=std)
    self.embed_norm = LayerNorm(e, config.layer_norm_eps, rngs)
    self.layers = nnx.List([Layer(config, rngs) for _ in range(config.num_layers)])

  def hidden_states(self, input_ids, attention_mask, token_type_ids=None):
    """Last-layer token states (B,T,E); rows are right-padded (positions count from the first column)."""
    mask = jnp.asarray(attention_mask).astype(bool)
    types = jnp.zeros_like(input_ids) if token_type_ids is None else token_type_ids
    x = (
        jnp.take(self.word[...], input_ids, axis=0)
        + self.position[...][None, : input_ids.shape[1]]
        + jnp.take(self.token_type[...], types, axis=0)
    )
    x = self.embed_norm(x.astype(jnp.float32))
    bias = jnp.where(mask, 0.0, _MASKED).astype(x.dtype)[:, None, None, :]
    for layer in self.layers:
      x = layer(x, bias)
    return x

  def __call__(self, input_ids, attention_mask, token_type_ids=None):
    x = self.hidden_states(input_ids, attention_mask, token_type_ids)
    mask = jnp.asarray(attention_mask).astype(x.dtype)[..., None]
    if self.config.pooling == "mean":
      pooled = (x * mask).sum(1) / jnp.maximum(mask.sum(1), 1e-9)
    elif self.config.pooling == "cls":
      pooled = x[:, 0]
    else:
      pooled = jnp.where(mask > 0, x, -1e9).max(1)
    if self.config.normalize:
      pooled = pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
    return pooled.astype(jnp.float32)


def weight_specs(config: EncoderConfig, prefix: str = ""):
  """Our NNX path <-> HF BERT tensor name (`prefix` is "bert." for checkpoints saved from a task head)."""
  e, f, h, d = config.hidden_size, config.intermediate_size, config.num_heads, config.head_dim
  emb = prefix + "embeddings."
  yield WeightSpec(("word",), emb + "word_embeddings.weight", (config.vocab_size, e), 0)
  yield WeightSpec(("position",), emb + "position_embeddings.weight", (config.max_position_embeddings, e), 0)
  yield WeightSpec(("token_type",), emb + "token_type_embeddings.weight", (config.type_vocab_size, e), 0)
  norms: list[tuple[tuple, str]] = [(("embed_norm",), emb + "LayerNorm.")]
  for i in range(config.num_layers):
    hf, ours = f"{prefix}encoder.layer.{i}.", ("layers", i)
    for name, hf_name in (("q", "query"), ("k", "key"), ("v", "value")):
      yield WeightSpec(ours + ("attn", name), hf + f"attention.self.{hf_name}.weight", (e, h, d), 1)
      yield WeightSpec(ours + ("attn", name + "_bias"), hf + f"attention.self.{hf_name}.bias", (h, d), 0, flatten=True)
    yield WeightSpec(ours + ("attn", "o"), hf + "attention.output.dense.weight", (h, d, e), 2)
    yield WeightSpec(ours + ("attn", "o_bias"), hf + "attention.output.dense.bias", (e,), 0)
    yield WeightSpec(ours + ("mlp", "up"), hf + "intermediate.dense.weight", (e, f), 1)
    yield WeightSpec(ours + ("mlp", "up_bias"), hf + "intermediate.dense.bias", (f,), 0)
    yield WeightSpec(ours + ("mlp", "down"), hf + "output.dense.weight", (f, e), 1)
    yield WeightSpec(ours + ("mlp", "down_bias"), hf + "output.dense.bias", (e,), 0)
    norms += [
        (ours + ("attn_norm",), hf + "attention.output.LayerNorm."),
        (ours + ("mlp_norm",), hf + "output.LayerNorm."),
    ]
  for ours, hf in norms:
    yield WeightSpec(ours + ("scale",), hf + "weight", (e,), 0)
    yield WeightSpec(ours + ("bias",), hf + "bias", (e,), 0)


def load_encoder(path: str, mesh: Optional[Mesh] = None):
  """(BertEncoder, tokenizer) from a sentence-transformers / HF BERT directory, weights placed in their shards."""
  path = os.fspath(path)
  config = EncoderConfig.from_directory(path)
  st_path = os.path.join(path, "model.safetensors")
  if not os.path.exists(st_path):
    raise CheckpointError(f"{st_path}: missing model.safetensors (the encoder weights)")
  tensors = SafetensorsFile(st_path)
  prefix = next((p for p in ("", "bert.") if p + "embeddings.word_embeddings.weight" in tensors.header), "")
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: BertEncoder(config, nnx.Rngs(0))))
  variables = dict(nnx.to_flat_state(abstract))
  shardings = dict(nnx.to_flat_state(state_shardings(abstract, mesh)))
  specs = {spec.path: spec for spec in weight_specs(config, prefix)}
  if set(specs) != set(variables):
    raise AssertionError(f"encoder weight table out of date: {set(specs) ^ set(variables)}")
  for key, spec in specs.items():
    if spec.hf_name not in tensors.header:
      raise CheckpointError(f"{st_path}: tensor {spec.hf_name!r} is missing")
    if tensors.shape(spec.hf_name) != spec.hf_shape:
      raise CheckpointError(
          f"{st_path}: tensor {spec.hf_name!r} has shape {tensors.shape(spec.hf_name)}, "
          f"the config implies {spec.hf_shape}"
      )
    host = spec.to_ours(np.asarray(tensors.get(spec.hf_name))).astype(np.float32)
    sharding = shardings[key].get_value()
    variables[key].set_value(jax.make_array_from_callback(host.shape, sharding, host.__getitem__))
  return nnx.merge(graphdef, nnx.from_flat_state(variables)), load_tokenizer(path)


def length_bucket(length: int, max_length: int) -> int:
  """Padded length: a multiple of 16 up to 256 tokens, of 64 beyond, at most `max_length`.

  Batches are length-sorted, so each pads only to its own longest row, rounded up: on 1,000 Wikipedia
  passages (115-256 tokens) that wastes ~6% of the compute, against ~45% for the old power-of-two/64
  grid, for a few more one-off compiles (~1s each on CPU).
  """
  step = 16 if length <= 256 else 64
  return min(max(-(-length // step) * step, MIN_BUCKET), max_length)


class TextEncoder:
  """Texts -> (n, dim) float32 embeddings through one jitted function.

  Shapes are (rows, length bucket) with `rows` fixed for a whole `encode` call, so one call compiles at
  most once per length bucket; `compiles` counts traces.
  """

  def __init__(self, model: BertEncoder, tokenizer, mesh: Optional[Mesh] = None, batch_size: Optional[int] = None):
    self.config = model.config
    platform = (jax.devices() if mesh is None else mesh.devices.flat)[0].platform
    # On CPU, 8 rows keep activations and (rows, heads, T, T) scores cache-sized: 64 took ~1.5x the CPU time.
    self.batch_size = batch_size or (CPU_BATCH if platform == "cpu" else 64)
    self.tokenizer = tokenizer
    self.mesh = mesh
    self.compiles = 0
    graphdef, state = nnx.split(model)
    self._state = jax.device_put(state, state_shardings(state, mesh))  # the batch's devices, even if loaded elsewhere
    self._batch = batch_sharding(mesh, 2)
    self._shards = 1 if mesh is None else mesh.shape["data"] * mesh.shape["fsdp"]

    def forward(state, ids, mask):
      self.compiles += 1  # runs only while tracing
      return nnx.merge(graphdef, state)(ids, mask)

    replicated = None if mesh is None else NamedSharding(mesh, PartitionSpec())
    self._forward = jax.jit(forward, out_shardings=replicated)

  @classmethod
  def from_pretrained(cls, path: str, mesh: Optional[Mesh] = None, batch_size: Optional[int] = None) -> "TextEncoder":
    model, tokenizer = load_encoder(path, mesh)
    return cls(model, tokenizer, mesh=mesh, batch_size=batch_size)

  @property
  def dim(self) -> int:
    return self.config.hidden_size

  def encode(self, texts: Sequence[str], batch_size: Optional[int] = None) -> np.ndarray:
    texts = list(texts)
    out = np.zeros((len(texts), self.dim), np.float32)
    if not texts:
      return out
    max_len = self.config.max_seq_length
    ids = self.tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
    order = np.argsort([len(row) for row in ids], kind="stable")  # similar lengths share a batch
    rows = min(batch_size or self.batch_size, 1 << (len(texts) - 1).bit_length())  # powers of two: few shapes
    rows = -(-rows // self._shards) * self._shards  # every data shard gets whole rows
    pending = []
    for start in range(0, len(texts), rows):
      chunk = order[start : start + rows]
      length = length_bucket(max(len(ids[i]) for i in chunk), max_len)
      batch_ids = np.full((rows, length), self.config.pad_token_id, np.int32)
      batch_mask = np.zeros((rows, length), np.int32)
      for r, i in enumerate(chunk):
        batch_ids[r, : len(ids[i])], batch_mask[r, : len(ids[i])] = ids[i], 1
      placed = [jax.make_array_from_callback(a.shape, self._batch, a.__getitem__) for a in (batch_ids, batch_mask)]
      pending.append((chunk, self._forward(self._state, *placed)))
    for chunk, result in pending:  # dispatch is asynchronous: batches are prepared while earlier ones run
      out[chunk] = np.asarray(result)[: len(chunk)]
    return out
