# LiverVAE: every target sets up what it needs; `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
LIVERVAE := $(VENV)/bin/livervae
STAMP := $(VENV)/.livervae-installed
# The local wheel folder holds the CPU build; installing it before anything else keeps pip from resolving CUDA torch.
TORCH_SPEC ?= torch==2.13.0

# preprocess
SOURCE ?=
FORMAT ?=
OUT ?= runs/dataset
ARGS ?=
# demo
DEMO_OUT ?= runs/demo
# pytest
PYTEST_ARGS ?=
LINT_PATHS := src tests data_prep $(wildcard benchmarks bundles/*/scripts)

.PHONY: help install preprocess phantom demo test test-slow test-all lint format clean

help:
	@echo "make install                     create $(VENV) with pinned dependencies (idempotent)"
	@echo "make demo                        prepare the shipped real CT and a phantom cohort, print the summaries"
	@echo "make test                        run the default (fast) test suite"
	@echo "make test-slow                   run the tests marked slow"
	@echo "make preprocess SOURCE=<path> FORMAT=<fmt> OUT=<dir> [ARGS='--folds 5 ...']"
	@echo "                                 formats: dicom ircadb dicom-seg lits msd hcc-tace-seg phantom"
	@echo "make phantom OUT=<dir> [ARGS='--n 8 --seed 0']"
	@echo "make lint | format | clean"

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet $(TORCH_SPEC)
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	$(PIP) check
	@touch $@

preprocess: install
	@test -n "$(FORMAT)" || { echo "usage: make preprocess SOURCE=<path> FORMAT=<fmt> OUT=<dir>"; exit 2; }
	$(LIVERVAE) preprocess --format $(FORMAT) $(if $(SOURCE),--source "$(SOURCE)") --out "$(OUT)" $(ARGS)

phantom: install
	$(LIVERVAE) phantom --out "$(OUT)" $(ARGS)

demo: install
	$(LIVERVAE) demo --out "$(DEMO_OUT)" $(ARGS)

test: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m black --check $(LINT_PATHS)
	$(PY) -m isort --check-only $(LINT_PATHS)
	$(PY) -m flake8 $(LINT_PATHS)

format: install
	$(PY) -m isort $(LINT_PATHS)
	$(PY) -m black $(LINT_PATHS)

clean:
	rm -rf runs .pytest_cache build dist src/*.egg-info
