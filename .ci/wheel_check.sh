#!/usr/bin/env bash
# The package as users get it (tests/test_wheel.py): `python -m build` makes the sdist and the
# wheel from it, `twine check` reads both, the wheel's contents are listed and checked (bundled
# model, model card, demo page), then the wheel is installed (not editable) with its serve extra
# into a fresh virtual environment outside the source tree, where waveglow.load("demo"), a copy
# synthesis with the command and `waveglow serve`'s page (GET / -> 200) must work.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m pytest -q -rA -s -m wheel tests/test_wheel.py "$@"
