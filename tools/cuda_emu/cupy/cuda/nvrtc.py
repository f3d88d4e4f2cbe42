"""cupy.cuda.nvrtc of the emulator."""
import hashlib

from .. import _emu


class NVRTCError(RuntimeError):
    pass


def getVersion():
    """NVRTC 12.4; with XENTC_EMU_SOURCE a third number, a hash of the substituted source, so that
    xentc's disk cache (whose key includes this) never keeps a library built from other source."""
    sub = _emu.substitute_source()
    if sub is None:
        return (12, 4)
    return (12, 4, int(hashlib.sha256(sub.encode()).hexdigest()[:12], 16))
