"""cupy.cuda.driver of the emulator: errors and function attributes."""

CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT = 9


class CUDADriverError(RuntimeError):
    def __init__(self, msg="CUDA_ERROR_UNKNOWN: unknown error", status=999):
        super().__init__(msg)
        self.status = status


def funcSetAttribute(func, attrib, value):
    from .function import Function
    f = Function._by_ptr.get(int(func))
    if f is None:
        raise CUDADriverError("CUDA_ERROR_INVALID_HANDLE: invalid resource handle", 400)
    f._set_attribute(int(attrib), int(value))


def funcGetAttribute(attrib, func):
    from .function import Function
    f = Function._by_ptr.get(int(func))
    if f is None:
        raise CUDADriverError("CUDA_ERROR_INVALID_HANDLE: invalid resource handle", 400)
    return f._get_attribute(int(attrib))


def ctxSynchronize():
    pass
