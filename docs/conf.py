"""Sphinx configuration of the xentc documentation.

Build with ``sphinx-build -W -b html docs <outdir>`` after ``pip install ".[docs]"`` (xentc itself
must be installed: the API reference is read from its docstrings and the figures are computed by
it). The pages are Markdown (MyST, with ``$...$`` and ``$$...$$`` math); the figures are drawn by
``docs/figures.py`` at the start of every build.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import xentc  # noqa: E402

import figures  # noqa: E402  (docs/figures.py)

project = "xentc"
author = "the xentc developers"
copyright = "the xentc developers, BSD-3-Clause"
version = release = xentc.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["dollarmath", "amsmath"]
# "page.md#a-heading" links work on GitHub and in the built docs alike
myst_heading_anchors = 2

# numpydoc renders the Parameters/Returns sections; autodoc supplies the docstrings. LossResult's
# fields are described in its Attributes section, so autodoc does not list them a second time.
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
autodoc_typehints = "none"

html_theme = "furo"
html_title = f"xentc {release}"


def setup(app):
    figures.setup(app)
