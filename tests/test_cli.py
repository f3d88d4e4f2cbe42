"""The command line (xentc/__main__.py): the tour, the subcommands (``score`` over good and bad
files included), help and usage errors, the source-tree handover for ``python -m xentc`` in the
repository root, the ``xentc`` script, and the README examples."""

import doctest
import errno
import hashlib
import importlib.util
import io
import os
import pathlib
import re
import subprocess
import sys
import zipfile
from collections import namedtuple

import numpy as np
import pytest

import xentc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference as ref  # noqa: E402
from inputs import make_binary, make_categorical  # noqa: E402
from xentc.__main__ import (
    INSTALL_SYMBOLIC,
    _row_ok,
    main,
    numpy_binary_ce_logits,
    numpy_softmax_ce_logits,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
HAVE_SYMBOLIC = all(importlib.util.find_spec(m) is not None for m in ("sympy", "mpmath"))
COMMANDS = ["tour", "info", "verify", "bench", "score"]


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
    limit = xentc.buffer_cache().limit
    assert main(["bench", "--quick", "--repeat", "1", "--dtype", "float64", "--case", "65536x10"]) == 0
    out = capsys.readouterr().out
    assert "softmax CE 65536x10" in out and "float64" in out and "kernel variant" in out
    assert "fresh" in out and xentc.buffer_cache().limit == limit   # the 'fresh' column restores the cache



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
                                  ["bench", "--dtype", "int8"], ["bench", "--no-such-option"],
                                  ["verify", "--bogus"], ["bench", "--case", "no such case"],
                                  ["bench", "--json", "/no-such-folder/b.json"]])
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


# ---------------------------------------------------------------------------------------------
# score: a loss over .npy/.npz files, in chunks
# ---------------------------------------------------------------------------------------------
SCORE_FN = {"bce": (xentc.binary_cross_entropy, ref.binary_cross_entropy),
            "binary-focal": (xentc.binary_focal_loss, ref.binary_focal_loss),
            "ce": (xentc.cross_entropy, ref.cross_entropy),
            "focal": (xentc.focal_loss, ref.focal_loss)}


def _score_inputs(loss, from_logits, dtype, n=1003, label_form="int"):
    rng = np.random.default_rng(7)
    if loss in ("bce", "binary-focal"):
        return make_binary(rng, (n,), dtype, from_logits, "hard" if label_form == "int" else "soft")
    return make_categorical(rng, (n, 6), dtype, from_logits, label_form)


def _save(tmp_path, fmt, pred, labels):
    """Write the arrays as two .npy files, or as one .npz (stored or compressed) with keys."""
    if fmt == "npy":
        np.save(tmp_path / "pred.npy", pred)
        np.save(tmp_path / "labels.npy", labels)
        return [str(tmp_path / "pred.npy"), str(tmp_path / "labels.npy")]
    path = tmp_path / "data.npz"
    (np.savez if fmt == "npz" else np.savez_compressed)(path, p=pred, y=labels)
    return [str(path), str(path), "--pred-key", "p", "--labels-key", "y"]


def _score(argv, capsys):
    rc = main(["score", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("fmt", ["npy", "npz", "npz-compressed"])
@pytest.mark.parametrize("loss", list(SCORE_FN))
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_score_matches_one_call_and_the_reference(tmp_path, capsys, fmt, loss, from_logits, reduction):
    labels, pred = _score_inputs(loss, from_logits, np.float64)
    fn, reference = SCORE_FN[loss]
    argv = _save(tmp_path, fmt, pred, labels) + ["--loss", loss, "--reduction", reduction, "--chunk-rows", "97"]
    kw = {"from_logits": from_logits}
    if loss.endswith("focal"):
        argv += ["--gamma", "1.5", "--alpha", "0.25"]
        kw.update(gamma=1.5, alpha=0.25)
    if from_logits:
        argv.append("--from-logits")
    rc, out, err = _score(argv, capsys)
    assert rc == 0, err
    value = float(out)
    direct = float(fn(labels, pred, reduction=reduction, **kw))
    expected = float(reference(labels, pred, reduction=reduction, **kw)[0])
    assert value == pytest.approx(direct, rel=1e-13)
    assert value == pytest.approx(expected, rel=1e-13)
    assert err == ""  # no progress bar: stderr is not a terminal


@pytest.mark.parametrize("loss", ["ce", "focal"])
def test_score_soft_labels_float32_and_smoothing(tmp_path, capsys, loss):
    labels, pred = _score_inputs(loss, True, np.float32, label_form="soft")
    fn, reference = SCORE_FN[loss]
    argv = _save(tmp_path, "npy", pred, labels) + ["--loss", loss, "--from-logits", "--chunk-rows", "10",
                                                   "--label-smoothing", "0.1"]
    rc, out, err = _score(argv, capsys)
    assert rc == 0, err
    expected = float(reference(labels, pred, from_logits=True, label_smoothing=0.1)[0])
    # float32 computation: each chunk sum is rounded to float32 once
    assert float(out) == pytest.approx(expected, rel=2e-6)
    assert float(out) == pytest.approx(float(fn(labels, pred, from_logits=True, label_smoothing=0.1)), rel=2e-6)


@pytest.mark.parametrize("fmt", ["npy", "npz-compressed"])
@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_score_none_writes_per_sample_losses(tmp_path, capsys, fmt, loss):
    labels, pred = _score_inputs(loss, True, np.float32)
    out_path = tmp_path / "losses.npy"
    rc, out, err = _score(_save(tmp_path, fmt, pred, labels) + ["--loss", loss, "--from-logits", "--reduction",
                                                                "none", "--out", str(out_path),
                                                                "--chunk-rows", "64"], capsys)
    assert rc == 0, err
    assert out == ""
    got = np.load(out_path)
    direct = SCORE_FN[loss][0](labels, pred, from_logits=True, reduction="none")
    assert got.dtype == direct.dtype == np.float32 and got.shape == direct.shape
    np.testing.assert_array_equal(got, direct)  # elementwise: chunking changes nothing


def _digests(folder):
    """Every file in ``folder`` (by name) and a hash of its bytes."""
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir()) if f.is_file()}


@pytest.mark.parametrize("how", ["pred", "labels", "symlink", "hardlink", "npz"])
def test_score_out_refuses_an_input_file(tmp_path, how):
    """--out naming an input (by any name) is refused before anything is written: writing it used to
    truncate the memory-mapped input under the reader (SIGBUS) and destroy it. A child process, so
    that a regression fails this test instead of killing the test run."""
    labels, pred = _score_inputs("ce", True, np.float32)
    argv = _save(tmp_path, "npz" if how == "npz" else "npy", pred, labels)
    out, role = {"pred": (argv[0], "PRED"), "labels": (argv[1], "LABELS"), "npz": (argv[0], "PRED"),
                 "symlink": (str(tmp_path / "link.npy"), "PRED"),
                 "hardlink": (str(tmp_path / "hard.npy"), "PRED")}[how]
    if how == "symlink":
        try:
            os.symlink(argv[0], out)
        except (OSError, NotImplementedError):
            pytest.skip("no symbolic links here")
    elif how == "hardlink":
        os.link(argv[0], out)
    before = _digests(tmp_path)
    proc = _run(["-m", "xentc", "score", *argv, "--loss", "ce", "--from-logits", "--reduction", "none",
                 "--out", out, "--chunk-rows", "64"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m xentc score: error: --out: "), proc.stderr
    assert f"is the same file as {role}" in lines[0]
    assert _digests(tmp_path) == before  # the inputs' bytes unchanged, nothing new beside them


def test_score_out_is_left_alone_when_scoring_fails(tmp_path, capsys, monkeypatch):
    """A failure part way (a bad label in a late chunk, a full disk) leaves an existing --out as it
    was, creates none where there was none, and leaves no temporary file behind."""
    labels, pred = _score_inputs("ce", True, np.float32)
    labels[950] = 6
    argv = _save(tmp_path, "npy", pred, labels)
    out = tmp_path / "losses.npy"
    np.save(out, np.arange(5.0))
    before = _digests(tmp_path)
    cmd = argv + ["--loss", "ce", "--from-logits", "--reduction", "none", "--out", str(out), "--chunk-rows", "64"]
    _bad(capsys, cmd, "LABELS: label 6 at index 950 is outside [0, 6)")
    assert _digests(tmp_path) == before
    np.testing.assert_array_equal(np.load(out), np.arange(5.0))
    new = tmp_path / "new.npy"
    _bad(capsys, cmd[:-3] + [str(new), "--chunk-rows", "64"], "LABELS: label 6 at index 950")
    assert _digests(tmp_path) == before  # no new.npy, no temporary
    labels[950] = 0
    np.save(argv[1], labels)
    before = _digests(tmp_path)
    if hasattr(os, "posix_fallocate"):
        def full(fd, offset, size):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(os, "posix_fallocate", full)
        _bad(capsys, cmd, "--out: cannot write", "losses.npy", "No space left on device")
        assert _digests(tmp_path) == before
        monkeypatch.undo()
    # directories and devices are refused before anything is read
    _bad(capsys, cmd[:-3] + [str(tmp_path), "--chunk-rows", "64"], "--out:", "is a directory")
    if os.path.exists(os.devnull) and os.name != "nt":
        _bad(capsys, cmd[:-3] + [os.devnull, "--chunk-rows", "64"], "--out:", "not a regular file")
    assert _digests(tmp_path) == before


def test_score_none_replaces_an_existing_out(tmp_path, capsys):
    """A successful run replaces --out whole (through a symbolic link to it, the link is kept), as
    the same .npy file np.save writes, with the file's permissions kept and no temporary left."""
    labels, pred = _score_inputs("ce", True, np.float32)
    argv = _save(tmp_path, "npy", pred, labels)
    out = tmp_path / "losses.npy"
    np.save(out, np.arange(10_000.0))  # larger than the result: nothing of it may remain
    os.chmod(out, 0o640)
    rc, stdout, err = _score(argv + ["--loss", "ce", "--from-logits", "--reduction", "none", "--out", str(out),
                                     "--chunk-rows", "100"], capsys)
    assert (rc, stdout) == (0, ""), err
    direct = xentc.cross_entropy(labels, pred, from_logits=True, reduction="none")
    np.save(tmp_path / "direct.npy", direct)
    assert out.read_bytes() == (tmp_path / "direct.npy").read_bytes()
    if os.name != "nt":
        assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(f.name for f in tmp_path.iterdir()) == ["direct.npy", "labels.npy", "losses.npy", "pred.npy"]
    try:
        os.symlink(out, tmp_path / "link.npy")
    except (OSError, NotImplementedError):
        return
    np.save(out, np.arange(3.0))
    rc, stdout, err = _score(argv + ["--loss", "ce", "--from-logits", "--reduction", "none",
                                     "--out", str(tmp_path / "link.npy")], capsys)
    assert rc == 0, err
    assert (tmp_path / "link.npy").is_symlink()
    np.testing.assert_array_equal(np.load(out), direct)


def test_score_multidimensional_and_empty(tmp_path, capsys):
    rng = np.random.default_rng(3)
    y, z = make_categorical(rng, (40, 3, 5), np.float64, True, "int")
    argv = _save(tmp_path, "npy", z, y) + ["--loss", "ce", "--from-logits", "--chunk-rows", "7"]
    rc, out, err = _score(argv, capsys)
    assert rc == 0, err
    assert float(out) == pytest.approx(float(ref.cross_entropy(y, z, from_logits=True)[0]), rel=1e-13)
    argv = _save(tmp_path, "npz", np.zeros((0, 4)), np.zeros(0, dtype=np.int64)) + ["--loss", "ce"]
    rc, out, err = _score(argv, capsys)
    assert (rc, float(out)) == (0, 0.0)  # no samples: mean 0.0, as the API says


def test_score_progress_bar(tmp_path, capsys):
    labels, pred = _score_inputs("bce", True, np.float64)
    argv = _save(tmp_path, "npy", pred, labels) + ["--loss", "bce", "--from-logits", "--chunk-rows", "100"]
    rc, out, err = _score(argv + ["--progress"], capsys)
    assert rc == 0
    assert "1003/1003 rows" in err and "100.0%" in err and err.endswith("\n")
    rc, out2, err = _score(argv + ["--no-progress"], capsys)
    assert (rc, out2, err) == (0, out, "")


def test_score_progress_auto_needs_a_terminal_and_time():
    import io

    from xentc._score import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    for stream, delay, shown in ((io.StringIO(), 0.0, False), (Tty(), 3600.0, False), (Tty(), 0.0, True)):
        bar = Progress(10, None, stream, delay=delay)
        bar.update(10)
        bar.close()
        assert ("10/10 rows" in stream.getvalue()) is shown


def _bad(capsys, argv, *fragments):
    rc, out, err = _score(argv, capsys)
    assert rc == 2, (out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m xentc score: error: "), err
    for f in fragments:
        assert f in lines[0], lines[0]


def test_score_missing_and_unreadable_files(tmp_path, capsys):
    labels, pred = _score_inputs("ce", True, np.float64, n=50)
    p, y = _save(tmp_path, "npy", pred, labels)
    _bad(capsys, [str(tmp_path / "nope.npy"), y, "--loss", "ce"], "PRED: no such file", "nope.npy")
    _bad(capsys, [p, str(tmp_path / "nope.npz"), "--loss", "ce"], "LABELS: no such file")
    _bad(capsys, [str(tmp_path), y, "--loss", "ce"], "PRED:", "is a directory")
    (tmp_path / "text.npy").write_text("not an array\n")
    _bad(capsys, [str(tmp_path / "text.npy"), y, "--loss", "ce"], "PRED:", "neither a .npy file nor")
    np.save(tmp_path / "obj.npy", np.array([{}, 1], dtype=object), allow_pickle=True)
    _bad(capsys, [p, str(tmp_path / "obj.npy"), "--loss", "ce"], "LABELS: cannot read", "obj.npy")
    np.save(tmp_path / "str.npy", np.array(["a", "b"]))
    _bad(capsys, [str(tmp_path / "str.npy"), y, "--loss", "ce"], "PRED:", "dtype <U1",
         "expected a real numeric array")
    np.save(tmp_path / "scalar.npy", np.float64(0.5))
    _bad(capsys, [str(tmp_path / "scalar.npy"), y, "--loss", "bce"], "PRED:", "0-d array")


@pytest.mark.parametrize("fmt", ["npy", "npz", "npz-compressed"])
def test_score_truncated_and_corrupt_files(tmp_path, capsys, fmt):
    labels, pred = _score_inputs("ce", True, np.float64, n=500)
    argv = _save(tmp_path, fmt, pred, labels)
    path = pathlib.Path(argv[0])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _bad(capsys, argv + ["--loss", "ce", "--from-logits"], "PRED: ", path.name)
    if fmt != "npy":
        # flip bytes inside the array data: the zip member's CRC (or zlib) catches it
        corrupt = bytearray(data)
        for k in range(2000, 2016):
            corrupt[k] ^= 0x5A
        path.write_bytes(bytes(corrupt))
        _bad(capsys, argv + ["--loss", "ce", "--from-logits", "--chunk-rows", "50"], "PRED: cannot read", path.name)


@pytest.mark.parametrize("fmt", ["npy", "npz"])
def test_score_damaged_headers(tmp_path, capsys, fmt):
    """Header damage that NumPy's own readers let through or report with an exception of their
    parser (tokenize.TokenError: brackets that do not close; a negative dimension, which the
    streaming .npz reader took for an empty array: a mean of -0.0, exit status 0) is one line
    and exit status 2."""
    labels, pred = _score_inputs("ce", True, np.float64, n=50)
    argv = _save(tmp_path, fmt, pred, labels)
    path = pathlib.Path(argv[0])
    data = path.read_bytes()
    for old, new in ((b"(50, 6)", b"(-50,6)"), (b"'shape': (50, 6)", b"'shape': ((50, 6")):
        if fmt == "npy" and b"-50" in new:
            continue   # np.load refuses a negative shape itself (test_score_truncated_and_corrupt_files' kind)
        if fmt == "npy":
            path.write_bytes(data.replace(old, new))
        else:
            bufs = {"p": io.BytesIO(), "y": io.BytesIO()}
            np.save(bufs["p"], pred)
            np.save(bufs["y"], labels)
            with zipfile.ZipFile(path, "w") as z:
                z.writestr("p.npy", bufs["p"].getvalue().replace(old, new))
                z.writestr("y.npy", bufs["y"].getvalue())
        _bad(capsys, argv + ["--loss", "ce", "--from-logits"], "PRED: cannot read", path.name)
        if fmt == "npz":
            _bad(capsys, argv + ["--loss", "ce", "--from-logits", "--reduction", "none", "--out",
                                 str(tmp_path / "o.npy")], "PRED: cannot read", path.name)


def test_score_mismatched_files(tmp_path, capsys):
    labels, pred = _score_inputs("ce", True, np.float64, n=50)
    p, y = _save(tmp_path, "npy", pred, labels)
    np.save(tmp_path / "short.npy", labels[:49])
    _bad(capsys, [p, str(tmp_path / "short.npy"), "--loss", "ce"], "LABELS: shape (49,) does not match",
         "(50,) (integer labels) or (50, 6) (soft labels)")
    _bad(capsys, [p, y, "--loss", "bce"], "LABELS: shape (50,) does not match PRED: expected (50, 6)")
    _bad(capsys, [y, y, "--loss", "focal"], "PRED: shape (50,)", "classes")
    np.savez(tmp_path / "two.npz", a=pred, b=labels)
    _bad(capsys, [str(tmp_path / "two.npz"), y, "--loss", "ce"], "PRED:", "holds 2 arrays (a, b)", "--pred-key")
    _bad(capsys, [str(tmp_path / "two.npz"), y, "--loss", "ce", "--pred-key", "c"], "PRED:", "has no array 'c'")
    _bad(capsys, [p, y, "--loss", "ce", "--labels-key", "y"], "LABELS:", "only for .npz files")
    # the label form's errors give the files' shapes, not a chunk's
    np.save(tmp_path / "float.npy", labels.astype(np.float64))
    _bad(capsys, [p, str(tmp_path / "float.npy"), "--loss", "ce", "--chunk-rows", "10"],
         "LABELS: class labels of shape (50,) must have an integer dtype, got float64")
    np.save(tmp_path / "onehot.npy", np.eye(6, dtype=np.int64)[labels])
    _bad(capsys, [p, str(tmp_path / "onehot.npy"), "--loss", "ce", "--chunk-rows", "10"],
         "LABELS: integer labels must have shape (50,)", "got (50, 6)")


def test_score_bad_values_name_the_file_and_the_index_in_it(tmp_path, capsys):
    labels, pred = _score_inputs("ce", False, np.float64, n=300)
    pred[257, 4] = 1.5
    labels[123] = 6
    p, y = _save(tmp_path, "npy", pred, labels)
    _bad(capsys, [p, y, "--loss", "ce", "--chunk-rows", "100"], "LABELS: label 6 at index 123 is outside [0, 6)")
    labels[123] = 0
    np.save(y, labels)
    _bad(capsys, [p, y, "--loss", "ce", "--chunk-rows", "100"],
         f"PRED: probability 1.5 at index {257 * 6 + 4} is outside [0, 1]")
    # option errors name the option, as typed
    _bad(capsys, [p, y, "--loss", "focal", "--gamma", "-1"], "error: --gamma: expected a finite value >= 0")
    _bad(capsys, [p, y, "--loss", "focal", "--alpha", "3"], "error: --alpha: value 3.0")
    _bad(capsys, [p, y, "--loss", "ce", "--label-smoothing", "1.5"], "error: --label-smoothing: expected")
    _bad(capsys, [p, y, "--loss", "ce", "--threads", "3000000000"], "error: --threads: expected")
    _bad(capsys, [p, y, "--loss", "ce", "--gamma", "1"], "--gamma and --alpha: only for the focal losses")
    _bad(capsys, [p, y, "--loss", "ce", "--reduction", "none"], "--out: required")
    _bad(capsys, [p, y, "--loss", "ce", "--out", str(tmp_path / "o.npy")], "--out: only with --reduction none")
    assert not (tmp_path / "o.npy").exists()


def test_score_memory_stays_bounded(tmp_path):
    """Files larger than the process may allocate are still scored: only a chunk at a time is
    converted (float16 labels to float64; uint8 labels are read as they are, not converted).
    RLIMIT_DATA, set in a child process, limits the heap and private mappings; the read-only file
    mappings of the inputs do not count against it."""
    pytest.importorskip("resource")
    if not sys.platform.startswith("linux"):
        pytest.skip("RLIMIT_DATA covers private mappings on Linux")
    n = 24_000_000  # 192 MB of float64 logits, 48 MB of float16 labels (192 MB as float64)
    z = np.lib.format.open_memmap(tmp_path / "z.npy", mode="w+", dtype=np.float64, shape=(n,))
    z[:] = np.tile(np.linspace(-4.0, 4.0, 1000), n // 1000)
    for name, dt in (("y.npy", np.float16), ("y8.npy", np.uint8)):
        y = np.lib.format.open_memmap(tmp_path / name, mode="w+", dtype=dt, shape=(n,))
        y[:] = np.tile(np.arange(1000) % 2, n // 1000).astype(dt)
    del z, y
    expected = float(xentc.binary_cross_entropy(np.arange(1000) % 2, np.linspace(-4.0, 4.0, 1000),
                                                from_logits=True))  # the file repeats this block
    code = ("import resource, sys\n"
            "from xentc.__main__ import main\n"
            "limit = int(sys.argv[1])\n"
            "resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))\n"
            "sys.exit(main(sys.argv[2:]))\n")
    limit = 160 << 20  # below what one whole-file conversion needs, above Python + NumPy + a chunk
    base = ["-c", code, str(limit), "score", str(tmp_path / "z.npy"), str(tmp_path / "y.npy"), "--loss", "bce",
            "--from-logits", "--threads", "1", "--chunk-rows"]
    proc = _run(base + ["1000000"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) == pytest.approx(expected, rel=1e-12)
    # the limit is real: the same run in one chunk runs out of memory, and says so in one line
    proc = _run(base + [str(n)], cwd=tmp_path)
    assert proc.returncode == 2
    assert "out of memory" in proc.stderr and "--chunk-rows" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    # binary labels of uint8 need no conversion: the whole file in one chunk fits
    base[base.index(str(tmp_path / "y.npy"))] = str(tmp_path / "y8.npy")
    proc = _run(base + [str(n)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) == pytest.approx(expected, rel=1e-12)


def test_console_script():
    script = pathlib.Path(sys.executable).parent / ("xentc.exe" if os.name == "nt" else "xentc")
    if not script.exists():
        pytest.skip(f"no xentc script beside {sys.executable}")
    proc = subprocess.run([str(script), "score", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: xentc score")


@pytest.mark.parametrize("fmt", ["npy", "npz", "npz-compressed"])
def test_score_fortran_order(tmp_path, capsys, fmt):
    labels, pred = _score_inputs("ce", True, np.float64, n=301, label_form="soft")
    argv = _save(tmp_path, fmt, np.asfortranarray(pred), np.asfortranarray(labels))
    rc, out, err = _score(argv + ["--loss", "ce", "--from-logits", "--chunk-rows", "40"], capsys)
    assert rc == 0, err
    assert float(out) == pytest.approx(float(xentc.cross_entropy(labels, pred, from_logits=True)), rel=1e-13)
