"""Focal loss accuracy against gamma: the largest error, in ulp of the scale xentc/_symbolic.py
uses (the 16-ulp bar of the tests), of the per-sample focal loss, gradient and Hessian over
random points, against the SymPy/mpmath reference: binary from logits and from probabilities,
and categorical rows of three classes from logits.

    python benchmarks/focal_gamma_sweep.py [--points 200] [--gammas 5,10,20,20.5,50]

Binary: y = 1 (the factor (1 - p)^gamma, whose base is rounded); logits uniform in (-3, 3),
probabilities in (0.01, 0.6) (where float32 results stay normal numbers). Categorical: rows of
three logits uniform in (-3, 3), label 0 (points / 4 rows).
"""
import argparse

import numpy as np

import xentc
from xentc import _symbolic as S


def sweep(dt, gamma, from_logits, points, rng):
    npdt = np.dtype(dt).type
    x = (rng.uniform(-3, 3, points) if from_logits else rng.uniform(0.01, 0.6, points)).astype(npdt)
    y = np.ones(points, npdt)
    r = xentc.binary_focal_loss(y, x, gamma=gamma, from_logits=from_logits, reduction="none", grad=True,
                                hess=True, n_threads=1)
    f = S.binary_formula("focal", from_logits, False)
    worst = [0.0, 0.0, 0.0]
    for i in range(points):
        vals = {"y": 1.0, "eps": 0.0, "pw": 1.0, "sw": 1.0, "a": 0.0}
        ref = f.evaluate([float(x[i])], [vals[s.name] for s in f.params], gamma)
        for k, (got, exact, scale) in enumerate(((r.loss[i], ref.loss, abs(ref.loss)),
                                                 (r.grad[i], ref.grad[0], ref.gscale[0]),
                                                 (r.hess[i], ref.hess[0], ref.hscale[0]))):
            worst[k] = max(worst[k], S.ulp_error(got, exact, scale, dt))
    return worst


def sweep_rows(dt, gamma, rows, rng, C=3):
    npdt = np.dtype(dt).type
    X = rng.uniform(-3, 3, (rows, C)).astype(npdt)
    r = xentc.focal_loss(np.zeros(rows, np.int64), X, gamma=gamma, from_logits=True, reduction="none",
                         grad=True, hess=True, n_threads=1)
    f = S.categorical_formula("focal", True, C)
    worst = [0.0, 0.0, 0.0]
    for i in range(rows):
        vals = {"eps": 0.0, "sw": 1.0}
        for j in range(C):
            vals[f"Y{j}"], vals[f"cw{j}"], vals[f"a{j}"] = float(j == 0), 1.0, 1.0
        ref = f.evaluate([float(v) for v in X[i]], [vals[s.name] for s in f.params], gamma)
        worst[0] = max(worst[0], S.ulp_error(r.loss[i], ref.loss, abs(ref.loss), dt))
        for j in range(C):
            worst[1] = max(worst[1], S.ulp_error(r.grad[i, j], ref.grad[j], ref.gscale[j], dt))
            worst[2] = max(worst[2], S.ulp_error(r.hess[i, j], ref.hess[j], ref.hscale[j], dt))
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--gammas", default="5,10,20,20.5,50")
    args = ap.parse_args()
    print(f"{'dtype':8} {'gamma':>6} {'input':6}  max ulp: loss    grad    hess   (rows: categorical logits)")
    for dt in ("float64", "float32"):
        for g in (float(v) for v in args.gammas.split(",")):
            for what in ("logits", "probs", "rows"):
                rng = np.random.default_rng(0)
                w = (sweep_rows(dt, g, max(1, args.points // 4), rng) if what == "rows"
                     else sweep(dt, g, what == "logits", args.points, rng))
                print(f"{dt:8} {g:6g} {what:6}  {w[0]:13.1f} {w[1]:7.1f} {w[2]:7.1f}")


if __name__ == "__main__":
    main()
