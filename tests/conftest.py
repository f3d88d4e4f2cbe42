"""Test-suite options. (Kept in tests/, never at the repository root: a root conftest.py would put
the source folder on sys.path and shadow the installed package.)

Tests marked ``slow`` need minutes and about 9 GB of memory (the > 2**31-element call); plain
``pytest`` (what CI runs) skips them. ``pytest --runslow`` runs them as well, and
``pytest --runslow -m slow`` runs only them.
"""

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (minutes, ~9 GB of memory)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
