# Quick start: `make demo` (the bundled agent, no key, no network) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PACKAGES := -e . -e instrumentors/openai -e instrumentors/langchain

.PHONY: install install-test demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml instrumentors/openai/pyproject.toml instrumentors/langchain/pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt $(PACKAGES) openai
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/python -m convotel.demo

test: install-test
	$(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/python -m benchmarks.run --update-readme README.md

clean:
	rm -rf $(VENV) .convotel
