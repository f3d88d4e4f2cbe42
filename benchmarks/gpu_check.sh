#!/usr/bin/env bash
# GPU check of xentc, for a GPU machine without network (CUDA 13, CuPy 14, PyTorch, Triton):
#   1. install carried wheels from .whl/ (meson-python, pyproject-metadata, liger-kernel, and
#      ml_dtypes if one fits: made by tools/gpu_wheels.sh here, carried along by the device call)
#      and xentc itself, from its wheel in .whl/xentc where one fits this Python, else from this
#      source tree; seed the kernel disk cache from .whl/kernels (tools/kernel_cache.py);
#   2. compile the CUDA kernels once (also fills the kernel disk cache for the later steps), then
#      one call through each kernel family (benchmarks/gpu_smoke.py);
#   3. benchmarks/bench_gpu.py: the design section 4 cases, the kernel variants and a host
#      profile of one call; benchmarks/host_overhead.py: host time of a small call, the
#      phases of the whole calls, and small calls with a weight pre-pass waiting once or twice;
#   4. pytest tests/test_cuda.py, tests/test_torch.py (CUDA tensors through DLPack: issue 7), then
#      a quick CPU sanity subset.
# Every step has its own time limit; the whole script stays under 5 minutes. Logs go to $OUT
# (or a new temporary folder) and the last lines of each are echoed. Exit status: 0 if every
# step passed.
#
#   PYTHON=/path/to/python3 OUT=/some/dir bash benchmarks/gpu_check.sh
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-/opt/torch/.venv/bin/python3}"
OUT="${OUT:-$(mktemp -d /tmp/xentc_gpu_check.XXXXXX)}"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/xentc_gpu_work.XXXXXX)"   # run Python from here: the source tree must not shadow
export XENTC_CACHE_DIR="${XENTC_CACHE_DIR:-$WORK/kernel_cache}"   # compiled kernels, shared by the steps
export PYTHONUNBUFFERED=1
START=$(date +%s)
DEADLINE=$(( START + ${XENTC_GPU_CHECK_BUDGET_S:-290} ))   # the whole script: under 5 minutes
STATUS=0
SUMMARY=""

log() { echo "[gpu_check +$(( $(date +%s) - START ))s] $*" | tee -a "$OUT/gpu_check.log"; }

# run NAME TIMEOUT_S CMD...: run a step, log to $OUT/NAME.log, keep going on failure. The limit is
# cut to what is left of the budget minus $RESERVE seconds kept for the steps after it.
RESERVE=0
run() {
    local name="$1" limit="$2"; shift 2
    local left=$(( DEADLINE - $(date +%s) - RESERVE ))
    if [ $left -lt 15 ]; then
        log "-- $name: SKIPPED (time budget used up)"
        SUMMARY="$SUMMARY\n  $name: SKIPPED (time budget)"
        STATUS=1
        return 1
    fi
    [ $limit -gt $left ] && limit=$left
    log "== $name (limit ${limit}s): $*"
    local t0=$(date +%s)
    ( cd "$WORK" && timeout --kill-after=10 "$limit" "$@" ) > "$OUT/$name.log" 2>&1
    local rc=$?
    local dt=$(( $(date +%s) - t0 ))
    tail -n 25 "$OUT/$name.log" | sed "s/^/    [$name] /"
    if [ $rc -eq 0 ]; then
        log "-- $name: ok (${dt}s)"
        SUMMARY="$SUMMARY\n  $name: ok (${dt}s)"
    else
        [ $rc -eq 124 ] && log "-- $name: TIMED OUT after ${limit}s" || log "-- $name: FAILED (exit $rc, ${dt}s)"
        SUMMARY="$SUMMARY\n  $name: FAILED (exit $rc, ${dt}s)"
        STATUS=1
    fi
    return $rc
}

log "repo $REPO, python $PY, logs in $OUT"
# OpenMP's runtime carried along (tools/gpu_wheels.sh), for an image without it
if ! ldconfig -p 2>/dev/null | grep -q 'libgomp\.so\.1' && [ -f "$REPO/.whl/lib/libgomp.so.1" ]; then
    export LD_LIBRARY_PATH="$REPO/.whl/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    log "no libgomp.so.1 on this machine: using the one in .whl/lib"
fi
if [ ! -x "$PY" ]; then
    log "python interpreter $PY not found; set PYTHON=/path/to/python3"
    exit 2
fi

# ---- 0. environment -------------------------------------------------------------------------
{
    echo "date: $(date -u)"; uname -a
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
    command -v nvcc >/dev/null && nvcc --version | tail -n 2
    "$PY" - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
for m in ("numpy", "cupy", "torch", "triton", "liger_kernel", "pytest", "mesonpy", "pyproject_metadata",
          "mesonbuild", "Cython", "hypothesis", "sympy", "mpmath", "scipy"):
    try:
        mod = importlib.import_module(m)
        print(f"{m:20s} {getattr(mod, '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        print(f"{m:20s} MISSING ({type(exc).__name__})")
try:
    import cupy
    print("cupy devices:", cupy.cuda.runtime.getDeviceCount(), "nvrtc", cupy.cuda.nvrtc.getVersion())
except Exception as exc:  # noqa: BLE001
    print("cupy device query failed:", exc)
EOF
} > "$OUT/env.txt" 2>&1
sed 's/^/    [env] /' "$OUT/env.txt"

# ---- 1. install -------------------------------------------------------------------------------
if ls "$REPO"/.whl/*.whl >/dev/null 2>&1; then
    run install_wheels 120 "$PY" -m pip install --no-index --no-deps --disable-pip-version-check \
        "$REPO"/.whl/*.whl
fi
if ls "$REPO"/.whl/optional/*.whl >/dev/null 2>&1; then   # best effort: bfloat16 on CuPy
    if "$PY" -m pip install --no-index --no-deps --disable-pip-version-check \
            --find-links "$REPO/.whl/optional" ml_dtypes > "$OUT/install_optional.log" 2>&1; then
        log "ml_dtypes installed: CuPy bfloat16 (tests/test_cuda.py's bf16 cases, xentc.torch's bfloat16 path)"
    else
        log "ml_dtypes not installed (see $OUT/install_optional.log): the bfloat16 CUDA tests skip"
    fi
fi
# a wheel of this source tree built ahead for the machine's Python (tools/gpu_wheels.sh: the C++
# kernels take minutes of a core each to compile), else a build from the source tree
# (only a wheel whose package sources are the tree's: one left from an older tree is passed over)
XWHEEL=$("$PY" - "$REPO/.whl/xentc" "$REPO" <<'EOF'
import glob, os, sys, zipfile
from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename
tags = set(sys_tags())
for w in sorted(glob.glob(sys.argv[1] + "/xentc-*.whl")):
    if tags & set(parse_wheel_filename(w.rsplit("/", 1)[1])[3]):
        with zipfile.ZipFile(w) as z:
            stale = [n for n in z.namelist()
                     if n.startswith("xentc/") and n.endswith((".py", ".pyi", ".pyx", ".cu", ".h", ".cpp"))
                     and os.path.isfile(os.path.join(sys.argv[2], n))
                     and z.read(n) != open(os.path.join(sys.argv[2], n), "rb").read()]
        if stale:
            print(f"{w}: not used, its {', '.join(stale[:5])} differ from the tree's", file=sys.stderr)
            continue
        print(w)
        break
EOF
)
if [ -n "$XWHEEL" ]; then
    log "xentc from the wheel $XWHEEL"
    INSTALL_XENTC=("$PY" -m pip install --no-index --no-deps --disable-pip-version-check --force-reinstall "$XWHEEL")
else
    INSTALL_XENTC=("$PY" -m pip install --no-index --no-deps --no-build-isolation --disable-pip-version-check -v "$REPO")
fi
if ! run install_xentc 180 "${INSTALL_XENTC[@]}"; then
    log "xentc did not install; see $OUT/install_xentc.log (needs meson, meson-python, ninja, Cython, numpy)"
    echo -e "summary:$SUMMARY" | tee -a "$OUT/gpu_check.log"
    exit 1
fi

# kernels built ahead by NVRTC for this machine (tools/kernel_cache.py build): into the disk cache,
# where source, architecture and NVRTC version match; the rest compiles on first use
if [ -f "$REPO/.whl/kernels/manifest.json" ]; then
    run seed_kernels 60 "$PY" "$REPO/tools/kernel_cache.py" seed "$REPO/.whl/kernels"
fi

# ---- 2. compile the CUDA kernels (and fill the disk cache) ------------------------------------
run cuda_build 240 "$PY" -c "
import json, time, xentc, numpy as np, cupy
from xentc import _cuda
print('xentc from', xentc.__file__)
t = time.perf_counter()
info = _cuda.info()
print(json.dumps(info, indent=1))
print('first build %.1f s' % (time.perf_counter() - t))
# the 16-bit kernels (built on first use): float16, and bfloat16 where CuPy takes it (ml_dtypes)
mod = _cuda._module(info['device'])
try:
    import ml_dtypes
    cupy.asarray(np.zeros(2, ml_dtypes.bfloat16))
    stores = ['xentk::xhalf', 'xentk::xbf16']
except Exception as exc:
    print('no bfloat16 on this CuPy:', type(exc).__name__, exc)
    stores = ['xentk::xhalf']
for st in stores:
    h = {'xentk::xhalf': 'float16', 'xentk::xbf16': 'bfloat16'}[st]
    mod.build_storage(st)
    for part in ('soft-y:float32:' + h, 'soft-y:%s:float32' % h):   # soft labels stored otherwise than y_pred
        mod.build_storage(part)
print('16-bit kernels built (s):', mod.storage_seconds)
r = xentc.cross_entropy(cupy.asarray([0, 2]), cupy.asarray(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])),
                        from_logits=True, grad=True)
c = xentc.cross_entropy(np.array([0, 2]), np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]), from_logits=True,
                        grad=True)
print('smoke: gpu', float(r.loss), 'cpu', float(c.loss))
assert abs(float(r.loss) - float(c.loss)) < 1e-12 and np.allclose(cupy.asnumpy(r.grad), c.grad, rtol=1e-12, atol=1e-15)
"

# ---- 2b. one call through each kernel family: a kernel that fails or hangs is named here, and the
#      rest runs without the pipelined on-chip kernels (the newest) if any family fails ----------
if ! run gpu_smoke 60 "$PY" "$REPO/benchmarks/gpu_smoke.py"; then
    export XENTC_CUDA_NO_PIPELINE=1
    log "a kernel family failed the smoke test: the steps below run with XENTC_CUDA_NO_PIPELINE=1"
fi

# ---- 3. benchmark: issue 4's numbers and the kernel variants first, the step most worth the
#      device time (the smoke step above already ran every kernel family once) -----------------
RESERVE=100   # keep time for the tests
# XENTC_GPU_CHECK_BENCH_ARGS: extra benchmark arguments (--tiny for a dry run of this script on
# the CUDA emulator: PYTHONPATH=tools/cuda_emu)
# shellcheck disable=SC2086
run bench 150 "$PY" "$REPO/benchmarks/bench_gpu.py" --repeat 20 --variants --json "$OUT/bench.json" \
    ${XENTC_GPU_CHECK_BENCH_ARGS:-}
# host time of a small call and xentc's share of it (issue 4's 0.1 ms whole-call target)
run host_overhead 30 "$PY" "$REPO/benchmarks/host_overhead.py" --calls 1000 --top 12
# the same calls step by step (entries and exits of xentc's functions, cupy.empty, the launches)
run host_stamps 20 "$PY" "$REPO/benchmarks/host_overhead.py" --calls 1000 --stamps
# where the whole-call time of the issue-4 cases goes: host before the launch, the wait, host after
run host_phases 60 "$PY" "$REPO/benchmarks/host_overhead.py" --phases
# calls that need the weight pre-pass: its sum left on the device (one wait) against waited for (two)
run host_weighted 20 "$PY" "$REPO/benchmarks/host_overhead.py" --calls 300 --weighted

# ---- 4. tests -----------------------------------------------------------------------------------
PYTEST=("$PY" -m pytest -p no:cacheprovider -o addopts="--import-mode=importlib -ra")
RESERVE=40    # keep time for the torch tests and the CPU subset
run test_cuda 200 "${PYTEST[@]}" -v --tb=short --maxfail=25 --durations=10 "$REPO/tests/test_cuda.py"
RESERVE=20
run test_torch 75 "${PYTEST[@]}" -q -ra --maxfail=10 "$REPO/tests/test_torch.py"
RESERVE=0
run test_cpu_sanity 40 "${PYTEST[@]}" -q --maxfail=10 "$REPO/tests/test_options.py" "$REPO/tests/test_bad_input.py" \
    -k "plain or combo or test_bad_input"

log "total $(( $(date +%s) - START ))s; logs in $OUT"
echo -e "summary:$SUMMARY" | tee -a "$OUT/gpu_check.log"
rm -rf "$WORK"
exit $STATUS
