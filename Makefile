# Two commands on a fresh machine: `make demo` (set up and run the main job), `make test` (set up and test).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0

.PHONY: setup browser test lint demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_PIN)" -e ".[test,eval,export,train,serve]"
	touch $@

setup: $(VENV)/.installed

# The demo page's browser test (tests/test_serve_page.py) drives Debian's chromium. Run as root
# (CI), this installs it when it is missing; otherwise it only says so and that test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the browser test (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium fonts-liberation >/dev/null; \
	else \
		echo "no chromium and not root: the browser test will be skipped"; \
	fi

lint: setup
	$(VENV)/bin/ruff check src tests bench recipes
	$(VENV)/bin/ruff format --check src tests bench recipes

test: lint browser
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/waveglow evaluate --checkpoint demo examples/demo-thanks.wav -o out/demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
