"""Run order: the integration tests last.

They import JAX, PyTorch, LightGBM, XGBoost and distributed, which start threads that stay
for the rest of the session; xentc._symbolic forks worker processes (tests/test_symbolic.py),
and forking a process with such threads can deadlock. Running the integration modules after
every other test keeps each fork in a process without them.
"""

INTEGRATION_MODULES = {"test_objectives.py", "test_torch.py", "test_jax.py", "test_dask.py"}


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.path.name in INTEGRATION_MODULES)  # stable: keeps the order otherwise
