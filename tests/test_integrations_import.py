"""`import xentc` imports none of the optional integration libraries, and the integration
modules (xentc/torch.py, xentc/jax.py, xentc/dask.py) do not shadow the real packages."""

import subprocess
import sys

import pytest

OPTIONAL = ("torch", "jax", "dask", "distributed", "lightgbm", "xgboost", "cupy", "sympy")


def run(code):
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_import_xentc_imports_no_integration():
    out = run(f"import sys, xentc; print([m for m in {OPTIONAL!r} if m in sys.modules])")
    assert out.strip() == "[]"


def test_objectives_import_no_booster():
    out = run(f"import sys, xentc.objectives; print([m for m in {OPTIONAL!r} if m in sys.modules])")
    assert out.strip() == "[]"


@pytest.mark.parametrize("module, package", [("xentc.torch", "torch"), ("xentc.jax", "jax"),
                                             ("xentc.dask", "dask")])
def test_integration_module_imports_the_real_package(module, package):
    pytest.importorskip(package)
    code = (f"import importlib, sys, pathlib; m = importlib.import_module({module!r}); "
            f"real = sys.modules[{package!r}]; "
            f"here = pathlib.Path(m.__file__).resolve().parent; "
            f"assert real is not m and pathlib.Path(real.__file__).resolve().parent != here, real.__file__; "
            f"print(real.__name__)")
    assert run(code).strip() == package
