"""Loss + gradient through the paths the main benchmark does not time: layouts other than
C-contiguous rows (channels first, Fortran order, columns of a matrix), per-label, per-sample and
repeating (scalar, per-row) sample weights, weights and labels in another dtype than y_pred (read
as they are), the few-class loops alone, categorical focal from logits on both sides of gamma 4
(above it rows correct Q^gamma), focal losses with a non-integer gamma against an integer one, and
rows of few classes (10, 100 and 200) from logits and from probabilities with each kind of label,
and integer labels at random with ignore_index, class and sample weights.
Times in ms, median of --repeat calls after a warm-up, float32 unless named; xentc writes into a
preallocated gradient (out=), PyTorch (when installed) allocates.

    python benchmarks/option_paths.py [--repeat 7]
"""
import argparse
import time

import numpy as np

import xentc


def median_ms(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def torch_ce(x, y):
    try:
        import torch
    except ImportError:
        return None
    xt = torch.from_numpy(x).requires_grad_(True)
    torch.nn.functional.cross_entropy(xt, torch.from_numpy(y)).backward()
    return xt.grad


def channels_first(rng, shape, probs, rep):
    """CE from logits (and from probabilities) on (N, C, H, W) with axis=1 against channels-last."""
    ce = dict(from_logits=True, grad=True)
    name = "x".join(map(str, shape))
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, shape[1], shape[:1] + shape[2:])
    g = np.empty_like(x)
    last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    gl = np.empty_like(last)
    print(f"{'CE (N, C, H, W) ' + name + ' axis=1':38}{median_ms(lambda: xentc.cross_entropy(y, x, axis=1, out=(None, g, None), **ce), rep):8.1f}")
    print(f"  the same data channels-last         {median_ms(lambda: xentc.cross_entropy(y, last, out=(None, gl, None), **ce), rep):8.1f}")
    if torch_ce(x, y) is not None:
        print(f"  PyTorch cross_entropy (N, C, H, W)  {median_ms(lambda: torch_ce(x, y), rep):8.1f}")
    print(f"  numpy.copyto of the logits          {median_ms(lambda: np.copyto(g, x), rep):8.1f}")
    if probs:
        p = np.exp(x - x.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        pl = np.ascontiguousarray(np.moveaxis(p, 1, -1))
        print(f"  from probabilities, axis=1          {median_ms(lambda: xentc.cross_entropy(y, p, axis=1, grad=True, out=(None, g, None)), rep):8.1f}")
        print(f"    channels-last                     {median_ms(lambda: xentc.cross_entropy(y, pl, grad=True, out=(None, gl, None)), rep):8.1f}")


def gamma_row(label, fn, y, inputs, gammas, g, rep, digits):
    """Print one row: loss + gradient (into g) of fn for each (name, y_pred, from_logits) of inputs
    and each gamma."""
    row = label
    for what, v, fl in inputs:
        for gamma in gammas:
            t = median_ms(lambda: fn(y, v, gamma=gamma, from_logits=fl, grad=True, out=(None, g, None)), rep)
            row += f"  {what} gamma {gamma:g} {t:6.{digits}f}"
    print(row)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    rep = ap.parse_args().repeat
    rng = np.random.default_rng(0)
    ce = dict(from_logits=True, grad=True)

    # C <= 64: the few-class path; C = 150: rows through contiguous tiles
    for shape, probs in (((8, 21, 256, 256), True), ((4, 150, 256, 256), False)):
        channels_first(rng, shape, probs, rep)

    x = rng.standard_normal((4096, 32000)).astype(np.float32)
    y = rng.integers(0, 32000, 4096)
    xf = np.asfortranarray(x)
    print(f"CE 4096x32000 C order                 {median_ms(lambda: xentc.cross_entropy(y, x, **ce), 3):8.1f}")
    print(f"  Fortran order                       {median_ms(lambda: xentc.cross_entropy(y, xf, **ce), 3):8.1f}")
    print(f"  numpy.ascontiguousarray of it       {median_ms(lambda: np.ascontiguousarray(xf), 3):8.1f}")
    del xf
    xt = np.ascontiguousarray(x.T)
    del x
    print(f"  (C, N) with axis=0                  {median_ms(lambda: xentc.cross_entropy(y, xt, axis=0, **ce), 3):8.1f}")
    del xt

    n = 10**7
    for dt in (np.float32, np.float64):
        z = rng.standard_normal((n // 10, 10)).astype(dt)
        y = (rng.random((n // 10, 10)) < 0.3).astype(dt)
        g = np.empty_like(z)
        pw = (rng.random(10) + 0.5).astype(dt)
        sw = rng.random((n // 10, 10)).astype(dt)
        name = np.dtype(dt).name
        def bce(labels=y, **kw):
            return lambda: xentc.binary_cross_entropy(labels, z, out=(None, g, None), **ce, **kw)
        print(f"BCE n=1e7 {name:7}  plain                {median_ms(bce(), rep):8.1f}")
        print(f"  pos_weight of 10 labels             {median_ms(bce(pos_weight=pw), rep):8.1f}")
        print(f"  per-element sample_weight           {median_ms(bce(sample_weight=sw), rep):8.1f}")
        print(f"  sample_weight one per row (N, 1)    {median_ms(bce(sample_weight=sw[:, :1]), rep):8.1f}")
        print(f"  scalar sample_weight                {median_ms(bce(sample_weight=2.0), rep):8.1f}")
        other = np.float64 if dt == np.float32 else np.float32
        print(f"  {np.dtype(other).name} sample_weight per element   "
              f"{median_ms(bce(sample_weight=sw.astype(other)), rep):8.1f}")
        print(f"  {np.dtype(other).name} labels                      "
              f"{median_ms(bce(labels=y.astype(other)), rep):8.1f}")
        print(f"  float16 sample_weight per element   {median_ms(bce(sample_weight=sw.astype(np.float16)), rep):8.1f}")
        print(f"  bool labels                         {median_ms(bce(labels=y.astype(bool)), rep):8.1f}")
        print(f"  int64 labels                        {median_ms(bce(labels=y.astype(np.int64)), rep):8.1f}")
        # columns of (n, 2) arrays: gathered a piece at a time, labels of any dtype read in place
        z2, y2 = np.stack([z.reshape(-1)] * 2, axis=1), np.stack([y.reshape(-1)] * 2, axis=1)
        yi2, g1 = y2.astype(np.int64), np.empty(n, dt)
        def col(labels, pred):
            return median_ms(lambda: xentc.binary_cross_entropy(labels, pred, out=(None, g1, None), **ce), rep)
        print(f"  column of (n, 2) y_pred             {col(y.reshape(-1), z2[:, 0]):8.1f}")
        print(f"  columns of (n, 2) y_pred and labels {col(y2[:, 1], z2[:, 0]):8.1f}")
        print(f"  int64 label column, y_pred column   {col(yi2[:, 1], z2[:, 0]):8.1f}")
        del z2, y2, yi2

    # float16 y_pred: computed in float32 a chunk at a time (xentc/_half_cpu.py), weights read as given
    z = rng.standard_normal((n // 10, 10)).astype(np.float16)
    y = (rng.random(z.shape) < 0.3).astype(np.float32)
    g = np.empty_like(z)
    sw = rng.random(z.shape).astype(np.float32)
    def bce16(**kw):
        return lambda: xentc.binary_cross_entropy(y, z, out=(None, g, None), **ce, **kw)
    print(f"BCE n=1e7 float16  plain                {median_ms(bce16(), rep):8.1f}")
    print(f"  scalar sample_weight                {median_ms(bce16(sample_weight=2.0), rep):8.1f}")
    print(f"  sample_weight one per row (N, 1)    {median_ms(bce16(sample_weight=sw[:, :1]), rep):8.1f}")
    for wdt in (np.float16, np.float32, np.float64):
        print(f"  {np.dtype(wdt).name} sample_weight per element   "
              f"{median_ms(bce16(sample_weight=sw.astype(wdt)), rep):8.1f}")

    for dt in (np.float32, np.float64):
        x = (rng.standard_normal((65536, 10)) * 2).astype(dt)
        y = rng.integers(0, 10, 65536)
        g = np.empty_like(x)
        for nt in (None, 1):
            t_ce = median_ms(lambda: xentc.cross_entropy(y, x, n_threads=nt, out=(None, g, None), **ce), 100)
            t_fo = median_ms(lambda: xentc.focal_loss(y, x, gamma=2.0, n_threads=nt, out=(None, g, None), **ce), 100)
            print(f"65536x10 {np.dtype(dt).name:7} {'1 thread' if nt else 'threads':8}  CE {t_ce:6.3f}  focal {t_fo:6.3f}")

    # categorical focal from logits on both sides of focal_row_exact (gamma > 4: rows that correct
    # Q^gamma for the roundings of Q), loss alone and with the gradient, 1 thread
    for shape in ((65536, 10), (16384, 100), (1024, 32000)):
        for dt in (np.float32, np.float64):
            x = (rng.standard_normal(shape) * 3).astype(dt)
            y = rng.integers(0, shape[1], shape[0])
            g = np.empty_like(x)
            row = f"focal {shape[0]}x{shape[1]} {np.dtype(dt).name:7}"
            for gamma in (4.0, 20.0):
                t_l = median_ms(lambda: xentc.focal_loss(y, x, gamma=gamma, from_logits=True, n_threads=1), rep)
                t_g = median_ms(lambda: xentc.focal_loss(y, x, gamma=gamma, n_threads=1, out=(None, g, None), **ce), rep)
                row += f"  gamma {gamma:g}: loss {t_l:7.2f} +grad {t_g:7.2f}"
            print(row)

    # focal with a non-integer gamma (float32: powers in double; float64: PowDD) against gamma 2 or 3
    n = 10**7
    for dt in (np.float32, np.float64):
        z = rng.standard_normal(n).astype(dt) * 2
        p = (1 / (1 + np.exp(-z.astype(np.float64)))).astype(dt)
        y = (rng.random(n) < 0.3).astype(dt)
        gamma_row(f"binary focal n=1e7 {np.dtype(dt).name:7}", xentc.binary_focal_loss, y,
                  (("logits", z, True), ("probs", p, False)), (2.0, 2.5), np.empty_like(z), rep, 1)
    for shape, soft in (((4096, 1000), True), ((65536, 10), False)):
        for dt in (np.float32, np.float64):
            x = (rng.standard_normal(shape) * 2).astype(dt)
            pr = np.exp(x - x.max(axis=1, keepdims=True))
            pr /= pr.sum(axis=1, keepdims=True)
            y = rng.dirichlet(np.ones(shape[1]), shape[0]).astype(dt) if soft else rng.integers(0, shape[1], shape[0])
            gamma_row(f"focal {shape[0]}x{shape[1]} {'soft' if soft else 'int'} {np.dtype(dt).name:7}",
                      xentc.focal_loss, y, (("logits", x, True), ("probs", pr, False)), (3.0, 2.5),
                      np.empty_like(x), rep, 2)
    # rows of few classes: from logits C <= 127 takes the group path (16 rows at a time), 200 the
    # row path; from probabilities rows of at most 64 classes pieces of rows at a time (softmax_prob_piece)
    for shape in ((65536, 10), (8192, 100), (4096, 200)):
        for dt in (np.float32, np.float64):
            x = (rng.standard_normal(shape) * 2).astype(dt)
            pr = np.exp(x - x.max(axis=1, keepdims=True))
            pr /= pr.sum(axis=1, keepdims=True)
            yi = rng.integers(0, shape[1], shape[0])
            ys = rng.dirichlet(np.ones(shape[1]), shape[0]).astype(dt)
            g = np.empty_like(x)
            for source, pred, logits in (("logits", x, True), ("probs", pr, False)):
                row = f"{shape[0]}x{shape[1]} from {source:6} {np.dtype(dt).name:7}"
                for what, fn, y, kw in (("CE", xentc.cross_entropy, yi, {}),
                                        ("smoothed", xentc.cross_entropy, yi, {"label_smoothing": 0.1}),
                                        ("focal 2", xentc.focal_loss, yi, {"gamma": 2.0}),
                                        ("soft CE", xentc.cross_entropy, ys, {})):
                    t = median_ms(lambda: fn(y, pred, out=(None, g, None), **{**ce, "from_logits": logits}, **kw),
                                  rep)
                    row += f"  {what} {t:5.2f}"
                print(row)

    # integer labels at random with the categorical options: ignore_index (a quarter of the rows),
    # class and sample weights; one thread, as the branches on labels they cost show there best
    for dt in (np.float32, np.float64):
        x = rng.standard_normal((10**6, 4)).astype(dt)
        pr = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
        yi = rng.integers(0, 4, 10**6)
        cw, sw, g = np.array([1.0, 2.0, 3.0, 4.0]), rng.random(10**6).astype(dt), np.empty_like(x)
        for source, pred, logits in (("logits", x, True), ("probs", pr, False)):
            row = f"1e6x4 {source:6} {np.dtype(dt).name:7} 1 thread"
            for what, kw in (("plain", {}), ("ignore", {"ignore_index": 0}), ("class_w", {"class_weight": cw}),
                             ("sample_w", {"sample_weight": sw}),
                             ("both+ignore", {"class_weight": cw, "sample_weight": sw, "ignore_index": 0})):
                t = median_ms(lambda: xentc.cross_entropy(yi, pred, out=(None, g, None), n_threads=1,
                                                          **{**ce, "from_logits": logits}, **kw), rep)
                row += f"  {what} {t:5.2f}"
            print(row)


if __name__ == "__main__":
    main()
