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
