# Loop store monitoring: install, run, test.
#   make run     - the main job on embedded defaults (in-memory store and broker), API on :8000
#   make test    - the whole test suite (integration tests skip unless `make services` is up)
# `make help` lists everything.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements-installed
WEB_BIND ?= 0.0.0.0:8000
WORKER_CONCURRENCY ?= 2
PYTEST_ARGS ?=

.PHONY: help install services stop-services services-status worker web run migrate \
        test test-all test-integration lint bench bench-service ci clean-var

help:
	@echo "make install         create .venv and install requirements-dev.txt (runtime + tests, lint; safe to re-run)"
	@echo "make run             serve the API on :8000 with the sample data/ in memory (no servers needed)"
	@echo "make test            run the whole test suite"
	@echo "make services        start Redis and a MongoDB-wire server on loopback (if not already up)"
	@echo "make stop-services   stop the servers 'make services' started"
	@echo "make test-all        make services, then the whole suite (integration tests included)"
	@echo "make worker / web    run the Celery worker / gunicorn against the real servers"
	@echo "make lint            ruff check, ruff format --check and mypy (CI runs it)"
	@echo "make ci              what CI runs (.ci/run)"
	@echo "make bench / bench-service / bench-load   benchmarks (offline engine / service / HTTP load)"
	@echo "make screenshots     retake docs/screenshots/ with the browser tests"
	@echo "make bench-dashboard  dashboard render times in headless Chromium on the Loop-2025-sized set"

# The stamp makes re-runs a no-op until a requirements file changes. requirements.txt is what the
# service runs on (the Docker image); requirements-dev.txt adds the tests' and lint's tools.
install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $@

services: install
	scripts/services.sh start

stop-services:
	scripts/services.sh stop

services-status:
	@scripts/services.sh status

migrate: install
	$(PY) manage.py migrate --noinput

worker: install
	@mkdir -p var
	$(VENV)/bin/celery -A myproject worker -B -s var/celerybeat-schedule -l info --concurrency $(WORKER_CONCURRENCY)

# --timeout 300: a sync worker reading a large POST /imports/ upload (140 MB at a few MB/s) must not be
# killed by gunicorn's default 30 s worker timeout.
web: install migrate
	$(VENV)/bin/gunicorn myproject.wsgi:application --bind $(WEB_BIND) --workers 2 --timeout 300 --access-logfile -

# Embedded defaults: mongomock store and an in-memory broker, so a fresh machine with only
# Python and make can run this alone. MONGO_URL / CELERY_BROKER_URL (environment or make
# variables) point it at real servers instead.
RUN_MONGO_URL := $(or $(MONGO_URL),mongomock://)
RUN_BROKER_URL := $(or $(CELERY_BROKER_URL),memory://)
run: install
	MONGO_URL=$(RUN_MONGO_URL) CELERY_BROKER_URL=$(RUN_BROKER_URL) $(PY) manage.py serve_demo

test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-integration: install
	$(VENV)/bin/pytest -m integration $(PYTEST_ARGS)

# The README's dashboard pictures, retaken by the browser tests against the real stack.
.PHONY: screenshots
screenshots: services
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(VENV)/bin/pytest -m browser $(PYTEST_ARGS)

test-all: services
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# mypy's settings (files, django-stubs plugin, cache in var/) are in pyproject.toml.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/bench_offline.py

# BENCH_SERVICE_ARGS=--scales 1 for the quick run (default: 1x and 10x).
bench-service: install
	$(PY) bench/bench_service.py $(BENCH_SERVICE_ARGS)

# Dashboard render times in headless Chromium on the Loop-2025-sized set (needs `make services`
# and Debian's chromium): BENCH_DASHBOARD_ARGS="--runs 5".
.PHONY: bench-dashboard
bench-dashboard: install
	$(PY) bench/bench_dashboard.py $(BENCH_DASHBOARD_ARGS)

# What CI runs: install, services (installing/building them when needed), tests with CI=true.
ci:
	bash .ci/run

# Removes local server data and logs (stop the services first).
clean-var:
	rm -rf var

# Load benchmark (issue 4): 50 clients polling GET /get_report/<id>/ for 30 s against gunicorn
# + a celery worker while reports are generated; prints req/s, p50/p99 and errors (needs `make services`).
.PHONY: bench-load
bench-load: install
	$(PY) bench/bench_load.py
