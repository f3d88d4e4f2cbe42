"""cupy.cuda of the emulator: one device (id 0) that claims compute capability 9.0."""
from __future__ import annotations

import threading

from . import compiler, driver, function, memory_hook, nvrtc, runtime  # noqa: F401
from .memory_hook import MemoryHook  # noqa: F401
from .. import MemoryPointer  # noqa: F401

_tls = threading.local()


def _stack():
    s = getattr(_tls, "stack", None)
    if s is None:
        s = _tls.stack = [0]
    return s


class Device:
    def __init__(self, device=None):
        self.id = _stack()[-1] if device is None else int(device)

    @property
    def compute_capability(self) -> str:
        return "90"

    def _check(self):
        if not 0 <= self.id < runtime.getDeviceCount():
            raise runtime.CUDARuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal (device {self.id}; the "
                                           "emulator has one device)")

    def __enter__(self):
        self._check()
        _stack().append(self.id)
        return self

    def __exit__(self, *exc):
        _stack().pop()
        return False

    def use(self):
        self._check()
        _stack()[-1] = self.id

    def synchronize(self):
        pass

    def __int__(self):
        return self.id

    def __index__(self):
        return self.id

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id} (xentc emulator)>"

    @property
    def attributes(self):
        return {"MaxSharedMemoryPerBlockOptin": 232448, "MultiProcessorCount": 132, "MaxThreadsPerBlock": 1024}


def get_device_id() -> int:
    return _stack()[-1]


class Stream:
    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def use(self):
        return self


Stream.null = Stream(null=True)


def get_current_stream(device_id=None):
    return Stream.null


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        import time
        self._t = None
        self._time = time.perf_counter

    def record(self, stream=None):
        self._t = self._time()

    def synchronize(self):
        pass

    @property
    def done(self):
        return True


def get_elapsed_time(start: Event, end: Event) -> float:
    return (end._t - start._t) * 1e3


def is_available() -> bool:
    return True
