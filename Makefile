# The two commands of the README: `make run` (the site) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-executorch migrate run test lint bench demo clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# Optional: the latency probe's ExecuTorch runtime (XNNPACK); its tests skip without it.
install-executorch: install
	$(PY) -m pip install --quiet -r requirements-executorch.txt

migrate: install
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py import_reported
	$(PY) manage.py make_demo_checkpoint
	mkdir -p var && echo "$${SITE_URL:-http://$(HOST):$(PORT)}" > var/site-url
	SITE_URL="$${SITE_URL:-http://$(HOST):$(PORT)}" HOST=$(HOST) PORT=$(PORT) PY=$(PY) ./scripts/run.sh

# With no DATABASE_URL, the tests use the local PostgreSQL when one answers (the worker
# tests need it), else SQLite, where those tests skip with a reason.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/leaderboard

test: install
	@if [ -z "$$DATABASE_URL" ] && command -v pg_isready >/dev/null \
	    && pg_isready -q -h 127.0.0.1 -p 5432; then \
	    export DATABASE_URL=$(TEST_DATABASE_URL); fi; \
	echo "tests on $${DATABASE_URL:-sqlite}"; \
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run

bench: install
	$(PY) bench/leaderboard.py

clean:
	rm -rf $(VENV) var db.sqlite3 staticfiles
