"""Time of one small call on the CPU (NumPy arrays of 16 logits, 4 rows of 16 classes), where the
call's fixed cost (argument checks, buffers, the kernel call's setup) is the whole cost: xentc's
four functions, loss only and loss + gradient, beside PyTorch's own losses on one thread where
PyTorch is installed. Microseconds a call: the CPU time of this thread over --calls calls, the
best of --rounds rounds (CPU time, so time the virtual machine gives to others does not count).

    python benchmarks/call_overhead.py [--build DIR] [--calls 5000] [--rounds 5]

--build DIR times a copy of the xentc package instead of the installed one (a directory holding
xentc/ with its compiled modules, as benchmarks/ab_builds.py takes), to compare two versions.
"""
import argparse
import sys
import time


def per_call_us(fn, calls: int, rounds: int) -> float:
    for _ in range(100):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time()
        for _ in range(calls):
            fn()
        best = min(best, time.thread_time() - t0)
    return best / calls * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", help="a directory holding a copy of the xentc package")
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if args.build:
        sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__]
        sys.path.insert(0, args.build)
    import numpy as np

    import xentc

    rng = np.random.default_rng(0)
    x = rng.standard_normal(16).astype(np.float32)
    y = (rng.random(16) < 0.3).astype(np.float32)
    X = rng.standard_normal((4, 16)).astype(np.float32)
    lab = rng.integers(0, 16, 4)
    Yb = (rng.random((4, 16)) < 0.3).astype(np.float32)
    w = rng.random(16).astype(np.float32)
    wr = rng.random(4).astype(np.float32)
    w64, wr64 = w.astype(np.float64), wr.astype(np.float64)
    y_int, lab32 = y.astype(np.int64), lab.astype(np.int32)
    lab_ig = lab.copy()
    lab_ig[1] = -100
    # out= arrays, as a loop that reuses its gradient (and per-sample losses) passes them
    gb, gX, lX = np.empty_like(x), np.empty_like(X), np.empty(4, np.float32)
    cases = {
        "binary_cross_entropy loss": lambda: xentc.binary_cross_entropy(y, x, from_logits=True),
        "binary_cross_entropy grad": lambda: xentc.binary_cross_entropy(y, x, from_logits=True, grad=True),
        "binary_focal_loss grad": lambda: xentc.binary_focal_loss(y, x, from_logits=True, grad=True),
        "cross_entropy loss": lambda: xentc.cross_entropy(lab, X, from_logits=True),
        "cross_entropy grad": lambda: xentc.cross_entropy(lab, X, from_logits=True, grad=True),
        "focal_loss grad": lambda: xentc.focal_loss(lab, X, from_logits=True, grad=True),
        "cross_entropy grad, ignore_index": lambda: xentc.cross_entropy(lab_ig, X, from_logits=True, grad=True,
                                                                        ignore_index=-100),
        "cross_entropy grad, ignore_index, sum": lambda: xentc.cross_entropy(lab_ig, X, from_logits=True, grad=True,
                                                                             ignore_index=-100, reduction="sum"),
        "binary_cross_entropy grad, sample_weight": lambda: xentc.binary_cross_entropy(y, x, from_logits=True,
                                                                                       grad=True, sample_weight=w),
        # multi-label targets with a weight a row, and one weight for every element (broadcast)
        "binary_cross_entropy grad, row weights": lambda: xentc.binary_cross_entropy(
            Yb, X, from_logits=True, grad=True, sample_weight=wr[:, None]),
        "binary_cross_entropy grad, one weight": lambda: xentc.binary_cross_entropy(
            y, x, from_logits=True, grad=True, sample_weight=wr[:1]),
        "cross_entropy grad, sample_weight": lambda: xentc.cross_entropy(lab, X, from_logits=True, grad=True,
                                                                         sample_weight=wr),
        # float64 weights (NumPy's default) beside float32 logits
        "binary_cross_entropy grad, float64 weights": lambda: xentc.binary_cross_entropy(
            y, x, from_logits=True, grad=True, sample_weight=w64),
        "cross_entropy grad, float64 weights": lambda: xentc.cross_entropy(lab, X, from_logits=True, grad=True,
                                                                           sample_weight=wr64),
        "binary_cross_entropy grad, pos_weight": lambda: xentc.binary_cross_entropy(y, x, from_logits=True,
                                                                                    grad=True, pos_weight=2.0),
        "binary_focal_loss grad, alpha": lambda: xentc.binary_focal_loss(y, x, from_logits=True, grad=True,
                                                                         alpha=0.25),
        "cross_entropy grad, class_weight": lambda: xentc.cross_entropy(lab, X, from_logits=True, grad=True,
                                                                        class_weight=w),
        "focal_loss grad, alpha": lambda: xentc.focal_loss(lab, X, from_logits=True, grad=True, alpha=0.25),
        "binary_cross_entropy grad, int64 labels": lambda: xentc.binary_cross_entropy(y_int, x, from_logits=True,
                                                                                      grad=True),
        "cross_entropy grad, int32 labels": lambda: xentc.cross_entropy(lab32, X, from_logits=True, grad=True),
        "binary_cross_entropy grad, out=": lambda: xentc.binary_cross_entropy(y, x, from_logits=True, grad=True,
                                                                              out=(None, gb, None)),
        "cross_entropy grad, out=": lambda: xentc.cross_entropy(lab, X, from_logits=True, grad=True,
                                                                out=(None, gX, None)),
        "cross_entropy none + grad, out=": lambda: xentc.cross_entropy(lab, X, from_logits=True, grad=True,
                                                                       reduction="none", out=(lX, gX, None)),
    }
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(1)
        xt, yt, Xt, lt = (torch.from_numpy(a) for a in (x, y, X, lab))
        F = torch.nn.functional

        def torch_grad(loss_fn, inp, target):
            leaf = inp.detach().requires_grad_()
            loss_fn(leaf, target).backward()
            return leaf.grad

        cases.update({
            "torch BCE-with-logits loss": lambda: F.binary_cross_entropy_with_logits(xt, yt),
            "torch BCE-with-logits grad (autograd)": lambda: torch_grad(F.binary_cross_entropy_with_logits, xt, yt),
            "torch cross_entropy loss": lambda: F.cross_entropy(Xt, lt),
            "torch cross_entropy grad (autograd)": lambda: torch_grad(F.cross_entropy, Xt, lt),
        })
    print(f"xentc {xentc.__version__} from {xentc.__file__}; us a call, best of {args.rounds} rounds of "
          f"{args.calls} calls, thread CPU time")
    for name, fn in cases.items():
        print(f"{name:40s} {per_call_us(fn, args.calls, args.rounds):8.1f}")


if __name__ == "__main__":
    main()
