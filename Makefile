# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,fast]'
	touch $(STAMP)

## Set up, create the database and a demo account on first run, and serve on 127.0.0.1.
run: $(STAMP)
	$(BIN)/mailwing quickstart

## Set up and run the whole test suite (lint first).
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

## Benchmarks (not tests): see benchmarks/README.md.
bench: $(STAMP)
	$(BIN)/python benchmarks/pop3_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
