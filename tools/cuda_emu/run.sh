#!/usr/bin/env bash
# CUDA emulator for xentc: runs tests/test_cuda.py (the CuPy path against the CPU path) on a
# machine without a GPU or CuPy. Usage, from the repository root:
#
#     bash tools/cuda_emu/run.sh                 # all of tests/test_cuda.py
#     bash tools/cuda_emu/run.sh -q -x -k onchip # extra arguments go to pytest
#     bash tools/cuda_emu/run.sh tests/test_cuda.py::test_info -v   # a path replaces the default file
#     bash tools/cuda_emu/run.sh tools/cuda_emu/test_emulator.py     # the emulator's own self-test
#
# The whole of tests/test_cuda.py takes about 1.5-2.5 minutes on 2 vCPUs (about 5 minutes with
# XENTC_EMU_ASAN=1); building the kernels about 10 s, cached afterwards. A failure inside a kernel
# raises CUDADriverError("CUDA_ERROR_LAUNCH_FAILED ... [emulator: kernel fault: <kernel>, block,
# thread: what and where]"); in it "cluster" is spelt "clu_ster", because xentc/_cuda.py takes
# errors mentioning clusters for a launch the device refused and quietly switches kernels.
#
# What it is. tools/cuda_emu/cupy is a fake `cupy` package, put first on PYTHONPATH here only
# (never install it). Its arrays are host memory behind CuPy's interface; its "NVRTC"
# (cupy.cuda.compiler.compile_using_nvrtc) compiles the real kernel source, xentc/_xent.cu with
# _xent_math.h, as xentc/_cuda.py passes it, with g++ against tools/cuda_emu/emu.h
# (-DXENT_EMU=1, the kernels' own emulator hooks), plus one generated launcher per kernel
# instance; its kernel functions run the grid on the CPU: every CUDA thread a coroutine, barriers
# (__syncthreads, warp shuffles and votes, cluster arrive/wait) as real waits. So the whole path
# runs unchanged: _cuda.py's compile, cache, probe, attribute and launch code, and every kernel.
#
# What it checks: the kernels' results against the CPU path (the tests), argument lists against
# the kernel signatures (count, size and kind of every scalar), launch limits (block size,
# __launch_bounds__, shared memory per block with and without the opt-in attribute, grid a
# multiple of the cluster size), deadlocks, divergent __syncthreads, mixed warp operations,
# shuffles reading exited lanes, cluster barrier misuse and reads of exited blocks' shared
# memory, writes past shared-memory variables, and reads of shared memory never written (it
# starts as 0xff bytes: NaN). cp.async copies land only at the issuing thread's wait (wait_all,
# or wait_group N: all committed groups but the newest N), their destination NaN until then, so
# a read before the wait shows in the results; copies never waited for, or to a destination
# still pending, fault. With XENTC_EMU_ASAN=1 the kernels are built with
# AddressSanitizer: out-of-bounds reads and writes of global and shared memory.
#
# What it cannot: speed (it is slow, and says nothing about performance); the device math
# library (the host libm stands in for libdevice, so results match a GPU to a few ulp, not bit
# for bit; flush-to-zero of the RawModule route is not emulated); the memory model (threads run
# one at a time, every write is visible at once: a missing barrier or fence is found only when
# the thread order changes the result, see XENTC_EMU_ORDER; no race detection); more than one
# device; streams and asynchrony (every launch completes before it returns); kernels that wait
# for other blocks through global memory (spin locks, grid-wide barriers) hang, since blocks
# (clusters) run one after another, each to its end; no preemption, so an endless loop in a
# kernel hangs too. XENT_SHARED takes a plain name (wrap arrays in a struct).
#
# Settings (environment):
#   XENTC_EMU_ORDER=reverse|shuffle  another order of threads between barriers, and of blocks
#   XENTC_EMU_FMA=1      contract a*b+c into FMA as nvcc does by default (host needs FMA)
#   XENTC_EMU_ASAN=1     AddressSanitizer build (libasan preloaded here, leak checks off)
#   XENTC_EMU_STRICT=0   allow divergent __syncthreads sites and shuffles from exited lanes
#   XENTC_EMU_OPT=-O2    g++ optimisation (default -O1)
#   XENTC_EMU_SMEM_FILL=0x4b  the byte shared memory starts as (default 0xff, NaN): finite stale
#                        values, as a GPU's earlier blocks leave, for code that must mask them
#   XENTC_EMU_SOURCE=HEAD|path.cu    compile this kernel source instead (e.g. while _xent.cu is
#                        mid-edit); _xent_math.h comes from beside it (or from HEAD)
#   XENTC_EMU_CACHE      folder of built kernel libraries (default ~/.cache/xentc-emu);
#                        xentc's own kernel cache (XENTC_CACHE_DIR) defaults to a folder in it
#   PYTHON               interpreter (default /work/venv/bin/python, else python3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
py="${PYTHON:-/work/venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
cache="${XENTC_EMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xentc-emu}"
export XENTC_EMU_CACHE="$cache"
export XENTC_CACHE_DIR="${XENTC_CACHE_DIR:-$cache/xentc-cache}"
asan_dir=""
if [ "${XENTC_EMU_ASAN:-0}" != "0" ]; then
    # reports go to files: pytest's output capture would swallow them when the process aborts
    asan_dir="$(mktemp -d)"
    export LD_PRELOAD="$(${CXX:-g++} -print-file-name=libasan.so)${LD_PRELOAD:+:$LD_PRELOAD}"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0}:log_path=$asan_dir/asan"
fi
# the default file unless the arguments name a test file or node
default=(tests/test_cuda.py)
for a in "$@"; do
    case "$a" in
        tests/*|*.py|*::*) default=() ;;
    esac
done
status=0
"$py" -m pytest -p xentc_cuda_emu_plugin "${default[@]}" "$@" || status=$?
if [ -n "$asan_dir" ]; then
    if compgen -G "$asan_dir/asan*" > /dev/null; then
        echo "==== AddressSanitizer reports ====" >&2
        cat "$asan_dir"/asan* >&2
        [ "$status" -ne 0 ] || status=1
    fi
    rm -rf "$asan_dir"
fi
exit "$status"
