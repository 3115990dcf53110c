# The two commands of the README:
#   make demo   set up .venv (when missing) and run the main job on the built-in demo data
#   make test   set up .venv (when missing) and run the linters, the docs build and the tests
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= runs/demo
PYTEST_ARGS ?=

# On x86_64 with Python 3.11 this pins the torch build that lies on this
# machine's disk; elsewhere pip makes its normal choice.
TORCH_PINS := $(shell $(PYTHON) -c "import platform,sys; print('torch==2.14.1 torchvision==0.29.1' if platform.machine()=='x86_64' and sys.version_info[:2]==(3,11) else 'torch torchvision')")

.PHONY: demo test lint docs format venv clean help

help:
	@echo "make demo    set up .venv and run 'defocus demo' (writes $(OUT)/)"
	@echo "make test    set up .venv, run ruff, build the docs (strict) and the full test suite"
	@echo "make docs    build the documentation site into site/ (mkdocs --strict)"
	@echo "make lint    ruff check + ruff format --check"
	@echo "make format  ruff format + ruff check --fix"

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e ".[dev,notebooks,dist,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/defocus demo --out $(OUT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint docs
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf runs site .pytest_cache .ruff_cache
