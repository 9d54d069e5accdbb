# The two set-up commands of the README, plus helpers. Each target creates .venv when it is
# missing and installs what is needed first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned here only, for the wheels on this machine's disk; pyproject keeps ranges.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.visiontl-installed

.PHONY: demo test lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(wildcard plugins/*/__init__.py) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: run the quickstart recipe (no downloads, no ../shared)
demo: $(STAMP)
	$(BIN)/visiontl run recipes/quickstart.yaml

## test: the test suite
test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check visiontl plugins tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/feature_cache.py
	$(BIN)/python benchmarks/loop_overhead.py

clean:
	rm -rf $(VENV) runs
