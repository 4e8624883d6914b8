# Each target bootstraps the environment it needs on a fresh machine (uv + the locked packages).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv from PATH when present, else the module installed by `bootstrap`.
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")

.PHONY: help bootstrap demo test lint format bench bench-peers deploy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

bootstrap: $(VENV)/.bootstrapped ## create .venv from uv.lock

$(VENV)/.bootstrapped: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 \
		|| $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

demo: bootstrap ## run the main flow on DuckDB with generated sample sources
	$(BIN)/elt demo

# One pytest-xdist worker per core, each with its own PostgreSQL server, Prefect API and folders;
# idle workers take tests queued for the busy one (the long end-to-end tests are not all in one file).
test: bootstrap ## every test, on DuckDB and PostgreSQL (a throwaway server unless ELT_TEST_POSTGRES_URL)
	$(BIN)/pytest -n auto --dist worksteal

lint: bootstrap ## ruff and sqlfluff (dbt templater)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	ELT_DUCKDB_PATH=$$(mktemp -d)/lint.duckdb $(BIN)/sqlfluff lint models tests/dbt

format: bootstrap ## apply ruff format and sqlfluff fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	ELT_DUCKDB_PATH=$$(mktemp -d)/lint.duckdb $(BIN)/sqlfluff fix models tests/dbt

bench: bootstrap ## benchmarks (see bench/README.md); figures go to bench/results/
	$(BIN)/python bench/bench_sales_csv_load.py
	$(BIN)/python bench/bench_area_rollups.py
	$(BIN)/python bench/bench_odk_load.py --no-attachments --output bench/results/odk_load.no_attachments.md
	$(BIN)/python bench/bench_no_change_run.py
	$(BIN)/python bench/bench_publish.py

# The peers install into bench/.peers/<name> (from PyPI, once), never into the project's environment.
bench-peers: bootstrap ## the sales CSV with sling, pipelinewise, ingestr and Meltano's target beside the loader
	$(BIN)/python bench/bench_peers.py

# Defaults only where the operator has set nothing: UTC schedules, ODK Central every 15 minutes.
deploy: bootstrap ## register prefect.yaml's deployments with the Prefect server at PREFECT_API_URL
	@test -n "$$PREFECT_API_URL" || { echo "set PREFECT_API_URL to your Prefect server's API"; exit 2; }
	$(BIN)/prefect work-pool inspect elt-process >/dev/null 2>&1 \
		|| $(BIN)/prefect work-pool create elt-process --type process
	$(BIN)/prefect variable get elt_timezone >/dev/null 2>&1 || $(BIN)/prefect variable set elt_timezone UTC
	$(BIN)/prefect variable get odk_central_interval_minutes >/dev/null 2>&1 \
		|| $(BIN)/prefect variable set odk_central_interval_minutes 15
	$(BIN)/prefect --no-prompt deploy --all

clean: ## remove the environment, dbt's output and the local warehouse
	rm -rf $(VENV) target logs data
