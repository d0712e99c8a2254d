# Two commands on a fresh machine: `make demo` (set up and run the main job), `make test` (set up and test).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0

.PHONY: setup test lint demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_PIN)" -e ".[test,eval,export,train]"
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

test: lint
	$(PY) -m pytest -q

demo: setup
	$(PY) -m waveglow --help

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
