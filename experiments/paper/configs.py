"""The paper's scale: Qwen2.5-7B-Instruct and Llama-3.1-8B-Instruct on HotpotQA-style data with the paper's
hyperparameters, for a TPU v5p slice (32 chips, v5p-64) and for one host of 8 H100s:

  python launch/train.py --config=experiments/paper/configs.py:qwen2_5_7b_v5p --dry_run   # does it fit?
  python launch/train.py --config=experiments/paper/configs.py:qwen2_5_7b_v5p --workdir=gs://.../run \
      --config.model.checkpoint=/path/to/Qwen2.5-7B-Instruct --config.data.train=... --config.data.dev=...

Names: {qwen2_5_7b, llama3_1_8b}_{v5p, 8xh100}. The architecture is written out (`model.init`) so that the dry run
needs no download; a real run reads it from the checkpoint's config.json.
"""

from exsearch_jax.config import get_config as preset

# From the models' config.json files on the Hugging Face hub.
ARCHITECTURES = {
    "qwen2_5_7b": dict(
        architecture="Qwen2ForCausalLM",
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_layers=28,
        num_heads=28,
        num_kv_heads=4,
        head_dim=128,
        rope_theta=1e6,
        rms_norm_eps=1e-6,
        max_position_embeddings=32768,
        qkv_bias=True,
        tie_word_embeddings=False,
    ),
    "llama3_1_8b": dict(
        architecture="LlamaForCausalLM",
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_layers=32,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        rope_theta=5e5,
        rms_norm_eps=1e-5,
        max_position_embeddings=131072,
        tie_word_embeddings=False,
        rope_scaling=(
            ("factor", 8.0),
            ("high_freq_factor", 4.0),
            ("low_freq_factor", 1.0),
            ("original_max_position_embeddings", 8192),
            ("rope_type", "llama3"),
        ),
    ),
}
# (accelerator, devices, train mesh, sample mesh, micro-batches): one row of 8,192 tokens per device per
# micro-batch; sampling keeps a whole model copy per tensor group of 4
TARGETS = {
    "v5p": ("tpu_v5p", 32, dict(data=1, fsdp=32, tensor=1), dict(data=-1, fsdp=1, tensor=4), 8),
    "8xh100": ("h100", 8, dict(data=1, fsdp=8, tensor=1), dict(data=-1, fsdp=1, tensor=4), 32),
}


def get_config(name: str):
  model, _, target = name.rpartition("_")
  if model not in ARCHITECTURES or target not in TARGETS:
    raise ValueError(
        f"unknown paper config {name!r}; choose one of " f"{[f'{m}_{t}' for m in ARCHITECTURES for t in TARGETS]}"
    )
  accelerator, devices, train_mesh, sample_mesh, micro_batches = TARGETS[target]
  c = preset("qwen2_5_7b" if model == "qwen2_5_7b" else "llama3_1_8b")  # bf16, checkpoint path placeholder
  c.model.init.update(ARCHITECTURES[model])
  c.mesh.train.update(train_mesh)
  c.mesh.sample.update(sample_mesh)
  c.target.update(dict(accelerator=accelerator, devices=devices))
  c.data.update(
      dict(
          source="files",
          format="hotpotqa",
          train="/path/to/hotpot_train_v1.1.json",
          dev="/path/to/hotpot_dev_distractor_v1.json",
      )
  )
  # the paper: 8 samples, <= 20 steps, top-10 retrieved, top-3 shown, 64 tokens per turn, T 0.8, p 0.95; the
  # instruction as in the reference, no grammar mask (a 7B instruct model follows the protocol)
  c.rollout.update(
      dict(
          samples=8,
          max_steps=20,
          retrieve_k=10,
          shown=3,
          step_tokens=64,
          answer_tokens=32,
          capacity=8192,
          batch_rows=256,
          temperature=0.8,
          top_p=0.95,
          instruction="exsearch",
          constrained=False,
          answer_at_budget=True,
      )
  )
  # questions per iteration is our choice (the reference samples its whole training subset)
  c.em.update(dict(iterations=3, weights="paper", questions_per_iteration=8192, seed_trajectories=1000))
  # the paper: lr 2e-6, cosine, warm-up 0.1, 2 epochs, 256 sequences per batch, 8,192-token cutoff
  c.train.update(
      dict(
          learning_rate=2e-6,
          warmup_ratio=0.1,
          batch_size=256,
          micro_batches=micro_batches,
          max_length=8192,
          epochs=2,
          remat=True,
          checkpoint_every=100,
      )
  )
  c.warmup.update(dict(epochs=2, learning_rate=2e-6))
  return c
