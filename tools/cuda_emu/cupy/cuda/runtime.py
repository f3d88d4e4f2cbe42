"""cupy.cuda.runtime of the emulator."""


class CUDARuntimeError(RuntimeError):
    def __init__(self, msg="cudaErrorUnknown", status=999):
        super().__init__(msg)
        self.status = status


_ATTRS = {1: 1024, 2: 1024, 3: 1024, 4: 64, 5: 2**31 - 1, 6: 65535, 7: 65535, 8: 49152, 10: 32, 16: 132,
          75: 9, 76: 0, 81: 233472, 97: 232448}


def getDeviceCount() -> int:
    return 1


def getDevice() -> int:
    from . import get_device_id
    return get_device_id()


def setDevice(dev: int) -> None:
    if int(dev) != 0:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal", 101)


def deviceGetAttribute(attrib: int, device: int) -> int:
    if int(device) != 0:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal", 101)
    return _ATTRS.get(int(attrib), 0)


def getDeviceProperties(device: int) -> dict:
    if int(device) != 0:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal", 101)
    return {"name": b"xentc CUDA emulator (host CPU, claims sm_90)", "major": 9, "minor": 0,
            "totalGlobalMem": 1 << 34, "sharedMemPerBlock": 49152, "sharedMemPerBlockOptin": 232448,
            "multiProcessorCount": 132, "maxThreadsPerBlock": 1024, "warpSize": 32}


def runtimeGetVersion() -> int:
    return 12040


def driverGetVersion() -> int:
    return 12040


def deviceSynchronize() -> None:
    pass


def memGetInfo():
    return (1 << 33, 1 << 34)


# memory of the emulated device is host memory: raw addresses (int) as CuPy's wrappers take them
def memset(ptr: int, value: int, size: int) -> None:
    import ctypes
    ctypes.memset(int(ptr), int(value) & 0xFF, int(size))


def memsetAsync(ptr: int, value: int, size: int, stream=0) -> None:
    memset(ptr, value, size)


memcpyHostToHost, memcpyHostToDevice, memcpyDeviceToHost, memcpyDeviceToDevice, memcpyDefault = 0, 1, 2, 3, 4


def memcpy(dst: int, src: int, size: int, kind: int = 4) -> None:
    import ctypes
    ctypes.memmove(int(dst), int(src), int(size))


def memcpyAsync(dst: int, src: int, size: int, kind: int = 4, stream=0) -> None:
    memcpy(dst, src, size, kind)


def streamSynchronize(stream=0) -> None:
    pass
