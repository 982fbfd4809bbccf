# Two commands do all the set-up on a fresh clone:
#   make demo   installs bptt into .venv and runs `bptt demo`
#   make test   installs bptt with every extra and runs the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.plot: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[plot]'
	touch $@

$(VENV)/.all: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[all,test]'
	touch $@

demo: $(VENV)/.core
	$(BIN)/bptt demo

test: $(VENV)/.all
	sh scripts/ensure-chromium
	$(BIN)/python -m pytest -q

bench: $(VENV)/.all
	$(BIN)/python -m benchmarks

# the numbers and figures the docs quote, written again from the results files that hold them
docs: $(VENV)/.plot
	$(BIN)/python docs/generate.py --write
	$(BIN)/python -m benchmarks.tables --write docs/performance.md

clean:
	rm -rf $(VENV)
