#!/usr/bin/env bash
# Wheels that benchmarks/gpu_check.sh needs on the GPU machine and that its image lacks (it has
# CuPy, PyTorch, Triton, Cython, meson, ninja, pytest, hypothesis, NumPy; no network): the build
# backend meson-python with pyproject-metadata, and Liger-Kernel for the benchmark's comparison.
# It also builds what would take the GPU machine minutes: a wheel of xentc for its Python and
# the CUDA kernels for its architecture (a 10-20 minute job on two cores).
# Run here, where PyPI is reachable, from the repository root; .whl/ is ignored by git and travels
# to the GPU machine when a device call names it in `carry`:
#
#     bash tools/gpu_wheels.sh
#     # device call: carry [".whl"], command: OUT=$OUT bash benchmarks/gpu_check.sh
#
#     bash tools/gpu_wheels.sh --repack
#     # after changes to xentc's Python files or to _xent.cu only: the xentc wheel of an earlier
#     # run takes this tree's package files (the compiled CPU extension stays: it refuses if a
#     # source of that extension changed since, by the checksums the full run wrote), then the kernels are
#     # rebuilt (XENTC_REPACK_KEEP_KERNELS=1: not); minutes instead of the wheel's C++ build
#
# Those three are pure Python (py3-none-any), so the GPU machine's Python version does not matter.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--repack" ]; then
    WHL=$(ls .whl/xentc/xentc-*.whl 2>/dev/null | head -1)
    [ -n "$WHL" ] || { echo "gpu_wheels --repack: no wheel in .whl/xentc; run without --repack first"; exit 1; }
    TMP=$(mktemp -d)
    python3 -m wheel unpack -d "$TMP" "$WHL"
    PKG=$(ls -d "$TMP"/xentc-*/xentc)
    # the sources of the compiled CPU extension must be those the wheel was built from
    sha256sum --quiet -c .whl/xentc/ext_sources.sha256 ||
        { echo "gpu_wheels --repack: the CPU extension's sources changed since the wheel was built: run without --repack"; exit 1; }
    for f in "$PKG"/*.py "$PKG"/*.pyi "$PKG"/*.cu; do cp "xentc/$(basename "$f")" "$f"; done
    rm "$WHL"
    python3 -m wheel pack -d .whl/xentc "$(dirname "$PKG")"
    rm -rf "$TMP"
    if [ -z "${XENTC_REPACK_KEEP_KERNELS:-}" ]; then   # set it after Python changes alone
        rm -rf .whl/kernels
        python3 tools/kernel_cache.py build --arch 90 --out .whl/kernels
    fi
    ls -l .whl/xentc; du -sh .whl
    exit 0
fi
mkdir -p .whl
python3 -m pip download --no-deps --only-binary=:all: -d .whl \
    "meson-python>=0.15" "pyproject-metadata>=0.7" "liger-kernel"
# Optional: ml_dtypes, with which CuPy 14 takes bfloat16 arrays (the bfloat16 CUDA tests and
# xentc.torch's bfloat16 path). Binary wheels (x86-64 Linux), one for each Python the GPU machine
# may have, in .whl/optional, which gpu_check.sh installs from by name, best effort.
for v in 3.10 3.11 3.12 3.13 3.14; do
    python3 -m pip download --no-deps --only-binary=:all: --python-version "$v" \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl/optional "ml_dtypes>=0.4" ||
        echo "gpu_wheels: no ml_dtypes wheel for Python $v"
done
# xentc itself, as a wheel for the GPU machine's Python (3.12 there): building its C++ kernels takes
# minutes of one core each, which a short GPU lease cannot spare. PY312 names a Python 3.12 here.
PY312="${PY312:-}"
if [ -z "$PY312" ]; then   # python3.12 on the PATH, else pyenv's (its shim fails when 3.12 is not selected)
    for c in python3.12 "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12; do
        if "$c" -c "import sys; assert sys.version_info[:2] == (3, 12)" 2>/dev/null; then PY312="$c"; break; fi
    done
fi
if [ -n "$PY312" ]; then
    rm -rf .whl/xentc
    (cd /tmp && "$PY312" -m pip wheel --no-deps -w "$OLDPWD/.whl/xentc" "$OLDPWD")
    sha256sum xentc/*.h xentc/*.cpp xentc/*.pyx meson.build > .whl/xentc/ext_sources.sha256   # for --repack
else
    echo "gpu_wheels: no Python 3.12 here (PY312=...): gpu_check.sh will build xentc from the source tree (slow)"
fi
# OpenMP's runtime, for a GPU machine whose image lacks it (the wheel links libgomp.so.1)
mkdir -p .whl/lib
cp -L "$(g++ -print-file-name=libgomp.so.1)" .whl/lib/ || echo "gpu_wheels: libgomp.so.1 not found"
# The CUDA kernels for the H200's sm_90, by NVRTC 13.0 as the GPU machine's CuPy has it (the
# binaries are seeded into its kernel disk cache only where source, architecture and NVRTC
# version match: tools/kernel_cache.py)
if python3 -c "import nvidia.cu13" 2>/dev/null || python3 -m pip install -q "nvidia-cuda-nvrtc==13.0.*"; then
    rm -rf .whl/kernels
    python3 tools/kernel_cache.py build --arch 90 --out .whl/kernels
fi
ls -l .whl .whl/optional .whl/xentc .whl/lib
du -sh .whl   # a device call carries at most 64 MiB with the working tree
