"""The examples in the documentation run and print what they say: the numpydoc ``Examples`` of
every public function (doctests of the installed package) and the ``>>>`` blocks of docs/*.md.
The Sphinx build itself (``sphinx-build -W``) runs in .ci/run, where the docs extra is installed."""

import doctest
import pathlib
import re

import numpy as np
import pytest

import xentc
from xentc import _api

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
NUMPY2 = int(np.__version__.split(".")[0]) >= 2


@pytest.mark.skipif(not NUMPY2, reason="the examples show NumPy 2 reprs")
@pytest.mark.parametrize("name", xentc.__all__)
def test_docstring_examples(name):
    obj = getattr(xentc, name)
    tests = doctest.DocTestFinder(recurse=False).find(obj, f"xentc.{name}", globs={"np": np, "xentc": xentc})
    examples = sum(len(t.examples) for t in tests)
    if name != "LossResult":
        assert examples >= 3, f"{name}: the docstring needs runnable examples"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0


def test_public_functions_have_numpydoc_sections():
    for name in ("binary_cross_entropy", "binary_focal_loss", "cross_entropy", "focal_loss"):
        doc = getattr(_api, name).__doc__
        for section in ("Parameters", "Returns", "Examples"):
            assert re.search(rf"^\s*{section}\n\s*-{{{len(section)}}}$", doc, re.M), (name, section)


def _markdown_examples(page):
    """The ``>>>`` lines of a page's python code blocks, as one doctest source."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return "\n".join(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if ">>>" in b)


PAGES = sorted(p.name for p in DOCS.glob("*.md") if _markdown_examples(p.name)) if DOCS.is_dir() else []


def test_pages_with_examples_are_found():
    if not DOCS.is_dir():
        pytest.skip("no docs/ folder beside the tests")
    assert {"getting-started.md", "gradient-boosting.md"} <= set(PAGES)


@pytest.mark.skipif(not NUMPY2, reason="the examples show NumPy 2 reprs")
@pytest.mark.parametrize("page", PAGES)
def test_markdown_examples(page):
    test = doctest.DocTestParser().get_doctest(_markdown_examples(page), {}, page, str(DOCS / page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0


def _figures():
    if not (DOCS / "figures.py").is_file():
        pytest.skip("no docs/figures.py beside the tests")
    import importlib.util

    spec = importlib.util.spec_from_file_location("xentc_docs_figures", DOCS / "figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_chart_input_missing_or_malformed_stops_the_build(tmp_path):
    figures = _figures()
    with pytest.raises(figures.FigureError, match=r"missing.*python -m xentc bench --json"):
        figures.load_bench(str(tmp_path / "cpu.json"))
    (tmp_path / "bad.json").write_text('{"rows": [{"dtype": "float32"}]}')
    with pytest.raises(figures.FigureError, match="not a benchmark file"):
        figures.load_bench(str(tmp_path / "bad.json"))


def test_figures_are_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    figures = _figures()
    bench = tmp_path / "cpu.json"
    bench.write_text('{"date": "d", "repeat": 1, "machine": {}, "rows": [{"case": "c", "dtype": "float32", '
                     '"xentc": 1.0, "xentc_out": 0.5, "xentc_out_1t": 2.0, "copy": 0.1, "NumPy": 3.0, "PyTorch": null}]}')
    paths = figures.draw_focal(str(tmp_path)) + [figures.draw_bench(str(tmp_path), str(bench))]
    for p in paths:
        assert pathlib.Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # gamma = 0 is cross entropy: the first curve is -log p and its derivative -1/p
    p = np.linspace(0.01, 1.0, 50)
    r = figures.focal_curves(p)[0.0]
    np.testing.assert_allclose(r.loss, -np.log(p), rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(r.grad, -1 / p, rtol=1e-15)
