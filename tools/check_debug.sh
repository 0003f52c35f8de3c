#!/usr/bin/env bash
# Run the test suite against kernels built with Cython's run-time checks: FASTCNN_DEBUG=1 turns
# on boundscheck, wraparound and initializedcheck, turns off cdivision, and compiles at -O0 -g
# (see setup.py). A kernel that indexes out of bounds then raises IndexError instead of
# silently reading or writing the wrong memory.
#
#   tools/check_debug.sh [PYTEST_ARGS...]     default: the whole suite, quietly
#
# Builds the sdist, installs it with the switch into a fresh virtual environment (PYTHON,
# default python3; plus PyTorch 2.13 when it installs, so the comparison tests run too) and runs
# pytest from the repository against the installed package. Exit status: pytest's.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# SDIST=PATH: use that sdist instead of building one
sdist=${SDIST:-$("$repo/tools/build_wheel.sh" --sdist "$work/dist" | tail -n 1)}
venv=${VENV:-$work/venv}  # VENV=DIR: install there and keep it, to rerun pytest by hand
"$py" -m venv "$venv"
"$venv/bin/python" -m pip uninstall -q -y fastcnn 2>/dev/null || true
echo "== install $sdist with FASTCNN_DEBUG=1"
FASTCNN_DEBUG=1 "$venv/bin/python" -m pip install -q --no-cache-dir "$sdist[test]"
"$venv/bin/python" -m pip install -q torch==2.13.0 || echo "no PyTorch: comparison tests skip"

echo "== pytest against the checked build"
cd "$repo"
FASTCNN_REQUIRE_INSTALLED=1 "$venv/bin/pytest" -q -p no:randomly "${@:-tests}"
