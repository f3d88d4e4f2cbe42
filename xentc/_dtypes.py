"""dtype.name, remembered per dtype, for the dtype rules every call applies (xentc._api, the CPU
kernels' wrapper xentc._kernels, the CUDA backend xentc._cuda). Pure Python, so that the tools that
import xentc._cuda from a source tree without the compiled extension (tools/nvrtc_check.py,
tools/kernel_cache.py) find it."""
from __future__ import annotations

import numpy as np

# NumPy 2 forms a dtype's name in Python on every access (3.1 us on a 2-core Xeon, NumPy 2.4), and
# a call asks for it up to three times (sample weights of another dtype than y_pred's, 16-bit
# arrays, soft labels). At most _KEPT dtypes are remembered (structured dtypes are each their own).
_NAMES: dict = {}
_KEPT = 256


def dtype_name(dt: np.dtype) -> str:
    """dt.name, looked up by dtype where it was formed before."""
    name = _NAMES.get(dt)
    if name is None:
        name = dt.name
        if len(_NAMES) < _KEPT:
            _NAMES[dt] = name
    return name
