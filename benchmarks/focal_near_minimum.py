"""Accuracy of the binary focal gradient from probabilities around its minimum p*, where its two
terms cancel: the worst error, in ulps of |exact| (and, in brackets, of the floor the tests use:
max(|exact|, the terms' size times the dtype's epsilon)), against xentc/_symbolic.py's mpmath
value, for float32 and float64, gamma 2, 2.5 and 0.5, alpha absent and 0.25, smoothing 0 and 0.1.
Labels 0.3, 0.1, 0.7, 0.5, 1e-3 and 0.9999; p the float nearest p* (bisection on the mpmath
gradient), 1, 2, 5 and 1000 ulps either side, and p* times 0.7, 0.999, 1.001, 1.5 and 3.

    python benchmarks/focal_near_minimum.py       (about 3 minutes)
"""
import mpmath
import numpy as np

import xentc
from xentc import _symbolic as S

mpmath.mp.dps = 50


def ulps_of(err, mag, dt):
    """err in ulps of dt at magnitude mag (at least the smallest normal number)."""
    fi = np.finfo(dt)
    mag = max(abs(mag), mpmath.mpf(float(fi.tiny)))
    return float(err / mpmath.mpf(2) ** (mpmath.floor(mpmath.log(mag, 2)) - fi.nmant))


def points(c, dt):
    out = {float(dt(float(c * (1 + d)))) for d in (-1e-3, 0, 1e-3, -0.3, 0.5, 2.0)}
    for k in (1, 2, 5, 1000):
        for toward in (0.0, 2.0):
            p = dt(float(c))
            for _ in range(k):
                p = np.nextafter(p, dt(toward))
            out.add(float(p))
    return sorted(v for v in out if 0 < v < 1)


def worst(dt, gamma, alpha, eps):
    f = S.binary_formula("focal", False, alpha is not None)
    tiny = mpmath.mpf(float(np.finfo(dt).eps))
    w_exact, w_floor, where = 0.0, 0.0, None
    for y in (0.3, 0.1, 0.7, 0.5, 1e-3, 0.9999):
        y, e = float(dt(y)), float(dt(eps))
        vals = {"y": y, "eps": e, "sw": 1.0, "a": alpha if alpha is not None else 0.0}
        pv = [vals[s.name] for s in f.params]
        lo, hi = mpmath.mpf("1e-12"), 1 - mpmath.mpf("1e-12")
        glo = f.evaluate([lo], pv, gamma).grad[0]
        for _ in range(180):   # the gradient rises through 0 at p*
            mid = (lo + hi) / 2
            gm = f.evaluate([mid], pv, gamma).grad[0]
            if (gm > 0) == (glo > 0):
                lo, glo = mid, gm
            else:
                hi = mid
        ps = points(lo, dt)
        x = np.array(ps, dt)
        r = xentc.binary_focal_loss(np.full(x.size, y, dt), x, gamma=gamma, alpha=alpha, label_smoothing=eps,
                                    reduction="none", grad=True)
        for i, p in enumerate(ps):
            ev = f.evaluate([p], pv, gamma)
            err = abs(mpmath.mpf(float(r.grad[i])) - ev.grad[0])
            u = ulps_of(err, ev.grad[0], dt)
            uf = ulps_of(err, max(abs(ev.grad[0]), ev.gscale[0] * tiny), dt)
            if u > w_exact:
                w_exact, where = u, (y, p)
            w_floor = max(w_floor, uf)
    return w_exact, w_floor, where


def main():
    for dt in (np.float32, np.float64):
        for gamma in (2.0, 2.5, 0.5):
            for alpha in (None, 0.25):
                for eps in (0.0, 0.1):
                    u, uf, at = worst(dt, gamma, alpha, eps)
                    print(f"{np.dtype(dt).name} gamma={gamma} alpha={alpha} eps={eps}: {u:.3g} ulp of |exact| "
                          f"({uf:.3g} of the floor), worst at y, p = {at}", flush=True)


if __name__ == "__main__":
    main()
