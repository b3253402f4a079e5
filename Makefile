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
# train / eval / infer
BUNDLE ?= liver_tumor_ct_segmentation
DATA ?=
FOLD ?= 0
EPOCHS ?=
DEVICE ?=
PRESET ?= default
INPUT ?=
OUTPUT ?=
LIVER_MASK ?=
FOLDS ?=
# demo
DEMO_OUT ?= runs/demo
# pytest
PYTEST_ARGS ?=
LINT_PATHS := src tests data_prep $(wildcard benchmarks bundles/*/scripts)

.PHONY: help install preprocess phantom train eval infer cv bench-patch-vae demo test test-slow test-all lint format clean

help:
	@echo "make install                     create $(VENV) with pinned dependencies (idempotent)"
	@echo "make demo                        prepare the shipped real CT and a phantom cohort, print the summaries"
	@echo "make test                        run the default (fast) test suite"
	@echo "make test-slow                   run the tests marked slow"
	@echo "make preprocess SOURCE=<path> FORMAT=<fmt> OUT=<dir> [ARGS='--folds 5 ...']"
	@echo "                                 formats: dicom ircadb dicom-seg lits msd hcc-tace-seg phantom"
	@echo "make phantom OUT=<dir> [ARGS='--n 8 --seed 0']"
	@echo "make train BUNDLE=<name> DATA=<dataset> [FOLD=k] [EPOCHS=n] [DEVICE=cuda] [PRESET=cpu]"
	@echo "                                 bundles: liver_ct_segmentation (stage 1, train first),"
	@echo "                                          liver_tumor_ct_segmentation (stage 2 + whole chain)"
	@echo "                                          liver_tumor_patch_vae_classification (patch VAE),"
	@echo "                                          liver_tumor_unet_segmentation (its U-Net baselines);"
	@echo "                                 the patch bundles take DATA=<dataset>:<dataset>:... (one cohort)"
	@echo "make eval BUNDLE=<name> DATA=<dataset> [FOLD=k]"
	@echo "make infer INPUT=<nifti file | DICOM folder> OUTPUT=<file.nii.gz> [BUNDLE=<name> LIVER_MASK=<nifti>]"
	@echo "make cv BUNDLE=<patch bundle> DATA=<dataset>:<dataset> [FOLDS='0 1'] [EPOCHS=n]   leave-one-patient-out"
	@echo "make bench-patch-vae [ARGS='--device cuda ...']  patch VAE vs U-Nets on the same folds (CPU: --quick)"
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

train: install
	@test -n "$(DATA)" || { echo "usage: make train BUNDLE=<name> DATA=<dataset> [FOLD=k] [EPOCHS=n] [DEVICE=cuda]"; exit 2; }
	$(LIVERVAE) train --bundle $(BUNDLE) --data "$(DATA)" --fold $(FOLD) --preset $(PRESET) \
		$(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(DEVICE),--device $(DEVICE)) $(ARGS)

eval: install
	@test -n "$(DATA)" || { echo "usage: make eval BUNDLE=<name> DATA=<dataset> [FOLD=k]"; exit 2; }
	$(LIVERVAE) eval --bundle $(BUNDLE) --data "$(DATA)" --fold $(FOLD) $(if $(DEVICE),--device $(DEVICE)) $(ARGS)

infer: install
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make infer INPUT=<nifti|dicom dir> OUTPUT=<out.nii.gz>"; exit 2; }
	$(LIVERVAE) infer -i "$(INPUT)" -o "$(OUTPUT)" --bundle $(BUNDLE) $(if $(LIVER_MASK),--liver-mask "$(LIVER_MASK)") \
		$(if $(DEVICE),--device $(DEVICE)) $(ARGS)

cv: install
	@test -n "$(DATA)" || { echo "usage: make cv BUNDLE=<patch bundle> DATA=<dataset>:<dataset> [FOLDS='0 1']"; exit 2; }
	$(LIVERVAE) cv --bundle $(BUNDLE) --data "$(DATA)" --preset $(PRESET) $(if $(FOLDS),--folds $(FOLDS)) \
		$(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(DEVICE),--device $(DEVICE)) $(ARGS)

# CPU-sized by default (--quick); on a GPU e.g. ARGS="--device cuda --phantoms 8 --epochs 40".
bench-patch-vae: install
	$(PY) benchmarks/patch_vae_vs_unet.py $(if $(ARGS),$(ARGS),--quick)

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
