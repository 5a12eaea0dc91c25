# ZipLine: `make run` starts everything for a first look; `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Django 6.0 (built-in django.tasks) needs Python 3.12+: the first one found, or none.
VENV6 := .venv-django6
STAMP6 := $(VENV6)/.installed
ifndef PYTHON312
PYTHON312 := $(shell for p in python3.14 python3.13 python3.12 $(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3); do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && echo $$p && break; done)
endif
TASKS_TESTS := tests/test_django_tasks.py tests/test_django_tasks_workers.py
# The worker, scheduler, API and broker tests that run again on a Redis Cluster of the run's own (three masters
# with a replica each; ZIPLINE_TEST_REDIS=cluster, tests/cluster_session.py). Left out, as they need one node:
# test_redis_checks.py and test_preflight.py (a single Redis's refusals and eviction policy), test_redis_full.py
# (maxmemory on a redis-server of its own), test_workers_partition.py (a TCP proxy in front of one Redis: a
# cluster client reaches each node at the address it announces, around the proxy), test_redis_sentinel.py
# (Sentinel), test_broker_cluster.py and test_redis_cluster.py (clusters of their own, run by make test).
# Tests that start a redis-server of their own (own_redis) run on it, one node. test_soak.py runs at its
# default size on a cluster of its own (three masters with a replica each; a master is killed for F12).
CLUSTER_TESTS := tests/test_soak.py tests/test_broker.py tests/test_flow_broker.py tests/test_workers.py tests/test_worker_queues.py \
	tests/test_workers_lost_claims.py tests/test_workers_odd_outcomes.py tests/test_flow_workers.py \
	$(wildcard tests/test_scheduler_*.py) $(wildcard tests/test_api_*.py) tests/test_client.py tests/test_service.py \
	tests/test_expiry.py tests/test_uniqueness.py tests/test_security_throttle.py tests/test_metrics.py
# What make test runs on a cluster (about 40 s): the broker, the reconciler and rebuild under the scheduler's
# locks, reclaim, pause, resume, statistics and the worker registry through the API, a pool of several queues;
# and the soak on a cluster of its own at a bounded size (CLUSTER_QUICK_SOAK: about 60 s more).
CLUSTER_QUICK_TESTS := tests/test_broker.py tests/test_scheduler_reconcile.py tests/test_scheduler_reclaim.py \
	tests/test_api_queues.py tests/test_worker_queues.py tests/test_soak.py
CLUSTER_QUICK_SOAK := ZIPLINE_SOAK_JOBS=600 ZIPLINE_SOAK_FAULT_EVERY=2-3
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test test-django6 test-cluster soak soak-cluster lint format bench bench-enqueue bench-api bench-grpc bench-wait bench-floor bench-startup bench-tasks bench-flow bench-cpu bench-cluster migrate clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

$(STAMP6): requirements-django6.txt
	test -x $(VENV6)/bin/python || $(PYTHON312) -m venv $(VENV6)
	$(VENV6)/bin/python -m pip install --quiet --upgrade pip
	$(VENV6)/bin/python -m pip install --quiet -r requirements-django6.txt
	touch $(STAMP6)

## run: SQLite + the local Redis (or an in-memory stand-in), API + workers + scheduler
run: $(STAMP)
	$(BIN)/python -m zipline_site.firstlook

## test: the whole suite on PostgreSQL + Redis, then a smoke subset on SQLite, then a subset on a Redis Cluster,
## then the Django tasks tests on Django 6.0 (test-django6)
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider
	mkdir -p .local
	ZIPLINE_TEST_DATABASE_URL=sqlite:///$(CURDIR)/.local/test-smoke.sqlite3 $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" tests/test_states.py tests/test_client.py tests/test_broker.py tests/test_sqlite_smoke.py
	ZIPLINE_TEST_REDIS=cluster $(CLUSTER_QUICK_SOAK) $(BIN)/python -m pytest -q -p no:cacheprovider $(CLUSTER_QUICK_TESTS)
	$(MAKE) --no-print-directory test-django6

## test-django6: the Django tasks tests again on Django 6.0's django.tasks, where a Python 3.12+ is found
test-django6:
ifeq ($(strip $(PYTHON312)),)
	@echo "test-django6: skipped: no Python 3.12 or newer found; the Django tasks tests ran on Django 5.2 + django-tasks only"
else
	$(MAKE) --no-print-directory $(STAMP6)
	@echo "test-django6: the Django tasks tests on Django 6.0's built-in django.tasks ($(PYTHON312))"
	$(VENV6)/bin/python -m pytest -q -p no:cacheprovider $(TASKS_TESTS)
endif

## test-cluster: the worker, scheduler, API and broker tests on a Redis Cluster of the run's own (8 to 14 minutes on 2 cores),
## and the soak at its default size on a cluster of its own (about 1.5 minutes more)
test-cluster: $(STAMP)
	ZIPLINE_TEST_REDIS=cluster $(BIN)/python -m pytest -q -p no:cacheprovider $(CLUSTER_TESTS)

## soak: the F23 soak at full size: 100,000 jobs, a random fault every 30-60 s (about 7 minutes)
soak: $(STAMP)
	ZIPLINE_SOAK_JOBS=100000 ZIPLINE_SOAK_FAULT_EVERY=30-60 $(BIN)/python -m pytest -p no:cacheprovider -s -m soak tests/test_soak.py

## soak-cluster: the same soak on a Redis Cluster of its own (three masters with a replica each), F12 (a master
## SIGKILLed, its replica promoted) in place of F11
soak-cluster: $(STAMP)
	ZIPLINE_TEST_REDIS=cluster ZIPLINE_SOAK_JOBS=100000 ZIPLINE_SOAK_FAULT_EVERY=30-60 $(BIN)/python -m pytest -p no:cacheprovider -s -m soak tests/test_soak.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(STAMP)
	$(BIN)/python manage.py migrate

bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-enqueue: $(STAMP)
	$(BIN)/python bench/enqueue_bench.py

## bench-api: REST single and batch submits against a bare DRF create view, the product's gunicorn (installs wrk if missing)
bench-api: $(STAMP)
	$(BIN)/python bench/api_bench.py $(ARGS)

## bench-grpc: gRPC unary SubmitJob against REST's single submit, 16 concurrent clients each (installs wrk and h2load if missing)
bench-grpc: $(STAMP)
	$(BIN)/python bench/grpc_bench.py

## bench-wait: REST wait, a real worker's end of a job to the waiting GET's answer (issue 17: under 50 ms)
bench-wait: $(STAMP)
	$(BIN)/python bench/wait_bench.py

bench-floor: $(STAMP)
	$(BIN)/python bench/latency_floor.py

## bench-startup: runworkers' start-up (3 cold starts), loaded modules, and memory after a 10,000-job drain
bench-startup: $(STAMP)
	$(BIN)/python bench/startup_memory.py

bench-tasks: $(STAMP)
	$(BIN)/python bench/tasks_bench.py

## bench-flow: flow control's bar: no-limit drain vs before, 1,000 groups vs plain, a 1000/s queue vs its limit
bench-flow: $(STAMP)
	$(BIN)/python bench/flow_bench.py

## bench-cpu: CPU per job of the pool, PostgreSQL and Redis, Redis commands and SQL statements per job, for
## the defaults and the quiet configuration (a private PostgreSQL and Redis; add ARGS=--profile for py-spy)
bench-cpu: $(STAMP)
	$(BIN)/python bench/cpu_per_job.py $(ARGS)

## bench-cluster: the no-op drain on a three-master Redis Cluster against one node, with Redis CPU per master
bench-cluster: $(STAMP)
	$(BIN)/python bench/cluster_bench.py

clean:
	rm -rf $(VENV) $(VENV6) .local staticfiles
