# Two commands: `make run` (the whole service) and `make test` (the whole suite).
# Both create .venv and install requirements.txt on first use; nothing else is needed but Python 3.11.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

SUITE := tests/unit tests/integration tests/e2e

.PHONY: install browser migrate run test test-sqlite test-pg test-reliability bench lint clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the browser tests (skipped with a message where it cannot be installed).
browser:
	-bash scripts/install-test-browser.sh

migrate: install
	$(BIN)/python manage.py migrate

run: install
	$(BIN)/python manage.py run

# The suite on the database DATABASE_URL names (a fresh SQLite file when unset).
test: install browser
	$(BIN)/python -m pytest $(SUITE) $(PYTEST_ARGS)

test-sqlite: install browser
	env -u DATABASE_URL $(BIN)/python -m pytest $(SUITE) $(PYTEST_ARGS)

test-pg: install browser
	DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest $(SUITE) $(PYTEST_ARGS)

# Faults and load with real processes (worker kills, Redis restart, database outage, stock race).
# On PostgreSQL unless DATABASE_URL says otherwise: the outage scenario needs a database server.
test-reliability: install
	DATABASE_URL=$${DATABASE_URL:-$(PG_URL)} $(BIN)/python -m pytest tests/reliability $(PYTEST_ARGS)

# Service vs floor under load (gunicorn + workers, a fresh PostgreSQL database, embedded Redis, wrk);
# a few minutes. BENCH_DATABASE_URL names the server; BENCH_ARGS passes options (--quick, --only …).
BENCH_DATABASE_URL ?= $(PG_URL)
BENCH_ARGS ?=
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	BENCH_DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/run.py $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var .pytest_cache
