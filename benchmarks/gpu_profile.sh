#!/usr/bin/env bash
# Profile xentc's main GPU kernels on a GPU machine (after gpu_check.sh's install steps have run
# once there, or with XENTC installed): Nsight Compute on one launch of each issue-4 kernel, the
# host time of a small call function by function, and stand-alone kernels for 2^20 x 10.
#   OUT=/some/dir bash benchmarks/gpu_profile.sh
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-/opt/torch/.venv/bin/python3}"
OUT="${OUT:-$(mktemp -d /tmp/xentc_gpu_profile.XXXXXX)}"
mkdir -p "$OUT"
cd /tmp
timeout 120 "$PY" "$REPO/benchmarks/gpu_profile.py" --micro > "$OUT/micro.txt" 2>&1; echo "micro rc $?"
timeout 40 "$PY" "$REPO/benchmarks/host_overhead.py" --calls 1000 --top 25 > "$OUT/host.txt" 2>&1; echo "host rc $?"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
echo "ncu: $NCU"
timeout "${XENTC_NCU_LIMIT_S:-150}" "$NCU" --clock-control none --set full \
    -k regex:'xent_(softmax_small|softmax_few|onchip|binary_vec)' \
    "$PY" "$REPO/benchmarks/gpu_profile.py" --cases "${XENTC_PROFILE_CASES:-small,binary,c32000,c128256}" \
    > "$OUT/ncu.txt" 2>&1
echo "ncu rc $?"
# with XENTC_PROFILE_SASS=1: per-instruction counts (SASS, with the CUDA source lines) of the
# few-classes kernel (2^20 x 10) and the on-chip kernel (8192 x 128256), as CSV
if [ -n "${XENTC_PROFILE_SASS:-}" ]; then
    for k in small:small onchip:c128256; do
        name=${k%%:*}; case_=${k##*:}
        timeout "${XENTC_NCU_LIMIT_S:-150}" "$NCU" --clock-control none --set full --import-source yes \
            -k regex:"xent_(softmax_)?$name" -c 1 -f -o "$OUT/$name" \
            "$PY" "$REPO/benchmarks/gpu_profile.py" --cases "$case_" > "$OUT/${name}_ncu.log" 2>&1
        "$NCU" -i "$OUT/$name.ncu-rep" --page source --csv --print-source sass > "$OUT/${name}_sass.csv" 2>&1
        echo "sass $name rc $? ($(wc -l < "$OUT/${name}_sass.csv") lines)"
        rm -f "$OUT/$name.ncu-rep"
    done
fi
