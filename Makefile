# Two commands on a fresh machine: `make demo` (set up and run the main job), `make test` (set up and test).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0

.PHONY: setup test lint demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_PIN)" -e ".[test,eval,export,train,serve]"
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(VENV)/bin/ruff check src tests bench recipes
	$(VENV)/bin/ruff format --check src tests bench recipes

test: lint
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/waveglow evaluate --checkpoint demo examples/demo-thanks.wav -o out/demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
