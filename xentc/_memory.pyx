# cython: language_level=3
"""The memory behind xentc's result arrays: freed blocks kept for the next call.

A gradient of 10^7 float32 values is 40 MB of fresh pages, and the first write to fresh pages
costs the kernel a page fault each (or a huge-page compaction): on the development machine that
first touch cost more than the whole loss-and-gradient kernel, and it varied from run to run by
a factor of 4. Calls come in loops (training steps, boosting rounds) that drop one result and
ask for another of the same size, so the memory of a result that nobody references any more is
kept, up to a limit, and handed to the next call that needs as much: its pages are already
mapped and written.

A block goes back only when the last reference to its memory is gone: result arrays, and every
view of them, hold the block object itself (a buffer exporter, not an ndarray, so NumPy does not
collapse a view's base past it). The kernels write every element of their outputs, so a recycled
block never shows the values of a previous result.
"""
import os
import warnings
from collections import namedtuple

import numpy as np

from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND

# Requests below this size go to NumPy as usual: the C library already reuses such blocks
# quickly, and their first touch is cheap.
cdef Py_ssize_t MIN_BYTES = 1 << 20
# At most this many blocks are kept (the search is linear; a loop needs about two per output).
cdef Py_ssize_t MAX_BLOCKS = 8
# Result arrays start on a cache line, so the kernels' vector stores never split one.
cdef Py_ssize_t ALIGN = 64

BufferCacheInfo = namedtuple("BufferCacheInfo", ["limit", "held", "blocks"])
BufferCacheInfo.__doc__ = """State of the buffer cache: ``limit`` and ``held`` in bytes, ``blocks`` kept."""


def _default_limit():
    """One eighth of the physical memory, at most 4 GiB (1 GiB where the size is unknown)."""
    try:
        phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 1 << 30
    return int(min(phys // 8, 4 << 30)) if phys > 0 else 1 << 30


def _initial_limit():
    text = os.environ.get("XENTC_BUFFER_CACHE")
    if text is None or text.strip() == "":
        return _default_limit()
    try:
        value = int(text)
        if value < 0:
            raise ValueError
    except ValueError:
        warnings.warn(f"XENTC_BUFFER_CACHE={text!r} is not a number of bytes >= 0; using the default",
                      RuntimeWarning, stacklevel=2)
        return _default_limit()
    return value


cdef class _Pool:
    """Freed blocks, oldest first, and the byte limit on what they may hold together."""
    cdef public Py_ssize_t limit
    cdef public Py_ssize_t held
    cdef list blocks   # raw uint8 ndarrays

    def __cinit__(self, Py_ssize_t limit):
        self.limit = limit
        self.held = 0
        self.blocks = []

    cdef object take(self, Py_ssize_t nbytes):
        """The smallest kept block of at least nbytes + ALIGN bytes and at most twice that, or None."""
        cdef Py_ssize_t need = nbytes + ALIGN, best = -1, i, size
        for i in range(len(self.blocks)):
            size = self.blocks[i].nbytes
            if need <= size <= 2 * need and (best < 0 or size < self.blocks[best].nbytes):
                best = i
        if best < 0:
            return None
        raw = self.blocks.pop(best)
        self.held -= raw.nbytes
        return raw

    cdef void give(self, object raw):
        cdef Py_ssize_t size = raw.nbytes
        if size > self.limit:
            return
        self.blocks.append(raw)
        self.held += size
        self.trim()

    cdef void trim(self):
        while self.blocks and (self.held > self.limit or len(self.blocks) > MAX_BLOCKS):
            self.held -= self.blocks.pop(0).nbytes


cdef _Pool _POOL = _Pool(_initial_limit())


cdef class _Block:
    """The memory of one result array (and its views): a writable byte buffer over an aligned
    part of a raw NumPy block, which goes back to the pool when this object dies."""
    cdef object raw
    cdef _Pool pool
    cdef char* ptr
    cdef Py_ssize_t shape[1]

    def __cinit__(self, raw, Py_ssize_t offset, Py_ssize_t nbytes, _Pool pool):
        self.raw = raw
        self.pool = pool
        self.ptr = (<char*><size_t>raw.ctypes.data) + offset
        self.shape[0] = nbytes

    def __getbuffer__(self, Py_buffer* view, int flags):
        view.buf = self.ptr
        view.obj = self
        view.len = self.shape[0]
        view.readonly = 0
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"
        view.ndim = 1
        view.shape = NULL
        if flags & PyBUF_ND:
            view.shape = self.shape
        view.strides = NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer* view):
        pass

    def __dealloc__(self):
        if self.pool is not None and self.raw is not None:
            self.pool.give(self.raw)


def empty(shape, dtype):
    """A new C-contiguous array of `shape` and native `dtype`, its memory recycled from a result
    freed earlier when one of a fitting size is kept (like numpy.empty, the values are arbitrary)."""
    dtype = np.dtype(dtype)
    cdef Py_ssize_t n = 1, d
    for d in shape:
        n *= d
    cdef Py_ssize_t nbytes = n * dtype.itemsize
    if nbytes < MIN_BYTES or _POOL.limit == 0:
        return np.empty(shape, dtype=dtype)
    raw = _POOL.take(nbytes)
    if raw is None:
        raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    cdef Py_ssize_t offset = (-<Py_ssize_t>raw.ctypes.data) & (ALIGN - 1)
    return np.ndarray(shape, dtype=dtype, buffer=_Block(raw, offset, nbytes, _POOL))


def buffer_cache(max_bytes=None):
    """Inspect or limit the memory xentc keeps for the arrays of its next results.

    A result array of 1 MiB or more (gradient, Hessian, per-sample losses) gets memory from a
    result freed earlier when one of a fitting size was kept: its pages are already mapped, so
    the call does not pay for first touching fresh memory, which can cost more than the
    computation itself. Memory is kept only after every reference to it (the result arrays and
    all their views) is gone, and at most ``max_bytes`` of it in all; the oldest blocks go first.

    Parameters
    ----------
    max_bytes : int, optional
        New limit in bytes; 0 switches the cache off and releases what it holds. Omitted: the
        limit stays. The initial limit is the environment variable ``XENTC_BUFFER_CACHE`` (bytes)
        when set, otherwise one eighth of the physical memory, at most 4 GiB.

    Returns
    -------
    BufferCacheInfo
        Named tuple ``(limit, held, blocks)``: the limit and the bytes kept now (after applying a
        new limit), and how many blocks hold them.

    Examples
    --------
    >>> import xentc
    >>> previous = xentc.buffer_cache().limit
    >>> xentc.buffer_cache(0)
    BufferCacheInfo(limit=0, held=0, blocks=0)
    >>> _ = xentc.buffer_cache(previous)
    """
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
            raise TypeError(f"max_bytes: expected an int number of bytes, got {type(max_bytes).__name__}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes: must be >= 0, got {max_bytes}")
        _POOL.limit = min(int(max_bytes), 1 << 62)
        _POOL.trim()
    return BufferCacheInfo(_POOL.limit, _POOL.held, len(_POOL.blocks))
