"""Typing: the package ships py.typed and a stub beside each compiled module, and ``mypy --strict``
accepts a small program written against the public API (tests/typing_check.py)."""
import importlib.machinery
import importlib.util
import os
import pathlib
import subprocess
import sys
import sysconfig

import pytest

import xentc

HERE = pathlib.Path(__file__).resolve().parent
PACKAGE = pathlib.Path(xentc.__file__).resolve().parent


def test_py_typed_and_a_stub_for_each_compiled_module():
    assert (PACKAGE / "py.typed").is_file()
    spec = importlib.util.find_spec("xentc._kernels")  # the compiled extension
    assert spec is not None and spec.origin is not None
    assert spec.origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), spec.origin
    # every compiled module installed in the package (an editable install keeps them elsewhere)
    # has a stub beside it; the module name is the file name up to its first dot
    folders = {PACKAGE, pathlib.Path(spec.origin).parent}
    compiled = {f.name.split(".")[0] for d in folders for f in d.iterdir()
                if f.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))}
    assert "_kernels" in compiled
    for name in compiled:
        assert (PACKAGE / f"{name}.pyi").is_file(), f"xentc/{name}.pyi is missing"


def test_typing_check_runs():
    proc = subprocess.run([sys.executable, str(HERE / "typing_check.py")], capture_output=True, text=True,
                          timeout=120, cwd=HERE)
    assert proc.returncode == 0, proc.stderr


def _mypy(path, tmp_path):
    pytest.importorskip("mypy")
    env = dict(os.environ)
    site = {os.path.realpath(p) for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
    if os.path.realpath(PACKAGE.parent) not in site:
        # an editable install (an import hook mypy cannot follow): point mypy at the source folder
        env["MYPYPATH"] = str(PACKAGE.parent)
    cmd = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
           "--cache-dir", str(tmp_path / "cache"), str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)


def test_mypy_strict_accepts_the_public_api(tmp_path):
    proc = _mypy(HERE / "typing_check.py", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_mypy_catches_a_misuse(tmp_path):
    """The check has teeth: a LossResult field that does not exist, and an argument of the wrong
    type, are errors."""
    bad = tmp_path / "bad.py"
    bad.write_text("import xentc\n"
                   "r = xentc.cross_entropy([0], [[0.0, 1.0]], from_logits=True, grad=True)\n"
                   "print(r.gradient)\n"
                   "xentc.binary_cross_entropy([1.0], [0.5], n_threads='2')\n")
    proc = _mypy(bad, tmp_path)
    assert proc.returncode == 1
    assert '"LossResult" has no attribute "gradient"' in proc.stdout
    assert "No overload variant" in proc.stdout
