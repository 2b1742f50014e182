# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test test-differential lint bench bench-pop3 bench-smtp bench-imap bench-outbound bench-deliver bench-idle bench-cluster bench-import clean

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
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadgroup

## Only the differential tier: mailwing's IMAP answers against a throwaway Dovecot (as root).
test-differential: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m differential tests/differential

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

## Benchmarks (not tests): see benchmarks/README.md. `make bench` runs all of them.
## BENCH_ARGS goes to each script, e.g. make bench-imap BENCH_ARGS="--pause-after 2".
BENCH_ARGS ?=
bench: bench-pop3 bench-smtp bench-imap bench-outbound bench-deliver bench-idle

bench-pop3: $(STAMP)
	$(BIN)/python benchmarks/pop3_bench.py $(BENCH_ARGS)

bench-smtp: $(STAMP)
	$(BIN)/python benchmarks/smtp_bench.py $(BENCH_ARGS)

bench-imap: $(STAMP)
	$(BIN)/python benchmarks/imap_bench.py $(BENCH_ARGS)

bench-outbound: $(STAMP)
	$(BIN)/python benchmarks/outbound_bench.py $(BENCH_ARGS)

bench-deliver: $(STAMP)
	$(BIN)/python benchmarks/deliver_bench.py $(BENCH_ARGS)

bench-idle: $(STAMP)
	$(BIN)/python benchmarks/idle_bench.py $(BENCH_ARGS)

bench-cluster: $(STAMP)   # root: network namespaces, HAProxy, two nodes on PostgreSQL
	$(BIN)/python benchmarks/cluster_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

bench-import: $(STAMP)
	$(BIN)/python benchmarks/import_bench.py $(BENCH_ARGS)
