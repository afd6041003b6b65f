# berth: the two commands that matter are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Two installs: the service alone (`make run`), and everything the tests need
# on top of it (`make test`: test, dev and bench extras, and the reference
# OpenStack Placement in its own venv, which tests/test_import.py runs).
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-test

.PHONY: run test test-fast conformance lint typecheck check venv clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml scripts/reference | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test,dev,bench]'
	scripts/reference install
	touch $(RUN_STAMP) $(STAMP)

venv: $(STAMP)

## run: set up the service only, migrate the embedded SQLite database, serve on 127.0.0.1:8780
run: $(RUN_STAMP)
	$(VENV)/bin/berth serve

# The suite runs in TEST_WORKERS pytest-xdist workers (it mostly waits: commits' fsync,
# servers starting, fault tests' sleeps); tests/xdist_groups.py says which tests share a
# worker. TEST_WORKERS=0 runs it serially.
TEST_WORKERS ?= 4
XDIST := -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

## test: set up everything the tests need and run the whole suite (unit, storage on 3 databases,
## HTTP conformance, clients, concurrency, faults), in 4 workers; TEST_WORKERS=0: serially
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider $(XDIST)

## test-fast: SQLite only, no conformance
test-fast: $(STAMP)
	BERTH_TEST_BACKENDS=sqlite $(PY) -m pytest -q -p no:cacheprovider -m "not slow" $(XDIST)

## conformance: upstream gabbi files against a fresh server (ARGS=--only 'traits*')
conformance: $(STAMP)
	scripts/conformance $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check berth tests
	$(VENV)/bin/ruff format --check berth

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
