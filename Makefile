# bagboard: `make demo` sets up and serves the demo; `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= data
export BAGBOARD_DATA_ROOT ?= $(DATA)

.PHONY: demo serve test lint format bench clean

## demo: create .venv, install, seed demo data once, serve on http://127.0.0.1:8050
demo: $(VENV)/.runtime $(DATA)/.demo-seeded
	BAGBOARD_ENV=development $(BIN)/python app.py

## serve: run under gunicorn with gunicorn.conf.py, as in production
serve: $(VENV)/.runtime
	$(BIN)/gunicorn app:server

## test: install test dependencies and run lint plus the whole suite (browser tests included)
test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: run every benchmark in bench/ and print the figures
bench: $(VENV)/.dev
	$(BIN)/python bench/run_all.py

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

$(DATA)/.demo-seeded: | $(VENV)/.runtime
	BAGBOARD_ENV=development $(BIN)/flask --app app demo seed --size small
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
