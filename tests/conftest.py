"""Test-suite options and run order. (Kept in tests/, never at the repository root: a root
conftest.py would put the source folder on sys.path and shadow the installed package.)

Slow tests: marked ``slow`` need minutes and about 9 GB of memory (the > 2**31-element call);
plain ``pytest`` (what CI runs) skips them. ``pytest --runslow`` runs them as well, and
``pytest --runslow -m slow`` runs only them.

Run order: the integration tests last. They import JAX, PyTorch, LightGBM, XGBoost and
distributed, which start threads that stay for the rest of the session; xentc._symbolic forks
worker processes (tests/test_symbolic.py), and forking a process with such threads can deadlock.
Running the integration modules after every other test keeps each fork in a process without them.
"""

import pytest

INTEGRATION_MODULES = {"test_objectives.py", "test_torch.py", "test_jax.py", "test_dask.py"}


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (minutes, ~9 GB of memory)")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.path.name in INTEGRATION_MODULES)  # stable: keeps the order otherwise
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
