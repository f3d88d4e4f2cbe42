"""More than 2**31 elements in one call: every index and offset in the kernels is 64-bit.

Both tests allocate one float32 array of about 8.6 GB (nothing else of that size: loss only,
labels small or broadcast) and are marked slow; run them with ``pytest --runslow -m slow``.
The data repeat a small set of random rows (or values) with a period prime to every power of two,
so the exact answer is known from the small set alone, computed independently in extended
precision by ``tests/reference.py``, while a wrapped 32-bit offset would read a different row and
change the result.
"""

import math
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference as ref  # noqa: E402

import xentc  # noqa: E402

PERIOD = 97
EPS32 = float(np.finfo(np.float32).eps)


def _fill_periodic(out, base):
    """out[i] = base[i % len(base)] along axis 0, written in chunks (no full-size temporary)."""
    step = 1 << 16
    for a in range(0, out.shape[0], step):
        b = min(a + step, out.shape[0])
        out[a:b] = base[np.arange(a, b) % len(base)]


def _counts(n):
    """How many times each of the PERIOD base entries occurs in n periodic entries."""
    return n // PERIOD + (np.arange(PERIOD) < n % PERIOD)


@pytest.mark.slow
def test_softmax_more_than_2_31_elements():
    C = 1024
    n = (1 << 21) + 3                  # n * C = 2**31 + 3072 elements, 8.6 GB of float32
    assert n * C > 2**31
    rng = np.random.default_rng(2024)
    base = (rng.standard_normal((PERIOD, C)) * rng.uniform(0.5, 8, (PERIOD, 1))).astype(np.float32)
    base_lab = rng.integers(0, C, PERIOD)
    x = np.empty((n, C), dtype=np.float32)
    _fill_periodic(x, base)
    labels = base_lab[np.arange(n) % PERIOD]

    per_row = xentc.cross_entropy(labels, x, from_logits=True, reduction="none")
    total = xentc.cross_entropy(labels, x, from_logits=True, reduction="sum")
    del x

    exact, _, _ = ref.cross_entropy(base_lab, base, from_logits=True, reduction="none")
    exact = exact.astype(np.float64)
    assert per_row.shape == (n,) and per_row.dtype == np.float32
    want = exact[np.arange(n) % PERIOD]
    err = np.abs(per_row.astype(np.float64) - want) / want
    worst = int(np.argmax(err))
    assert err[worst] <= 16 * EPS32, (worst, per_row[worst], want[worst])
    exact_total = math.fsum(float(c) * v for c, v in zip(_counts(n), exact))
    assert abs(float(total) - exact_total) <= 8 * EPS32 * exact_total, (float(total), exact_total)


@pytest.mark.slow
def test_binary_more_than_2_31_elements():
    n = (1 << 31) + 5                  # 8.6 GB of float32 logits; labels broadcast from one row
    rng = np.random.default_rng(2025)
    base = (rng.standard_normal(PERIOD) * 6).astype(np.float32)
    z = np.empty(n, dtype=np.float32)
    _fill_periodic(z, base)
    y = np.broadcast_to(np.float32(0.25), (n,))  # soft label, zero stride: no memory

    total = xentc.binary_cross_entropy(y, z, from_logits=True, reduction="sum")
    mean = xentc.binary_cross_entropy(y, z, from_logits=True)
    del z

    exact, _, _ = ref.binary_cross_entropy(np.full(PERIOD, 0.25), base, from_logits=True,
                                           reduction="none")
    exact_total = math.fsum(float(c) * float(v) for c, v in zip(_counts(n), exact))
    assert abs(float(total) - exact_total) <= 8 * EPS32 * exact_total, (float(total), exact_total)
    assert abs(float(mean) - exact_total / n) <= 8 * EPS32 * exact_total / n
