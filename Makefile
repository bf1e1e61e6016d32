# One command to set up and run the main job, one to set up and run the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KB := $(VENV)/bin/kondo-bench

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

# torch is pinned and installed first: its CPU build is on these machines' disk, while an
# unpinned `torch` requirement would download several GB of CUDA packages.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,joblib,lm,slurm,tensorboard,wandb]"
	touch $@

# The main job: MNIST as a contextual bandit (`data mnist` first: it uses the MNIST files the
# search finds, after checking them, and downloads only what is missing), PG vs DG vs DG-K (rho = 3%), default settings,
# ending with the three side by side (final test error, backward samples, modelled cost,
# wall-clock) and a figure of their learning curves (runs/demo/plots/curves.png).
# DG-K runs apart: keep_rate is a gate's knob, and PG and DG run ungated (a knob a run ignores is an error).
demo: setup
	$(KB) data mnist
	$(KB) run -m task=mnist method=pg,dg hydra.sweep.dir=runs/demo
	$(KB) run task=mnist method=dgk keep_rate=0.03 hydra.run.dir=runs/demo/2
	$(KB) plot runs/demo

# -n auto: one pytest worker per core (pytest-xdist); the suite's subprocess-heavy tests
# then use both cores of a 2-core CI machine instead of one.
test: setup
	$(PY) -m pytest -q -n auto

# Rewrites results/bench_core_cpu.csv, the table README's Performance section quotes.
bench: setup
	$(PY) scripts/bench_core.py --out results/bench_core_cpu.csv

clean:
	rm -rf runs multirun outputs .pytest_cache
