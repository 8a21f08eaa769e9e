# Fitboard: `make run` starts everything, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SHARED_DATA := $(abspath ../shared/data)

# tests use the real services at 127.0.0.1 (override to point elsewhere)
TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
export TEST_DATABASE_URL TEST_REDIS_URL
export FITBOARD_CHROMIUM ?= /usr/bin/chromium
export TF_CPP_MIN_LOG_LEVEL ?= 2

.DEFAULT_GOAL := help
.PHONY: help install run api worker migrate test soak lint bench bench-recipes clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed (python3.11 not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install Fitboard with its test tools

run: install ## Start the whole stack (SQLite, embedded Redis, worker, API) at http://127.0.0.1:8000
	$(BIN)/python -m backend.stack

api: install migrate ## Start only the API (uses DATABASE_URL and REDIS_URL)
	$(BIN)/python -m uvicorn backend.main:app --host $${FITBOARD_HOST:-127.0.0.1} --port $${FITBOARD_PORT:-8000} --workers $$($(BIN)/python -c 'from backend.config import get_settings; print(get_settings().api_workers)')

worker: install ## Start only a Celery worker (needs FITBOARD_URL, FITBOARD_WORKER_TOKEN and REDIS_URL)
	$(BIN)/python -m celery -A worker.celery_app worker --pool threads \
		--concurrency $${FITBOARD_WORKER_CONCURRENCY:-1} --queues $${FITBOARD_QUEUE:-fitboard} --loglevel INFO

migrate: install ## Upgrade the database (DATABASE_URL, or the embedded SQLite) to the latest schema
	$(BIN)/python -m backend.db.migrate

test: install ## Run every test (needs PostgreSQL and Redis at 127.0.0.1 and /usr/bin/chromium)
	FITBOARD_TEST_DATA_DIR=$${FITBOARD_TEST_DATA_DIR:-$(SHARED_DATA)} $(BIN)/pytest

soak: install ## Opt-in soak: 200 tiny runs (GPUs 0/1/2, two launchers) on 2 workers x 2 fake GPUs (about 15 min on 2 cores)
	FITBOARD_SOAK=1 FITBOARD_TEST_DATA_DIR=$${FITBOARD_TEST_DATA_DIR:-$(SHARED_DATA)} $(BIN)/pytest -s tests/e2e/test_soak.py

lint: install ## ruff, mypy and the import contracts (lint-imports)
	$(BIN)/ruff check backend worker tests bench migrations
	$(BIN)/ruff format --check backend worker tests bench migrations
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install ## Benchmarks: monitoring overhead (vs plain fit, TensorBoard, MLflow); runs page at 100k runs; run page at 1M points; a 1,000-trial sweep; SSE viewers of one live run; a managed run's point -> viewer and GET /runs while 3 train; points ingested over HTTP; the dispatcher at 10k queued runs; submit -> first batch, cold vs standby
	$(BIN)/pip install --quiet -e '.[bench]'
	FITBOARD_DATA_DIR=$${FITBOARD_DATA_DIR:-$(SHARED_DATA)} $(BIN)/python bench/overhead.py
	$(BIN)/python bench/runs_page.py
	$(BIN)/python bench/run_page.py
	$(BIN)/python bench/sweeps.py
	$(BIN)/python bench/viewers.py
	FITBOARD_DATA_DIR=$${FITBOARD_DATA_DIR:-$(SHARED_DATA)} $(BIN)/python bench/live.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/dispatch.py
	FITBOARD_DATA_DIR=$${FITBOARD_DATA_DIR:-$(SHARED_DATA)} $(BIN)/python bench/startup.py

bench-recipes: install ## Reproduce mnist-mlp and imdb-lstm on the full data (about 15 min on 2 cores)
	FITBOARD_DATA_DIR=$${FITBOARD_DATA_DIR:-$(SHARED_DATA)} $(BIN)/python bench/recipes.py

clean: ## Remove the virtual environment and the embedded stack's data (.fitboard)
	rm -rf $(VENV) .fitboard
