# Two commands set everything up on a fresh CPU machine:
#   make demo   creates .venv, installs mdmest, runs the quick Gaussian benchmark (no files needed)
#   make test   creates .venv, installs mdmest with all extras, runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint docs install

$(BIN)/mdmest: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# The CPU wheel first, so that no dependency pulls a multi-gigabyte CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[fusion,bench,dev,docs,integrations]"
	touch $@

install: $(BIN)/mdmest

demo: install
	$(BIN)/mdmest gaussian --quick

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

docs: install
	$(BIN)/mkdocs build --strict --site-dir site
