# Quick start: `make demo` (the bundled agent, no key, no network) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PACKAGES := -e . -e instrumentors/openai -e instrumentors/langchain

.PHONY: install install-test demo test bench bench-instructions clean

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

# Benchmarks run in their own venv (benchmarks/.venv) so the peers never enter $(VENV).
# `make bench BENCH_ARGS=--quick` is a smoke run (about a minute; prints, leaves README.md alone).
BENCH_VENV ?= benchmarks/.venv
BENCH_ARGS ?=

$(BENCH_VENV)/.installed: benchmarks/requirements.txt constraints.txt pyproject.toml instrumentors/openai/pyproject.toml instrumentors/langchain/pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -c constraints.txt -r benchmarks/requirements.txt $(PACKAGES)
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m benchmarks.run --update-readme README.md $(BENCH_ARGS)

# Deterministic cross-check (needs valgrind; about 15 minutes on 2 cores): instructions per call.
bench-instructions: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m benchmarks.instructions --update-readme README.md $(INSTR_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .convotel
