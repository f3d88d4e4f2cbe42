"""cupy.cuda.compiler of the emulator: "NVRTC" is g++ with emu.h (see cupy/_emu.py)."""
from .. import _emu


class CompileException(Exception):
    def __init__(self, msg, source="", name="", options=(), backend="nvrtc"):
        super().__init__(msg)
        self._msg = msg
        self.source, self.name, self.options, self.backend = source, name, options, backend

    def get_message(self):
        return self._msg


def compile_using_nvrtc(source, options=(), arch=None, filename="kern.cu", name_expressions=None, log_stream=None,
                        cache_in_memory=False, jitify=False):
    """(library bytes, {name expression: launcher symbol}) -- the real one returns PTX or cubin."""
    if not name_expressions:
        raise CompileException("cupy emulator: compile_using_nvrtc needs name_expressions (the emulator "
                               "generates one launcher per kernel instance)")
    try:
        return _emu.compile_source(source, tuple(options), filename, tuple(name_expressions))
    except _emu.CompileError as exc:
        raise CompileException(str(exc), source, filename, options) from None
