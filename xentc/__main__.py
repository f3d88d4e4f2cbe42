"""The xentc command line: ``python -m xentc`` (or the ``xentc`` script).

With no arguments it is a tour for newcomers, under a minute: the build configuration, a quick
run of the symbolic verification, and a timing of loss + gradient against plain NumPy.
Subcommands run one part each: ``info``, ``verify`` (the full symbolic table), ``bench``, and
``score`` (a loss over arrays in ``.npy``/``.npz`` files, read in chunks).

Heavy or optional imports (SymPy, mpmath, CuPy) happen only inside the functions that need them,
so ``import xentc`` stays fast and works without them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

import xentc

INSTALL_SYMBOLIC = 'pip install "xentc[test]"'

# _OPENMP macro values and the OpenMP specification they stand for.
_OPENMP_VERSIONS = {200505: "2.5", 200805: "3.0", 201107: "3.1", 201307: "4.0", 201511: "4.5",
                    201811: "5.0", 202011: "5.1", 202111: "5.2", 202411: "6.0"}


def _say(*parts: Any) -> None:
    print(*parts, flush=True)


def _heading(title: str) -> None:
    _say()
    _say(title)
    _say("-" * len(title))


# ---------------------------------------------------------------------------------------------
# Build configuration
# ---------------------------------------------------------------------------------------------
def _compiler() -> str:
    """The C/C++ compiler that built the extension, as well as it can be discovered.

    In order: meson's introspection files beside the extension (editable or in-tree builds),
    the compiler identification that GCC and Clang leave in the binary's ``.comment`` section,
    and last the compiler Python itself was built with (which may differ).
    """
    from xentc import _kernels

    so = getattr(_kernels, "__file__", None) or ""
    intro = os.path.join(os.path.dirname(so), "meson-info", "intro-compilers.json")
    try:
        with open(intro, encoding="utf-8") as f:
            host = json.load(f)["host"]
        cpp = host.get("cpp") or host.get("c")
        text = cpp.get("full_version") or f"{cpp['id']} {cpp['version']}"
        cython = host.get("cython")
        if cython:
            text += f"; Cython {cython['version']}"
        return text + " (meson build info)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    try:
        with open(so, "rb") as f:
            data = f.read()
        found = re.findall(rb"(GCC: \([^)\x00]*\) [0-9][\x20-\x7e]*|clang version [\x20-\x7e]+)", data)
        names = list(dict.fromkeys(m.decode("ascii", "replace").strip() for m in found))
        if names:
            return "; ".join(names[-2:]) + " (from the extension binary)"
    except OSError:
        pass
    import sysconfig

    cc = sysconfig.get_config_var("CC")
    if cc:
        return f"{cc.split()[0]} (the compiler Python was built with; xentc's own is not recorded)"
    return "unknown"


def _openmp() -> str:
    from xentc import _kernels

    version, threads = _kernels.openmp_info()
    if not version:
        return "off (built without OpenMP: every call runs on one thread)"
    spec = _OPENMP_VERSIONS.get(int(version), "?")
    text = f"on (OpenMP {spec}, _OPENMP={version}), default {threads} thread{'s' if threads != 1 else ''}"
    env = os.environ.get("OMP_NUM_THREADS")
    if env:
        text += f" (OMP_NUM_THREADS={env})"
    return text


def _cupy() -> str:
    """Whether CuPy is importable and sees a GPU; CuPy is imported only here."""
    import importlib.util

    try:
        if importlib.util.find_spec("cupy") is None:
            return 'not installed (GPU path off; pip install "xentc[cuda12]" adds it)'
    except (ImportError, ValueError) as exc:
        return f"not importable ({type(exc).__name__}: {exc})"
    try:
        import cupy

        version = getattr(cupy, "__version__", "?")
    except Exception as exc:  # a broken CUDA install can raise nearly anything here
        return f"installed but not importable ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if count == 0:
            return f"cupy {version}, no GPU visible"
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return f"cupy {version}, {count} GPU{'s' if count != 1 else ''} visible (device 0: {name})"
    except Exception as exc:
        return f"cupy {version}, no usable GPU ({type(exc).__name__}: {exc})"


def build_info() -> List[Tuple[str, str]]:
    """The build configuration as (name, value) pairs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return [
        ("xentc", f"{xentc.__version__} ({os.path.dirname(os.path.abspath(xentc.__file__))})"),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})"),
        ("NumPy", np.__version__),
        ("platform", f"{platform.platform()}, {platform.machine()}, {cpus} CPU{'s' if cpus != 1 else ''} usable"),
        ("compiler", _compiler()),
        ("OpenMP", _openmp()),
        ("kernels", f"{xentc._kernels.kernel_variant()} variant (chosen at import; XENTC_ISA=baseline|avx2|avx512 "
                    "asks for one)"),
        ("CuPy", _cupy()),
    ]


def cmd_info(args: argparse.Namespace) -> int:
    _heading("Build configuration")
    rows = build_info()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        _say(f"  {key:<{width}}  {value}")
    return 0


# ---------------------------------------------------------------------------------------------
# Symbolic verification
# ---------------------------------------------------------------------------------------------
def _load_symbolic() -> Tuple[Any, Optional[str], int]:
    """(xentc._symbolic, None, 0), or (None, why it cannot run, status): status 2 where the
    harness is not there (SymPy/mpmath missing, no harness in this build), 1 where it is broken."""
    missing = []
    for name in ("sympy", "mpmath"):
        try:
            __import__(name)
        except ImportError:
            missing.append("SymPy" if name == "sympy" else name)
    if missing:
        return None, (f"{' and '.join(missing)} not installed, so the symbolic verification cannot run. "
                      f"Install the test extras with:  {INSTALL_SYMBOLIC}"), 2
    try:
        from xentc import _symbolic
    except Exception as exc:  # a broken harness must not end the tour
        return None, f"xentc._symbolic failed to import ({type(exc).__name__}: {exc})", 1
    if not (callable(getattr(_symbolic, "verify", None)) and callable(getattr(_symbolic, "format_table", None))):
        return None, "this build of xentc has no symbolic harness (xentc._symbolic.verify / format_table)", 2
    return _symbolic, None, 0


def _row_ok(row: Any) -> Optional[bool]:
    """Whether a verification row passed; None if the row does not say."""
    def field(name: str) -> Any:
        if isinstance(row, dict):
            return row.get(name)
        return getattr(row, name, None)

    for name in ("ok", "passed"):
        value = field(name)
        if value is not None:
            return bool(value)
    status = field("status")
    if isinstance(status, str):
        return status.strip().lower() in ("ok", "pass", "passed")
    return None


def run_verify(quick: bool, dtypes: Sequence[str], required: bool) -> int:
    """Run the symbolic verification and print its table.

    Returns 0 if every row passed and 1 if a row failed or the harness is broken. Where the
    harness is not there (SymPy missing), 2 if ``required`` (the ``verify`` subcommand), else 0:
    the tour goes on.
    """
    symbolic, why, status = _load_symbolic()
    if symbolic is None:
        _say(f"  {'skipped' if status == 2 else 'ERROR'}: {why}")
        return status if (required or status == 1) else 0
    _say("  deriving with SymPy, evaluating with mpmath, comparing with the kernels ...")
    t0 = time.perf_counter()
    try:
        rows = list(symbolic.verify(quick=quick, dtypes=tuple(dtypes)))
        table = symbolic.format_table(rows)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        _say(f"  ERROR: the symbolic verification raised {type(exc).__name__}: {exc}")
        return 1
    elapsed = time.perf_counter() - t0
    _say(table)
    verdicts = [_row_ok(r) for r in rows]
    failed = sum(v is False for v in verdicts)
    unknown = sum(v is None for v in verdicts)
    if not rows:
        _say("  no rows: nothing was checked")
        return 1
    if unknown:
        _say(f"  {unknown} row(s) do not say whether they passed (no ok/passed/status field)")
        return 1
    if failed:
        _say(f"  FAILED: {failed} of {len(rows)} rows ({elapsed:.1f} s)")
        return 1
    _say(f"  all {len(rows)} rows passed ({elapsed:.1f} s)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    kind = "quick subset" if args.quick else "full table"
    _heading(f"Symbolic verification ({kind}; {', '.join(args.dtype)})")
    return run_verify(args.quick, args.dtype, required=True)


# ---------------------------------------------------------------------------------------------
# Timing against plain NumPy
# ---------------------------------------------------------------------------------------------
def numpy_binary_ce_logits(y: np.ndarray, z: np.ndarray) -> Tuple[Any, np.ndarray]:
    """Mean binary cross entropy from logits and its gradient, in plain NumPy.

    ``l = max(z, 0) - z y + log1p(exp(-|z|))``, gradient ``(sigmoid(z) - y) / n``.
    """
    e = np.exp(-np.abs(z))
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(e))
    p = np.where(z >= 0, 1, e) / (1 + e)
    return loss, (p - y) / z.size


def numpy_softmax_ce_logits(labels: np.ndarray, z: np.ndarray) -> Tuple[Any, np.ndarray]:
    """Mean softmax cross entropy from logits (rows of z, integer labels) and its gradient,
    in plain NumPy: ``l_i = lse(z_i) - z_i[y_i]``, gradient ``(softmax(z) - onehot(y)) / n``."""
    n = z.shape[0]
    rows = np.arange(n)
    shifted = z - z.max(axis=1, keepdims=True)
    ex = np.exp(shifted)
    s = ex.sum(axis=1, keepdims=True)
    loss = -np.mean(shifted[rows, labels] - np.log(s[:, 0]))
    grad = ex / s
    grad[rows, labels] -= 1
    grad /= n
    return loss, grad


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: page in the outputs, start the thread pool
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def _rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return float(np.max(np.abs(a - b))) / scale if scale else float(np.max(np.abs(a - b), initial=0.0))


def _cases(dtype: np.dtype):
    rng = np.random.default_rng(0)
    n = 10**6
    z = (3 * rng.standard_normal(n)).astype(dtype)
    y = (rng.random(n) < 0.5).astype(dtype)
    yield ("binary CE from logits, n=1e6",
           lambda n_threads, y=y, z=z: xentc.binary_cross_entropy(y, z, from_logits=True, grad=True,
                                                                  n_threads=n_threads),
           lambda y=y, z=z: numpy_binary_ce_logits(y, z))
    for rows, classes in ((65536, 10), (4096, 1000)):
        z = (3 * rng.standard_normal((rows, classes))).astype(dtype)
        labels = rng.integers(0, classes, rows)
        yield (f"softmax CE from logits, {rows}x{classes}",
               lambda n_threads, l=labels, z=z: xentc.cross_entropy(l, z, from_logits=True, grad=True,
                                                                    n_threads=n_threads),
               lambda l=labels, z=z: numpy_softmax_ce_logits(l, z))


# Agreement required between xentc and the NumPy reference (relative to the largest value):
# float32 results differ by a few ulp of accumulated rounding, float64 by far less.
_AGREE = {np.dtype(np.float32): 2e-6, np.dtype(np.float64): 1e-12}


def run_bench(repeat: int, n_threads: Optional[int], dtype_name: str) -> int:
    dtype = np.dtype(dtype_name)
    from xentc import _kernels

    threads = n_threads if n_threads is not None else _kernels.openmp_info()[1]
    _say(f"  loss + gradient, mean reduction, {dtype_name}, median of {repeat} runs; "
         f"xentc on {threads} thread{'s' if threads != 1 else ''}, NumPy as it comes")
    header = f"  {'case':<36} {'xentc ms':>9} {'NumPy ms':>9} {'speed-up':>9} {'max rel diff':>13}"
    _say(header)
    _say("  " + "-" * (len(header) - 2))
    tol = _AGREE[dtype]
    bad = []
    for name, run_x, run_np in _cases(dtype):
        res = run_x(n_threads)
        loss_np, grad_np = run_np()
        diff = max(_rel_diff(res.loss, loss_np), _rel_diff(res.grad, grad_np))
        t_x = _median_ms(lambda: run_x(n_threads), repeat)
        t_np = _median_ms(run_np, repeat)
        mark = "" if diff <= tol else "  <-- disagrees"
        if mark:
            bad.append(name)
        _say(f"  {name:<36} {t_x:>9.2f} {t_np:>9.2f} {t_np / t_x:>8.1f}x {diff:>13.1e}{mark}")
    if bad:
        _say(f"  xentc and NumPy disagree by more than {tol:.0e} on: {', '.join(bad)}")
        return 1
    _say(f"  xentc and NumPy agree within {tol:.0e} (relative to the largest loss/gradient value).")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from xentc import _bench

    try:
        return _bench.main(args.bench_args, prog=f"{args.prog} bench")
    except SystemExit as exc:  # its --help and usage errors
        return exc.code if isinstance(exc.code, int) else 0


# ---------------------------------------------------------------------------------------------
# A loss over arrays in files
# ---------------------------------------------------------------------------------------------
def cmd_score(args: argparse.Namespace) -> int:
    from xentc import _score

    try:
        value = _score.score(args.pred, args.labels, args.loss, from_logits=args.from_logits, gamma=args.gamma,
                             alpha=args.alpha, label_smoothing=args.label_smoothing, reduction=args.reduction,
                             out=args.out, chunk_rows=args.chunk_rows, pred_key=args.pred_key,
                             labels_key=args.labels_key, n_threads=args.threads, progress=args.progress)
    except _score.ScoreError as exc:
        print(f"{args.prog}: error: {exc}", file=sys.stderr)
        return 2
    if value is not None:
        _say(repr(value))
    return 0


# ---------------------------------------------------------------------------------------------
# The tour
# ---------------------------------------------------------------------------------------------
def cmd_tour(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    _say(f"xentc {xentc.__version__}: compiled cross-entropy losses with exact gradients and Hessian diagonals")
    rc = cmd_info(args)
    _heading("Symbolic verification (quick subset): kernels against SymPy derivatives, evaluated by mpmath")
    rc = max(rc, run_verify(quick=True, dtypes=("float32", "float64"), required=False))
    _heading("Timing: xentc against plain NumPy")
    rc = max(rc, run_bench(repeat=args.repeat, n_threads=None, dtype_name="float32"))
    _say()
    _say(f"Done in {time.perf_counter() - t0:.1f} s. Next: `python -m xentc verify` for the full symbolic "
         "table, `python -m xentc --help` for the rest, README.md and docs/ for the API and the mathematics.")
    return rc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xentc" if os.path.basename(sys.argv[0] or "") == "xentc" else "python -m xentc",
        usage="%(prog)s [-h] [--version] [COMMAND [options]]",
        description="xentc: compiled cross-entropy losses with exact gradients and Hessian diagonals. "
                    "Without a command: a short tour (build configuration, a quick symbolic "
                    "verification, a timing against NumPy).")
    parser.add_argument("--version", action="version", version=f"xentc {xentc.__version__}")
    parser.set_defaults(func=cmd_tour, repeat=5)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", prog=parser.prog)

    p = sub.add_parser("tour", help="the default: configuration, quick verification and timing",
                       description="Print the build configuration, run a quick subset of the symbolic "
                                   "verification, and time loss + gradient against plain NumPy.")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per case (median is shown; default 5)")
    p.set_defaults(func=cmd_tour)

    p = sub.add_parser("info", help="print the build configuration",
                       description="Print the xentc, Python and NumPy versions, the compiler, OpenMP "
                                   "(on/off, default thread count) and whether CuPy sees a GPU.")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("verify", help="compare the kernels with SymPy-derived derivatives",
                       description="Derive each loss's gradient and Hessian diagonal with SymPy, "
                                   "evaluate them with mpmath at high precision, and compare the "
                                   "compiled kernels at many points. Exit status 1 if any row fails, "
                                   f"2 if SymPy/mpmath are missing ({INSTALL_SYMBOLIC}).")
    p.add_argument("--quick", action="store_true", help="a quick subset instead of the full table")
    p.add_argument("--dtype", action="append", choices=("float32", "float64"),
                   help="dtype to check (repeatable; default both)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("bench", help="the CPU benchmark against NumPy, PyTorch and scikit-learn",
                       add_help=False, prefix_chars="\0",
                       description="The CPU benchmark (xentc/_bench.py, also benchmarks/bench_cpu.py); "
                                   "`bench --help` lists its options.")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench, prog=parser.prog)

    p = sub.add_parser("score", help="a loss over arrays in .npy/.npz files, in chunks",
                       description="Compute a loss over predictions and labels stored in .npy or .npz "
                                   "files and print it (the mean or the sum). A .npy file is memory-mapped "
                                   "and an .npz member is streamed (an .npz cannot be memory-mapped), one "
                                   "chunk of rows at a time, so files larger than memory work. The mean is "
                                   "the exact sum of the chunk sums over the number of samples. Exit status "
                                   "2 for a missing, corrupt or mismatched file or a bad value.")
    p.add_argument("pred", metavar="PRED", help="predictions: probabilities, or logits with --from-logits "
                                                "(.npy or .npz); samples along the first axis, classes along "
                                                "the last for ce/focal")
    p.add_argument("labels", metavar="LABELS", help="labels (.npy or .npz): PRED's shape for bce/binary-focal; "
                                                    "integer classes (PRED's shape without the last axis) or "
                                                    "soft labels (PRED's shape) for ce/focal")
    p.add_argument("--loss", required=True, choices=("bce", "binary-focal", "ce", "focal"),
                   help="bce: binary cross entropy; binary-focal: binary focal loss; ce: categorical cross "
                        "entropy; focal: categorical focal loss")
    p.add_argument("--from-logits", action="store_true", help="PRED holds logits (sigmoid / softmax applied "
                                                               "in log space)")
    p.add_argument("--gamma", type=float, default=None, help="focusing parameter of the focal losses (default 2)")
    p.add_argument("--alpha", type=float, default=None, help="alpha of the focal losses (default: none)")
    p.add_argument("--label-smoothing", type=float, default=0.0, metavar="EPS", help="default 0")
    p.add_argument("--reduction", choices=("mean", "sum", "none"), default="mean",
                   help="mean (default) or sum is printed; none writes each sample's loss to --out")
    p.add_argument("--out", metavar="FILE.npy", default=None,
                   help="where --reduction none writes the per-sample losses (written chunk by chunk)")
    p.add_argument("--chunk-rows", type=int, default=None, metavar="N",
                   help="rows per chunk (default: about 32 MiB of PRED)")
    p.add_argument("--pred-key", default=None, metavar="NAME", help="the array in a PRED .npz holding several")
    p.add_argument("--labels-key", default=None, metavar="NAME",
                   help="the array in a LABELS .npz holding several")
    p.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: the OpenMP default)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: shown when stderr is a terminal and the run "
                        "takes more than a second)")
    p.set_defaults(func=cmd_score, prog=p.prog)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: return the status, don't exit
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if getattr(args, "func", None) is cmd_verify and not args.dtype:
        args.dtype = ["float32", "float64"]
    for name in ("repeat", "threads", "chunk_rows"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            print(f"{parser.prog}: error: --{name.replace('_', '-')}: expected a positive int, got {value}",
                  file=sys.stderr)
            return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
