# Loop store monitoring: install, run, test.
#   make run     - the main job on embedded defaults (in-memory store and broker), API on :8000 (PORT=...)
#   make test    - the whole test suite (integration tests skip unless `make services` is up)
# `make help` lists everything.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements-installed
# `make run` listens on PORT (all addresses); `make web` on WEB_BIND.
PORT ?= 8000
WEB_BIND ?= 0.0.0.0:8000
# `make worker`: which kinds (empty: every kind, as three workers; `reports`, `notifications,maintenance`: one
# worker for those) and how many processes each worker runs (empty: per kind). scripts/worker.sh explains.
WORKER_QUEUES ?=
WORKER_CONCURRENCY ?=
PYTEST_ARGS ?=

.PHONY: help install services stop-services services-status worker beat web run migrate example-zip \
        test test-all test-integration test-accounts-postgres lint bench bench-service bench-scale bench-history ci clean-var

help:
	@echo "make install         create .venv and install requirements-dev.txt (safe to re-run)"
	@echo "make run             serve the API on :8000 (PORT=8001 for another) with the sample data/ in memory (no servers needed)"
	@echo "make test            run the whole test suite (the account tests again on PostgreSQL when it is up)"
	@echo "make services        start Redis, a MongoDB-wire server and PostgreSQL (accounts) on loopback (if not already up)"
	@echo "make stop-services   stop the servers 'make services' started"
	@echo "make test-all        make services, then the whole suite (integration tests included)"
	@echo "make worker / beat / web   Celery workers (WORKER_QUEUES=reports: one kind) / celery beat (one) / gunicorn on real servers"
	@echo "make example-zip     var/loop-export.zip from data/ (the POST /imports/ example of docs/api.md)"
	@echo "make lint            ruff check, ruff format --check and mypy (CI runs it)"
	@echo "make ci              what CI runs (.ci/run)"
	@echo "make bench / bench-service / bench-load   benchmarks (offline engine / service / HTTP load)"
	@echo "make bench-metrics   GET /metrics latency, then what bench-ops measures (BENCH_METRICS_ARGS)"
	@echo "make bench-ops       logs + metrics on vs off: bench-load req/s, report and offline time, PASS/FAIL at 5% (BENCH_OPS_ARGS)"
	@echo "make bench-scale      a report in shards over 1, 2, 4 report workers, their RSS, an alert under a report (BENCH_SCALE_ARGS)"
	@echo "make bench-history   the daily figures: build, hourly update, store history, trend, movers (BENCH_HISTORY_ARGS)"
	@echo "make bench-load-mixed  pollers, readers and triggers at once, then with slow clients (BENCH_MIXED_ARGS)"
	@echo "make screenshots     retake docs/screenshots/ with the browser tests"
	@echo "make bench-dashboard  dashboard render times in headless Chromium on the Loop-2025-sized set"
	@echo "make bench-logs      what the structured logs cost per request and per task (text and json)"

# requirements.txt is the runtime (what the Docker image installs); requirements-dev.txt adds
# tests, lint and the demo's mongomock. The stamp makes re-runs a no-op until either changes.
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

# Workers by kind of work (reports, imports, notifications, maintenance): with WORKER_QUEUES empty, one
# worker for reports and imports, one for notifications, one for maintenance, so a delivery never waits for
# a report's process slot; WORKER_QUEUES=reports (or notifications,maintenance) starts one worker for those.
worker: install
	WORKER_CONCURRENCY='$(WORKER_CONCURRENCY)' scripts/worker.sh $(WORKER_QUEUES)

# The periodic tasks (CELERY_BEAT_SCHEDULE: hourly clean-ups, the lost-job sweep every 30 s): run exactly one beat.
beat: install
	@mkdir -p var
	$(VENV)/bin/celery -A myproject beat -s var/celerybeat-schedule -l info

# gunicorn.conf.py (as the image and compose): threaded workers (WEB_CONCURRENCY, WEB_THREADS), limits,
# JSON errors. Without nginx in front, read "Serving without the front" in docs/operations.md.
web: install migrate
	WEB_BIND=$(WEB_BIND) $(VENV)/bin/gunicorn -c gunicorn.conf.py

# Embedded defaults: mongomock store and an in-memory broker, so a fresh machine with only
# Python and make can run this alone. MONGO_URL / CELERY_BROKER_URL (environment or make
# variables) point it at real servers instead.
RUN_MONGO_URL := $(or $(MONGO_URL),mongomock://)
RUN_BROKER_URL := $(or $(CELERY_BROKER_URL),memory://)
RUN_PUBLIC_BASE_URL := $(or $(PUBLIC_BASE_URL),http://localhost:$(PORT))
run: install
	MONGO_URL=$(RUN_MONGO_URL) CELERY_BROKER_URL=$(RUN_BROKER_URL) PUBLIC_BASE_URL=$(RUN_PUBLIC_BASE_URL) \
		$(PY) manage.py serve_demo --port $(PORT)

# The sample data as a Loop .zip, for the POST /imports/ example (docs/api.md).
example-zip: var/loop-export.zip

var/loop-export.zip: data/store_status.csv data/menu_hours.csv data/timezones.csv data/stores.csv
	@mkdir -p var
	rm -f $@
	cd data && $(CURDIR)/$(PY) -m zipfile -c $(CURDIR)/$@ store_status.csv menu_hours.csv timezones.csv stores.csv

# The PostgreSQL pass runs beside the main one (niced: it is CPU work in one process, the main pass mostly
# waits on its servers), its output held until both end; every test's databases and queues are its own.
# So do the tests of BESIDE_TESTS when PYTEST_ARGS is empty (with arguments, everything runs in the main
# pass): modules that mostly wait on the wall clock or on servers of their own (the two beats' three minute
# slots, killed workers and visibility timeouts, stopped Redis/MongoDB, stacks started per test) or on
# subprocess start-ups (one `manage.py check` per settings case); together ~7 of the main pass's ~21 minutes.
BESIDE_TESTS := tests/integration/test_schedules_http.py tests/integration/test_faults.py \
	tests/integration/test_report_shards_http.py tests/integration/test_alert_faults.py tests/test_settings_checks.py \
	tests/integration/test_accounts_cache_http.py tests/integration/test_hourly_http.py
test: install
	@mkdir -p var; log=$$(mktemp var/test-accounts-postgres.XXXXXX); \
	nice -n 10 $(MAKE) --no-print-directory test-accounts-postgres >"$$log" 2>&1 & pg=$$!; \
	beside=""; slowrc=0; \
	if [ -z '$(strip $(PYTEST_ARGS))' ]; then \
		slowlog=$$(mktemp var/test-beside.XXXXXX); \
		$(VENV)/bin/pytest $(BESIDE_TESTS) >"$$slowlog" 2>&1 & slow=$$!; \
		beside="$(foreach f,$(BESIDE_TESTS),--ignore=$(f))"; \
	fi; \
	$(VENV)/bin/pytest $$beside $(PYTEST_ARGS); rc=$$?; \
	if [ -n "$$beside" ]; then \
		wait $$slow; slowrc=$$?; echo "== beside the main pass: $(BESIDE_TESTS)"; cat "$$slowlog"; rm -f "$$slowlog"; \
	fi; \
	wait $$pg; pgrc=$$?; cat "$$log"; rm -f "$$log"; \
	echo "== main pass: exit $$rc; beside it: exit $$slowrc; account tests on PostgreSQL: exit $$pgrc"; \
	[ $$rc -eq 0 ] && [ $$slowrc -eq 0 ] && [ $$pgrc -eq 0 ]

# The tests marked `accounts` (Django's own database: users, keys, sessions, audit) once more on PostgreSQL:
# TEST_POSTGRES_URL, by default the cluster `make services` started here (.ci/run sets it). Without one
# the pass is skipped, and fails under CI. pytest-django creates and drops its own test_<name> database.
TEST_POSTGRES_URL ?= $(shell scripts/services.sh url postgres 2>/dev/null)
test-accounts-postgres: install
	@url='$(TEST_POSTGRES_URL)'; \
	if [ -z "$$url" ]; then \
		if [ -n "$$CI" ]; then echo "TEST_POSTGRES_URL is not set: CI runs the account tests on PostgreSQL too (make services starts it)" >&2; exit 1; fi; \
		echo "== account tests on PostgreSQL: skipped (no TEST_POSTGRES_URL; \`make services\` starts a local PostgreSQL)"; exit 0; \
	fi; \
	echo "== the account tests again, on PostgreSQL"; \
	DATABASE_URL="$$url" $(VENV)/bin/pytest -m accounts $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "(no account tests among the selected ones)"; rc=0; fi; \
	exit $$rc

test-integration: install
	$(VENV)/bin/pytest -m integration $(PYTEST_ARGS)

# The README's dashboard pictures, retaken by the browser tests against the real stack.
.PHONY: screenshots
screenshots: services
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(VENV)/bin/pytest -m browser $(PYTEST_ARGS)

test-all: services
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-accounts-postgres

# mypy's settings (files, django-stubs plugin, cache in var/) are in pyproject.toml.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# BENCH_OFFLINE_ARGS="--with-30x" adds the 30x set in store chunks (issue 20; ~4.2 GB generated into bench-data/).
BENCH_OFFLINE_ARGS ?=
bench: install
	$(PY) bench/bench_offline.py $(BENCH_OFFLINE_ARGS)

# BENCH_SERVICE_ARGS=--scales 1 for the quick run (default: 1x and 10x).
bench-service: install
	$(PY) bench/bench_service.py $(BENCH_SERVICE_ARGS)

# Scale-out (issue 20, bench/bench_scale.py): the same report with REPORT_SHARDS over 1, 2 and 4 report workers
# (trigger-to-Complete, ratio to 1, peak RSS of every worker process, CSV == offline), an hour appended, and an
# alert's batch answer -> webhook while a report runs (needs `make services`). Default 10x;
# BENCH_SCALE_ARGS="--scale 1" (quick), "--scale 30", "--reuse-db NAME" (a database holding the set).
BENCH_SCALE_ARGS ?=
bench-scale: install
	$(PY) bench/bench_scale.py $(BENCH_SCALE_ARGS)
# The daily figures (docs/history.md) on the set of `make bench`: BENCH_HISTORY_ARGS="--scale 10".
bench-history: install
	$(PY) bench/bench_history.py $(BENCH_HISTORY_ARGS)

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

# What the structured logs cost (issue 21): microseconds per request and per task, in process (no servers).
.PHONY: bench-logs
bench-logs: install
	$(PY) bench/bench_logs.py

# Load benchmark (issue 4): 50 clients polling GET /get_report/<id>/ for 30 s against gunicorn
# + a celery worker while reports are generated; prints req/s, p50/p99 and errors (needs `make services`).
.PHONY: bench-load
bench-load: install
	$(PY) bench/bench_load.py $(BENCH_LOAD_ARGS)

# What the metrics cost (issue 21): GET /metrics' latency, and bench-load's throughput with metrics on and off
# in the same run (needs `make services`). BENCH_METRICS_ARGS="--rounds 2 --duration 30".
BENCH_METRICS_ARGS ?=
.PHONY: bench-metrics
bench-metrics: install
	$(PY) bench/bench_metrics.py $(BENCH_METRICS_ARGS)

# Issue 21's budget (logging and metrics together <= 5%): the same script without the scrape timings. Two stacks
# up at once, production (LOG_FORMAT=json, LOG_ACCESS=1, METRICS_ENABLED=1) and everything off; bench-load's load,
# trigger -> Complete and the offline generate_report alternating between them (ABBA), the median of the pairs'
# ratios, PASS/FAIL. BENCH_OPS_ARGS="--data bench-data/stores36780-days60-seed2025-real --parts report,offline".
BENCH_OPS_ARGS ?=
.PHONY: bench-ops
bench-ops: install
	$(PY) bench/bench_metrics.py --parts load,report,offline $(BENCH_OPS_ARGS)

# Mixed load (issue 16): pollers (POST /store_status/), readers (stores, timelines, reports) and report
# triggers at once against gunicorn (gunicorn.conf.py) + a celery worker, then again with slow clients;
# checks 5xx, lost polls, p99 per kind, flat memory and the slow clients' effect (needs `make services`).
# The issue's run: BENCH_MIXED_ARGS="--scale 10 --duration 600 --clients 200 --slow 20 [--front]";
# smoke run: BENCH_MIXED_ARGS="--scale 1 --duration 30 --clients 20 --slow 2".
BENCH_MIXED_ARGS ?=
.PHONY: bench-load-mixed
bench-load-mixed: install
	$(PY) bench/bench_mixed.py $(BENCH_MIXED_ARGS)
