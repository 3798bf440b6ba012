# Two entry points: `make demo` and `make test`. Both build .venv from scratch if needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   ?= demo_run

.PHONY: install install-dev demo test lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh $(DEMO)

lint: install-dev
	$(BIN)/ruff check brats_sdk cli tests examples benchmarks

typecheck: install-dev
	$(BIN)/mypy --strict brats_sdk cli

# The numerically sensitive tests (marked numerics) once more with torch's AVX2 kernels and
# with its default ones, oneDNN held to the same level: the suite must pass on every CPU
# kind, not only on the one CI happens to run on.
test: lint typecheck
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q --durations=15
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 $(BIN)/python -m pytest -q -p no:cacheprovider -m numerics
	ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 $(BIN)/python -m pytest -q -p no:cacheprovider -m numerics

clean:
	rm -rf $(DEMO) .pytest_cache .mypy_cache build *.egg-info
