"""pytest plugin of the CUDA emulator (loaded by run.sh with -p xentc_cuda_emu_plugin).

Says in the report header that CuPy is the emulator, and skips the tests that cannot mean
anything under emulation (listed in SKIPS with the reason). The tests themselves are unchanged.
"""
import os

import pytest

# test node id (without parameters) -> why it cannot run under the emulator
SKIPS = {
}


def pytest_report_header(config):
    import cupy
    from cupy import _emu
    flags = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("XENTC_EMU_")]
    return [f"cupy: xentc CUDA emulator {cupy.__version__} ({cupy.__file__})",
            f"emulator cache: {_emu.cache_dir()}; settings: {' '.join(flags) or 'defaults'}"]


def pytest_collection_modifyitems(config, items):
    for item in items:
        base = item.nodeid.split("[", 1)[0]
        reason = SKIPS.get(base)
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"CUDA emulator: {reason}"))
