"""cupy.cuda.function of the emulator: modules (shared libraries) and kernel functions."""
from __future__ import annotations

import itertools
import re
from typing import Dict

from .. import _emu
from .driver import CUDADriverError


def _neutral(msg: str) -> str:
    # xentc._cuda treats errors that mention clusters or invalid arguments as a launch the device
    # refused (and quietly switches kernels); a fault inside a kernel must not read like one
    out = re.sub(r"(?i)cluster", lambda m: m.group(0)[:3] + "_" + m.group(0)[3:], msg)
    out = out.replace("invalid argument", "invalid-argument")
    if out != msg:
        out += " (spelt clu_ster here so that xentc does not mistake the fault for a refused launch)"
    return out


class Function:
    _by_ptr: Dict[int, "Function"] = {}
    _ids = itertools.count(0x1000)

    def __init__(self, kernel: _emu.Kernel):
        self._k = kernel
        self.ptr = next(Function._ids)
        Function._by_ptr[self.ptr] = self

    @property
    def kernel(self):
        return self

    @property
    def name(self):
        return self._k.name

    @property
    def signature(self):
        return self._k.signature

    # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (8) / PREFERRED_SHARED_MEMORY_CARVEOUT (9)
    @property
    def max_dynamic_shared_size_bytes(self):
        return self._k.max_dynamic_shared_size_bytes or 48 * 1024

    @max_dynamic_shared_size_bytes.setter
    def max_dynamic_shared_size_bytes(self, v):
        self._set_attribute(8, v)

    @property
    def preferred_shared_memory_carveout(self):
        return self._k.preferred_shared_memory_carveout

    @preferred_shared_memory_carveout.setter
    def preferred_shared_memory_carveout(self, v):
        self._set_attribute(9, v)

    def _set_attribute(self, attr: int, value: int):
        value = int(value)
        if attr == 8:
            if not 0 <= value <= 232448:
                raise CUDADriverError("CUDA_ERROR_INVALID_VALUE: invalid argument", 1)
            self._k.max_dynamic_shared_size_bytes = value
        elif attr == 9:
            if not -1 <= value <= 100:
                raise CUDADriverError("CUDA_ERROR_INVALID_VALUE: invalid argument", 1)
            self._k.preferred_shared_memory_carveout = value
        else:
            raise CUDADriverError("CUDA_ERROR_INVALID_VALUE: invalid argument (attribute not emulated)", 1)

    def _get_attribute(self, attr: int) -> int:
        if attr == 8:
            return self.max_dynamic_shared_size_bytes
        if attr == 9:
            return self.preferred_shared_memory_carveout
        raise CUDADriverError("CUDA_ERROR_INVALID_VALUE: invalid argument (attribute not emulated)", 1)

    def __call__(self, grid, block, args, shared_mem=0, stream=None, enable_cooperative_groups=False):
        try:
            self._k(grid, block, args, shared_mem=shared_mem)
        except _emu.LaunchConfigError as exc:
            raise CUDADriverError(f"CUDA_ERROR_INVALID_VALUE: invalid argument [emulator: {exc}]", 1) from None
        except _emu.KernelFault as exc:
            raise CUDADriverError(f"CUDA_ERROR_LAUNCH_FAILED: unspecified launch failure [emulator: kernel fault: "
                                  f"{_neutral(str(exc))}]", 719) from None

    def __repr__(self):
        return f"<emulated kernel {self._k.name} ({','.join(self._k.signature)})>"


class Module:
    def __init__(self):
        self._lib = None

    def load(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self._lib = _emu.load_library(bytes(data))

    def load_file(self, path):
        with open(path, "rb") as f:
            self.load(f.read())

    def get_function(self, name) -> Function:
        name = name.decode() if isinstance(name, bytes) else str(name)
        if self._lib is None:
            raise CUDADriverError("CUDA_ERROR_INVALID_HANDLE: module not loaded", 400)
        if not re.fullmatch(r"emu_launch_\d+", name):
            raise CUDADriverError(f"CUDA_ERROR_NOT_FOUND: named symbol not found ({name})", 500)
        try:
            return Function(_emu.Kernel(self._lib, name, name))
        except AttributeError:
            raise CUDADriverError(f"CUDA_ERROR_NOT_FOUND: named symbol not found ({name})", 500) from None


class _NamedModule:
    """What cupy.RawModule returns: functions by name expression."""

    def __init__(self, mod: Module, mapping):
        self._mod, self._mapping = mod, dict(mapping)

    def get_function(self, name):
        f = self._mod.get_function(self._mapping[name])
        f._k.name = name
        return f
