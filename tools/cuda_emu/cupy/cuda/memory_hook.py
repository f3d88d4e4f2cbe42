"""cupy.cuda.memory_hook of the emulator: MemoryHook, whose malloc_preprocess hears of every
new device array (as CuPy's memory pool reports each allocation it serves), so tests can bound
what a call allocates. CuPy's other callbacks (alloc_*, free_*, malloc_postprocess) are never
made here, so the class does not define them."""
from __future__ import annotations

import threading

_tls = threading.local()


def _active() -> list:
    h = getattr(_tls, "hooks", None)
    if h is None:
        h = _tls.hooks = []
    return h


def report(nbytes: int) -> None:
    """A device array of nbytes was allocated (called by the fake ndarray machinery)."""
    for h in list(_active()):
        h.malloc_preprocess(device_id=0, size=int(nbytes), mem_size=-(-int(nbytes) // 512) * 512)


class MemoryHook:
    name = "MemoryHook"

    def __enter__(self):
        if any(h.name == self.name for h in _active()):
            raise RuntimeError(f"hook {self.name} already exists")
        _active().append(self)
        return self

    def __exit__(self, *exc):
        _active().remove(self)
        return False

    def malloc_preprocess(self, **kwargs):
        pass
