"""The command line (xentc/__main__.py): the tour, the subcommands, help and usage errors, the
source-tree handover for ``python -m xentc`` in the repository root, and the README examples."""

import doctest
import importlib.util
import os
import pathlib
import re
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pytest

import xentc
from xentc.__main__ import (
    INSTALL_SYMBOLIC,
    _row_ok,
    main,
    numpy_binary_ce_logits,
    numpy_softmax_ce_logits,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
HAVE_SYMBOLIC = all(importlib.util.find_spec(m) is not None for m in ("sympy", "mpmath"))
COMMANDS = ["tour", "info", "verify", "bench"]


def _block_symbolic(monkeypatch):
    """Make ``import sympy`` / ``import mpmath`` fail, as in an install without the test extras."""
    for name in ("sympy", "mpmath"):
        monkeypatch.setitem(sys.modules, name, None)


def test_tour(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert f"xentc {xentc.__version__}" in out
    for key in ("Python", "NumPy", "compiler", "OpenMP", "CuPy"):
        assert re.search(rf"^\s+{key}\s+\S", out, re.M), key
    assert "Symbolic verification" in out
    if HAVE_SYMBOLIC:
        assert "rows passed" in out
    for case in ("n=1e6", "65536x10", "4096x1000"):
        assert re.search(rf"{case}\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+x", out), case
    assert "agree within" in out


def test_tour_without_sympy_says_how_to_install(capsys, monkeypatch):
    _block_symbolic(monkeypatch)
    assert main(["tour", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert INSTALL_SYMBOLIC in out
    assert "agree within" in out  # the tour went on to the timing


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert np.__version__ in out
    assert re.search(r"OpenMP\s+(on \(OpenMP [0-9.?]+, _OPENMP=\d+\), default \d+ threads?|off)", out)
    assert "Symbolic" not in out


@pytest.mark.skipif(not HAVE_SYMBOLIC, reason=f"needs SymPy and mpmath ({INSTALL_SYMBOLIC})")
def test_verify_quick(capsys):
    assert main(["verify", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "rows passed" in out


def test_verify_without_sympy_fails_with_install_hint(capsys, monkeypatch):
    _block_symbolic(monkeypatch)
    assert main(["verify", "--quick"]) == 2
    assert INSTALL_SYMBOLIC in capsys.readouterr().out


def test_bench(capsys):
    # the full benchmark at its quick sizes; every peer's result is checked against xentc first
    assert main(["bench", "--quick", "--repeat", "1", "--dtype", "float64", "--case", "65536x10"]) == 0
    out = capsys.readouterr().out
    assert "softmax CE 65536x10" in out and "float64" in out and "kernel variant" in out



@pytest.mark.parametrize("argv", [["--help"], ["-h"]] + [[c, "--help"] for c in COMMANDS])
def test_help(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:")
    if argv[0] in COMMANDS:
        assert f"xentc {argv[0]}" in out.splitlines()[0]
    else:
        for c in COMMANDS:
            assert c in out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"xentc {xentc.__version__}"


def test_unknown_command(capsys):
    rc = main(["frobnicate"])
    assert rc != 0
    err = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in err
    assert "usage:" in err


@pytest.mark.parametrize("argv", [["bench", "--repeat", "0"], ["bench", "--threads", "-1"],
                                  ["bench", "--dtype", "float16"], ["bench", "--no-such-option"],
                                  ["verify", "--bogus"]])
def test_bad_options(argv, capsys):
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_row_verdicts():
    Row = namedtuple("Row", "name passed")
    assert _row_ok(Row("a", True)) is True
    assert _row_ok(Row("a", False)) is False
    assert _row_ok({"ok": False}) is False
    assert _row_ok({"status": "PASS"}) is True
    assert _row_ok(("no", "verdict")) is None


def test_numpy_references_match_xentc():
    rng = np.random.default_rng(1)
    z = 5 * rng.standard_normal(1000)
    y = (rng.random(1000) < 0.3).astype(float)
    loss, grad = numpy_binary_ce_logits(y, z)
    r = xentc.binary_cross_entropy(y, z, from_logits=True, grad=True)
    np.testing.assert_allclose(loss, r.loss, rtol=1e-13)
    np.testing.assert_allclose(grad, r.grad, rtol=1e-12, atol=1e-18)
    z = 5 * rng.standard_normal((200, 7))
    labels = rng.integers(0, 7, 200)
    loss, grad = numpy_softmax_ce_logits(labels, z)
    r = xentc.cross_entropy(labels, z, from_logits=True, grad=True)
    np.testing.assert_allclose(loss, r.loss, rtol=1e-13)
    np.testing.assert_allclose(grad, r.grad, rtol=1e-12, atol=1e-18)


def _run(args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_import_stays_light(tmp_path):
    code = "import sys, xentc; print(sorted(m for m in ('sympy', 'mpmath', 'cupy') if m in sys.modules))"
    proc = _run(["-c", code], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_python_m_xentc_from_the_repository_root():
    """``python -m xentc`` in the clone imports the source folder first; xentc/__init__.py must
    hand over to the installed package (the README's Quick start depends on it)."""
    assert (REPO_ROOT / "xentc" / "__init__.py").is_file()
    proc = _run(["-m", "xentc", "--help"], cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m xentc")
    proc = _run(["-m", "xentc", "info"], cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "OpenMP" in proc.stdout


@pytest.mark.skipif(int(np.__version__.split(".")[0]) < 2, reason="README shows NumPy 2 reprs")
def test_readme_examples():
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    parser = doctest.DocTestParser()
    test = parser.get_doctest("\n".join(blocks), {}, "README.md", str(REPO_ROOT / "README.md"), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 15
    assert result.failed == 0
