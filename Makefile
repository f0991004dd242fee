# Set-up and entry points. `make run` and `make test` are the README's two commands.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# The torch CPU wheel lies in a local folder on these machines (PIP_FIND_LINKS); elsewhere pass
# FIND_LINKS=<folder or index page holding torch-2.13.0+cpu>.
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(wildcard /opt/wheels))
UV_FLAGS := --python $(PY) --compile-bytecode $(if $(FIND_LINKS),--find-links $(FIND_LINKS))

# Datasets come from the mirror beside the checkout when it is there, else from the public URLs.
SHARED := $(abspath ../shared/datasets)
export DGNN_DATA_MIRROR ?= $(if $(wildcard $(SHARED)),$(SHARED))
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1

.PHONY: setup run test test-fast bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q uv==0.13.9
	$(UV) pip install $(UV_FLAGS) -q -r requirements.lock
	$(UV) pip install $(UV_FLAGS) -q --no-deps -e .
	touch $@

run: setup
	$(VENV)/bin/dgnn run --dataset cora --task classify

# Two workers, one test file each at a time (a file's module fixtures stay in one process).
test: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider -n 2 --dist loadfile

test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

bench: setup
	$(PY) -m benchmarks.bench_tune
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) .prefect .dgnn_cache
