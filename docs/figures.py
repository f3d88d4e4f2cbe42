"""The figures of the documentation, drawn with matplotlib (Agg) at the start of each Sphinx build.

* ``_generated/focal_loss.png`` and ``_generated/focal_grad.png``: the binary focal loss and its
  derivative against the probability of the true class, for several gamma, computed by xentc.
* ``_generated/bench_cpu.png``: the CPU benchmark chart, read from ``benchmarks/results/cpu.json``
  (written by ``python -m xentc bench --json benchmarks/results/cpu.json``). The build stops with
  an error naming that command if the file is missing or unreadable.

Run on its own (``python docs/figures.py``) it writes the same files.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "_generated")
BENCH_JSON = os.path.join(os.path.dirname(HERE), "benchmarks", "results", "cpu.json")
BENCH_COMMAND = "python -m xentc bench --json benchmarks/results/cpu.json"
GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)


class FigureError(RuntimeError):
    """A figure cannot be drawn (its input is missing or malformed)."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def focal_curves(p: np.ndarray) -> Dict[float, Any]:
    """For each gamma: (loss, d loss / d p) of one positive sample (y = 1) at probabilities p,
    both computed by xentc (``reduction="none"``: each element is its own sample)."""
    import xentc

    y = np.ones_like(p)
    return {g: xentc.binary_focal_loss(y, p, gamma=g, reduction="none", grad=True) for g in GAMMAS}


def draw_focal(out_dir: str = OUT) -> List[str]:
    plt = _pyplot()
    p = np.linspace(0.01, 1.0, 400)
    curves = focal_curves(p)
    paths = []
    for name, field, ylabel, ylim in (
            ("focal_loss.png", "loss", r"loss  $-(1-p)^\gamma \log p$", (0, 5)),
            ("focal_grad.png", "grad", r"$\partial\,\mathrm{loss} / \partial p$", (-10, 0.2))):
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
        for g, r in curves.items():
            ax.plot(p, getattr(r, field), label=rf"$\gamma = {g:g}$" + (" (cross entropy)" if g == 0 else ""))
        ax.set_xlabel("probability of the true class $p$")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, 1)
        ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title("binary focal loss, computed by xentc.binary_focal_loss" if field == "loss"
                     else "its gradient (grad=True)")
        fig.tight_layout()
        path = os.path.join(out_dir, name)
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def load_bench(path: str = BENCH_JSON) -> Dict[str, Any]:
    if not os.path.exists(path):
        raise FigureError(f"{path} is missing: the benchmark chart is drawn from it. Measure it with "
                          f"`{BENCH_COMMAND}` (from the repository root, xentc installed), then build again.")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        rows = doc["rows"]
        for row in rows:
            row["case"], row["dtype"], float(row["xentc"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FigureError(f"{path} is not a benchmark file written by `{BENCH_COMMAND}` "
                          f"({type(exc).__name__}: {exc})") from None
    if not rows:
        raise FigureError(f"{path} holds no rows; measure again with `{BENCH_COMMAND}`")
    return doc


def draw_bench(out_dir: str = OUT, path: str = BENCH_JSON) -> str:
    doc = load_bench(path)
    plt = _pyplot()
    rows = doc["rows"]
    series = [("xentc", "xentc"), ("xentc_fresh", "xentc, buffer cache off"), ("xentc_out", "xentc, out= (no new gradient array)"),
              ("xentc_out_1t", "xentc, out=, 1 thread"), ("NumPy", "NumPy"),
              ("PyTorch", "PyTorch CPU"), ("sklearn", "scikit-learn"), ("copy", "numpy.copyto (memory bound)")]
    series = [(k, label) for k, label in series if any(r.get(k) is not None for r in rows)]
    labels = [f"{r['case']}\n{r['dtype']}" for r in rows]
    y = np.arange(len(rows))
    height = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(9.5, 0.9 + 0.55 * len(rows) * max(1, len(series) / 3)), dpi=110)
    for k, (key, label) in enumerate(series):
        vals = np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows])
        ax.barh(y + (k - (len(series) - 1) / 2) * height, vals, height, label=label)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("time of loss + gradient, ms (log scale; shorter is faster)")
    machine = doc.get("machine") or {}
    where = machine.get("processor", "")
    if machine.get("openmp_threads"):
        where += f", {machine['openmp_threads']} threads"
    ax.set_title(f"CPU benchmark, {doc.get('date', '?')}, median of {doc.get('repeat', '?')}"
                 + (f"\n{where}" if where else ""), fontsize=9)
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    out = os.path.join(out_dir, "bench_cpu.png")
    fig.savefig(out)
    plt.close(fig)
    return out


def draw_all(out_dir: str = OUT) -> List[str]:
    os.makedirs(out_dir, exist_ok=True)
    return draw_focal(out_dir) + [draw_bench(out_dir)]


def setup(app: Any) -> None:
    """Draw every figure when the builder starts, before any page is read."""
    from sphinx.errors import ExtensionError

    def build(app: Any) -> None:
        try:
            draw_all()
        except FigureError as exc:
            # Sphinx buries an extension's error under a report template: say it plainly first.
            print(f"\nERROR (docs/figures.py): {exc}\n", file=sys.stderr, flush=True)
            raise ExtensionError(f"docs/figures.py: {exc}") from None

    app.connect("builder-inited", build)


if __name__ == "__main__":
    for p in draw_all():
        print(p)
