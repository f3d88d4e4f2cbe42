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


def test_cuda_backend_imports_from_the_source_tree_alone():
    """tools/nvrtc_check.py (CI's NVRTC build), tools/kernel_cache.py and tools/sass_loops.py import
    xentc/_cuda.py from the source tree without xentc/__init__.py and without the compiled
    extension, which a source tree does not hold: xentc._cuda may import only the package's pure
    Python modules. Run with meson-python's editable-install finder taken off the import path, as
    in a clone beside a regular install."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent
    if not (root / "tools" / "nvrtc_check.py").is_file() or not (root / "xentc" / "_cuda.py").is_file():
        pytest.skip("not run from a source tree")
    code = ("import sys; sys.meta_path = [f for f in sys.meta_path if 'editable' not in type(f).__module__]; "
            "sys.path.insert(0, 'tools'); import nvrtc_check; m = nvrtc_check.source_cuda(); "
            "print(m.__file__, len(m.name_expressions(True, 'base')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, check=True, capture_output=True, text=True).stdout
    path, count = out.split()
    assert pathlib.Path(path).resolve() == (root / "xentc" / "_cuda.py").resolve() and int(count) > 0
