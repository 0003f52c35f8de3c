#!/usr/bin/env bash
# Run the test suite against kernels built with AddressSanitizer and UndefinedBehaviorSanitizer
# (FASTCNN_SANITIZE=1, see setup.py): any out-of-bounds access, use after free or undefined
# behaviour in the kernels (C or Cython) stops the run with a report and a stack trace. The
# build has the debug build's checks too (FASTCNN_DEBUG=1, as tools/check_debug.sh: Cython's
# bounds, wraparound and initialisation checks), so that one run of the suite covers both; it
# keeps the release build's C division (UBSan reports a division by zero), where
# tools/check_debug.sh alone switches to Python's. CHECK_DEBUG=0: the sanitizers alone.
#
#   tools/check_sanitizers.sh [PYTEST_ARGS...]     default: the whole suite, quietly
#
# Python itself is not instrumented, so gcc's ASan runtime is preloaded into it. Leak detection
# is off (CPython keeps objects alive until exit by design); allocator_may_return_null lets a
# huge allocation fail with MemoryError as it does without ASan. Builds the sdist, installs it
# with the switch into a fresh virtual environment (PYTHON, default python3; plus PyTorch 2.13
# when it installs) and runs pytest from the repository. Exit status: pytest's.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
cc=${CC:-gcc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

asan=$(realpath "$("$cc" -print-file-name=libasan.so)")
[ -f "$asan" ] || { echo "check_sanitizers: $cc has no libasan.so"; exit 1; }
# libstdc++ preloaded too: ASan intercepts C++ exceptions only if it is there from the start
# (matplotlib's and torch's extensions throw some)
stdcxx=$(realpath "$("$cc" -print-file-name=libstdc++.so)")

# SDIST=PATH: use that sdist instead of building one
sdist=${SDIST:-$("$repo/tools/build_wheel.sh" --sdist "$work/dist" | tail -n 1)}
venv=${VENV:-$work/venv}  # VENV=DIR: install there and keep it, to rerun pytest by hand
"$py" -m venv "$venv"
"$venv/bin/python" -m pip uninstall -q -y fastcnn 2>/dev/null || true
debug=${CHECK_DEBUG:-1}
echo "== install $sdist with FASTCNN_SANITIZE=1 FASTCNN_DEBUG=$debug"
FASTCNN_SANITIZE=1 FASTCNN_DEBUG=$debug CC="$cc" \
    "$venv/bin/python" -m pip install -q --no-cache-dir "$sdist[test]"
"$venv/bin/python" -m pip install -q torch==2.13.0 || echo "no PyTorch: comparison tests skip"

echo "== pytest under ASan + UBSan ($asan)"
cd "$repo"
export LD_PRELOAD="$asan $stdcxx"
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
FASTCNN_REQUIRE_INSTALLED=1 "$venv/bin/pytest" -q -p no:randomly "${@:-tests}"
