# ZipLine: `make run` starts everything for a first look; `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test soak lint format bench bench-enqueue bench-api bench-floor bench-startup migrate clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## run: SQLite + the local Redis (or an in-memory stand-in), API + workers + scheduler
run: $(STAMP)
	$(BIN)/python -m zipline_site.firstlook

## test: the whole suite on PostgreSQL + Redis, then a smoke subset on SQLite
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider
	mkdir -p .local
	ZIPLINE_TEST_DATABASE_URL=sqlite:///$(CURDIR)/.local/test-smoke.sqlite3 $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" tests/test_states.py tests/test_client.py tests/test_broker.py tests/test_sqlite_smoke.py

## soak: the F23 soak at full size: 100,000 jobs, a random fault every 30-60 s (about 7 minutes)
soak: $(STAMP)
	ZIPLINE_SOAK_JOBS=100000 ZIPLINE_SOAK_FAULT_EVERY=30-60 $(BIN)/python -m pytest -p no:cacheprovider -s -m soak tests/test_soak.py

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

bench-api: $(STAMP)
	$(BIN)/python bench/api_bench.py

bench-floor: $(STAMP)
	$(BIN)/python bench/latency_floor.py

## bench-startup: runworkers' start-up (3 cold starts), loaded modules, and memory after a 10,000-job drain
bench-startup: $(STAMP)
	$(BIN)/python bench/startup_memory.py

clean:
	rm -rf $(VENV) .local staticfiles
