# Two commands: `make run` (the whole service) and `make test` (the whole suite).
# Both create .venv and install requirements.txt on first use; nothing else is needed but Python 3.11.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: install browser migrate run test test-sqlite test-pg lint clean

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
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-sqlite: install browser
	env -u DATABASE_URL $(BIN)/python -m pytest $(PYTEST_ARGS)

test-pg: install browser
	DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var .pytest_cache
