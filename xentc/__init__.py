"""xentc: compiled cross-entropy losses and their exact derivatives.

Binary cross entropy, categorical cross entropy and focal loss, from probabilities or logits,
returning the loss and, on request, its gradient and Hessian diagonal in one fused pass, on
NumPy arrays (Cython + OpenMP) or CuPy arrays (CUDA).
"""
import os as _os
import sys as _sys

__version__ = "0.1.0"


def _hand_over_to_installed():
    """Called when this package has no compiled extension beside it.

    That happens when Python imports the source tree instead of the installed package: for
    example ``python -m xentc`` run in the repository root, where ``-m`` puts the current folder
    first on sys.path. If an installed xentc exists further down sys.path, load that one in
    place of this module; otherwise say plainly how to build.
    """
    import importlib.machinery
    import importlib.util

    here = _os.path.dirname(_os.path.abspath(__file__))
    root = _os.path.dirname(here)
    others = [p for p in _sys.path if _os.path.realpath(p or _os.getcwd()) != _os.path.realpath(root)]
    spec = importlib.machinery.PathFinder.find_spec(__name__, others)
    if spec is None or spec.origin is None or _os.path.dirname(_os.path.realpath(spec.origin)) == _os.path.realpath(here):
        raise ImportError(
            "xentc: the compiled extension is missing. This looks like the source tree "
            f"({root}); build and install it with `pip install .`, then run from any folder "
            "(the source folder is handed over to the installed package automatically).")
    module = importlib.util.module_from_spec(spec)
    _sys.modules[__name__] = module
    spec.loader.exec_module(module)
    return module


try:
    from . import _kernels as _kernels  # noqa: F401
except ImportError:
    _installed = _hand_over_to_installed()
    globals().update({k: v for k, v in vars(_installed).items() if not k.startswith("__")})
    __path__ = _installed.__path__  # noqa: F811 -- submodules (xentc.__main__) come from there too
else:
    from ._api import (
        LossResult,
        binary_cross_entropy,
        binary_focal_loss,
        cross_entropy,
        focal_loss,
    )
    from ._memory import buffer_cache

__all__ = [
    "LossResult",
    "binary_cross_entropy",
    "binary_focal_loss",
    "buffer_cache",
    "cross_entropy",
    "focal_loss",
]
