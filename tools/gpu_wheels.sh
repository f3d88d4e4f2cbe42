#!/usr/bin/env bash
# Wheels that benchmarks/gpu_check.sh needs on the GPU machine and that its image lacks (it has
# CuPy, PyTorch, Triton, Cython, meson, ninja, pytest, hypothesis, NumPy; no network): the build
# backend meson-python with pyproject-metadata, and Liger-Kernel for the benchmark's comparison.
# Run here, where PyPI is reachable, from the repository root; .whl/ is ignored by git and travels
# to the GPU machine when a device call names it in `carry`:
#
#     bash tools/gpu_wheels.sh
#     # device call: carry [".whl"], command: OUT=$OUT bash benchmarks/gpu_check.sh
#
# Those three are pure Python (py3-none-any), so the GPU machine's Python version does not matter.
set -euo pipefail
cd "$(dirname "$0")/.."
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
ls -l .whl .whl/optional
