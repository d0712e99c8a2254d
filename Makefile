# Two commands on a fresh machine: `make demo` (set up and run the main job), `make test` (set up,
# test, then check the wheel as users install it).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0

.PHONY: setup browser test lint wheel-check demo clean

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
	$(VENV)/bin/ruff check src tests bench recipes hubconf.py
	$(VENV)/bin/ruff format --check src tests bench recipes hubconf.py

# The package as users get it: sdist, wheel, twine check, the wheel in a fresh venv (tests/test_wheel.py).
wheel-check: setup
	PYTHON=$(PY) bash .ci/wheel_check.sh

test: lint browser
	$(PY) -m pytest -q
	PYTHON=$(PY) bash .ci/wheel_check.sh

demo: setup
	$(VENV)/bin/waveglow evaluate --checkpoint demo examples/demo-thanks.wav -o out/demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
