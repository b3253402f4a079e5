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
# ablate
ABLATION_OUT ?= runs/ablation
# demo
DEMO_OUT ?= runs/demo
# pytest; `make test` runs its files on TEST_WORKERS processes (pytest-xdist, one file per worker at a time,
# one compute thread each: about 40 % less wall time on 2 cores); TEST_WORKERS=0 runs them in one process.
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
# MONAI Label (its own environment: monailabel 0.8.5 cannot share the torch 2.13 CPU one)
ML_VENV ?= .venv-monailabel
ML_PY := $(ML_VENV)/bin/python
ML_STAMP := $(ML_VENV)/.livervae-installed
ML_TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
ML_DIR ?= runs/monailabel
ML_APP ?= $(ML_DIR)/app
STUDIES ?= $(ML_DIR)/studies
HOST ?= 127.0.0.1
PORT ?= 8000
ML_BUNDLES ?= liver_tumor_ct_segmentation,liver_ct_segmentation
ML_LIVER_EPOCHS ?= 10
ML_TUMOR_EPOCHS ?= 8
LINT_PATHS := src tests data_prep $(wildcard benchmarks bundles/*/scripts)

.PHONY: help install preprocess phantom train eval infer cv ablate bench bench-patch-vae bench-active-contour bench-inference bench-memory bench-training bench-batch bench-uncertainty bench-sim-to-real demo \
	test test-slow test-all lint format clean monailabel monailabel-install monailabel-models monailabel-prepare \
	test-monailabel

help:
	@echo "make install                     create $(VENV) with pinned dependencies (idempotent)"
	@echo "make demo [ARGS=--train]         segment the shipped real CT and unseen phantoms with the shipped weights,"
	@echo "                                 print Dice against the reference (--train: train briefly first)"
	@echo "make test [TEST_WORKERS=2]       run the default (fast) test suite, on 2 processes (0: one)"
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
	@echo "make infer INPUT=<nifti file | DICOM folder> OUTPUT=<file.nii.gz | seg.dcm> [ARGS='--series-uid <uid>']"
	@echo "make infer INPUT=<folder | DICOM tree | manifest.csv> OUTPUT=<folder> [ARGS='--workers 2']"
	@echo "                                 batch: every CT, resumable, <OUTPUT>/manifest.csv; --scheduler tcp://host:8786"
	@echo "                                 patch bundles: BUNDLE=<name> LIVER_MASK=<nifti>"
	@echo "make cv BUNDLE=<patch bundle> DATA=<dataset>:<dataset> [FOLDS='0 1'] [EPOCHS=n]   leave-one-patient-out"
	@echo "make ablate DATA=<dataset> [ARGS='--data name=<dataset> --model <model.pt>']"
	@echo "                                 tumour bundle with and without active-contour refinement"
	@echo "make bench [ARGS='--skip patch_vae_vs_unet']  every benchmark (GPU parts where present) -> runs/bench/bench.{json,md}"
	@echo "make bench-active-contour | bench-inference | bench-memory | bench-training | bench-patch-vae | bench-batch |"
	@echo "     bench-uncertainty [ARGS='--device cuda ...']"
	@echo "     bench-sim-to-real [ARGS='--variants parametric synthetic --iterations 120']"
	@echo "make monailabel [STUDIES=<dir>] [HOST=127.0.0.1] [PORT=8000]"
	@echo "                                 MONAI Label server with LiverVAE's bundles (own env $(ML_VENV))"
	@echo "make test-monailabel             start the server, check info/infer/train over HTTP, stop it (slow)"
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
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make infer INPUT=<nifti|dicom dir|folder|manifest.csv> OUTPUT=<out.nii.gz|seg.dcm|folder>"; exit 2; }
	$(LIVERVAE) infer -i "$(INPUT)" -o "$(OUTPUT)" --bundle $(BUNDLE) $(if $(LIVER_MASK),--liver-mask "$(LIVER_MASK)") \
		$(if $(DEVICE),--device $(DEVICE)) $(ARGS)

cv: install
	@test -n "$(DATA)" || { echo "usage: make cv BUNDLE=<patch bundle> DATA=<dataset>:<dataset> [FOLDS='0 1']"; exit 2; }
	$(LIVERVAE) cv --bundle $(BUNDLE) --data "$(DATA)" --preset $(PRESET) $(if $(FOLDS),--folds $(FOLDS)) \
		$(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(DEVICE),--device $(DEVICE)) $(ARGS)

# At the bundles' defaults on the study cohort (every fold, all three models: hours on a CPU for the ResNet-50
# U-Net); ARGS="--models patch_vae unet --threads 2" on a 2-core CPU, ARGS=--quick for a small run, --device cuda.
bench-patch-vae: install
	$(PY) benchmarks/patch_vae_vs_unet.py $(ARGS)

bench-active-contour: install
	$(PY) benchmarks/active_contour.py $(ARGS)

bench-inference: install
	$(PY) benchmarks/inference.py $(ARGS)

bench-memory: install
	$(PY) benchmarks/memory.py $(if $(ARGS),$(ARGS),--compare-invertd)

bench-training: install
	$(PY) benchmarks/training.py $(ARGS)

bench-batch: install
	$(PY) benchmarks/batch_inference.py $(ARGS)

bench-uncertainty: install
	$(PY) benchmarks/uncertainty.py $(ARGS)

bench-sim-to-real: install
	$(PY) benchmarks/sim_to_real.py $(ARGS)

bench: install
	$(PY) benchmarks/run_all.py $(ARGS)

ablate: install
	@test -n "$(DATA)" || { echo "usage: make ablate DATA=<dataset> [ARGS='--data name=<dataset> --model <model.pt>']"; exit 2; }
	$(LIVERVAE) ablate --data "$(DATA)" --out "$(ABLATION_OUT)" $(ARGS)

demo: install
	$(LIVERVAE) demo --out "$(DEMO_OUT)" $(ARGS)

test: install
	$(PY) -m pytest -m "not slow and not monailabel" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -m "slow and not monailabel" $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m black --check $(LINT_PATHS)
	$(PY) -m isort --check-only $(LINT_PATHS)
	$(PY) -m flake8 $(LINT_PATHS)

format: install
	$(PY) -m isort $(LINT_PATHS)
	$(PY) -m black $(LINT_PATHS)

monailabel-install: $(ML_STAMP)

$(ML_STAMP): requirements-monailabel.txt pyproject.toml
	@test -x $(ML_PY) || $(PYTHON) -m venv $(ML_VENV)
	$(ML_PY) -m pip install --quiet $(ML_TORCH_SPEC)
	$(ML_PY) -m pip install --quiet --no-deps -r requirements-monailabel.txt
	@# livervae's own declared requirements are unmet here by design (see requirements-monailabel.txt); the rest must hold.
	@$(ML_PY) -m pip check > $(ML_VENV)/pip-check.txt 2>&1 || \
		{ grep -v -e '^livervae ' -e '^WARNING' $(ML_VENV)/pip-check.txt && exit 1 || true; }
	$(ML_PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# MONAI Label needs models/model.pt in each bundle: the shipped weights are used as they are. Only a missing one
# (deleted by hand) is trained briefly on phantoms with the CPU preset (the `make demo ARGS=--train` recipe).
monailabel-models: install
	@if [ ! -f bundles/liver_ct_segmentation/models/model.pt ] || [ ! -f bundles/liver_tumor_ct_segmentation/models/model.pt ]; then \
		echo "monailabel: no trained model in bundles/*/models: training briefly on phantoms (CPU preset, several minutes)"; \
		$(LIVERVAE) phantom --out $(ML_DIR)/phantoms --n 8 --overwrite || exit $$?; \
	fi
	@if [ ! -f bundles/liver_ct_segmentation/models/model.pt ]; then \
		$(LIVERVAE) train --bundle liver_ct_segmentation --data $(ML_DIR)/phantoms --preset cpu \
			--epochs $(ML_LIVER_EPOCHS) --output $(ML_DIR)/train/liver --set val_interval=5 || exit $$?; \
	fi
	@if [ ! -f bundles/liver_tumor_ct_segmentation/models/model.pt ]; then \
		$(LIVERVAE) train --bundle liver_tumor_ct_segmentation --data $(ML_DIR)/phantoms --preset cpu \
			--epochs $(ML_TUMOR_EPOCHS) --output $(ML_DIR)/train/tumour --set val_interval=4 || exit $$?; \
	fi

ML_DEFAULT_STUDIES := $(ML_DIR)/studies
# Only the default studies folder is filled (with the shipped real CT); a folder given as STUDIES is used as it is.
monailabel-prepare: install monailabel-install monailabel-models
	@if [ "$(STUDIES)" = "$(ML_DEFAULT_STUDIES)" ]; then $(PY) -m livervae.monailabel_app studies --studies "$(STUDIES)"; \
	else test -d "$(STUDIES)" || { echo "STUDIES=$(STUDIES) is not a folder"; exit 2; }; fi
	$(ML_PY) -m livervae.monailabel_app app --app "$(ML_APP)" --bundles $(ML_BUNDLES)

# Offline flags (zoo source github so the local bundles are used as they are, --conf sam2 false, --conf preload
# false) are set in livervae.monailabel_app.server_command, which the test uses too. Ctrl-C stops the server.
monailabel: monailabel-prepare
	$(ML_PY) -m livervae.monailabel_app serve --app "$(ML_APP)" --studies "$(STUDIES)" --host $(HOST) --port $(PORT) \
		--bundles $(ML_BUNDLES)

test-monailabel: install monailabel-install monailabel-models
	LIVERVAE_MONAILABEL_VENV="$(abspath $(ML_VENV))" $(PY) -m pytest -m monailabel -s $(PYTEST_ARGS)

clean:
	rm -rf runs .pytest_cache build dist src/*.egg-info
