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
