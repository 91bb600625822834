# One command sets up and runs the main job, one sets up and runs the tests.
# Both create .venv if it is missing. torch is pinned to the local CPU wheel (docs/DESIGN.md §8).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
# Idle OpenMP threads sleep instead of spinning: spinning threads starve other processes
# (eval workers, data loaders, a second job) on small CPUs. `care` itself sets these three when
# they are unset (care.cli.ENV_DEFAULTS); the exports cover pytest and scripts run from here.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo test test-fast clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[sim,dev,libero]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) data/demo runs/demo
