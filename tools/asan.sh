#!/usr/bin/env bash
# Memory-safety check: build xentc with AddressSanitizer into a throwaway virtual environment and
# run the test suite against that build. Usage, from anywhere:
#
#     tools/asan.sh                        # every test but the slow ones
#     tools/asan.sh tests/test_layouts.py  # extra arguments go to pytest
#
# Exit status 0 and no "ERROR: AddressSanitizer" in the output mean no error was found.
# The interpreter is not instrumented, so libasan is preloaded; leak detection is off (CPython
# keeps interned objects until exit by design). Array buffers come from malloc, so every array
# the kernels read or write has red zones; Python's own small objects stay with pymalloc (routing
# them through the sanitizer too, PYTHONMALLOC=malloc, makes the mpmath-heavy tests crawl).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
source "$work/venv/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q meson-python Cython numpy ninja
python -m pip install -q --no-build-isolation \
    --config-settings=setup-args=-Db_sanitize=address \
    --config-settings=setup-args=-Db_lundef=false \
    --config-settings=builddir="$work/build" \
    "$repo[test]"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
cd "$work"   # outside the clone, where only the installed build can be imported
python - <<'PY'
import subprocess, sys
import xentc._kernels as k
deps = subprocess.run(["ldd", k.__file__], capture_output=True, text=True).stdout
if "libasan" not in deps:
    sys.exit(f"asan.sh: {k.__file__} is not linked against libasan: the check would prove nothing")
print("asan.sh: instrumented build at", k.__file__)
PY
# and the sanitizer is live in this interpreter: a planted heap overflow must be caught
if ASAN_OPTIONS=detect_leaks=0 python -c "import ctypes; libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p; ctypes.string_at(libc.malloc(8), 64)" 2>/dev/null; then
    echo "asan.sh: AddressSanitizer missed a planted heap overflow: the check would prove nothing"
    exit 1
fi
echo "asan.sh: a planted heap overflow was caught; running the tests"
cd "$repo"
# `pytest`, not `python -m pytest`: with --import-mode=importlib the installed build is tested
pytest -p no:cacheprovider -q -m "not slow" "$@"
