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
# All three are pure Python (py3-none-any), so the GPU machine's Python version does not matter.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download --no-deps --only-binary=:all: -d .whl \
    "meson-python>=0.15" "pyproject-metadata>=0.7" "liger-kernel"
ls -l .whl
