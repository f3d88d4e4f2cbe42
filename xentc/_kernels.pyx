# cython: language_level=3
"""Compiled array loops of xentc: block scheduling over OpenMP threads, GIL release, error and sum
gathering. The loops themselves are in _xent_rows.h and the per-element math in _xent_math.h.

Work is cut into blocks whose size depends only on the shape, each block keeps its own
compensated sum and first error, and blocks are combined in order: the same bits for any
thread count.
"""
from cpython.buffer cimport PyBUF_STRIDES, PyBuffer_Release, PyObject_GetBuffer
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc

import numpy as np

from ._dtypes import dtype_name

cdef extern from "_xent_rows.h" nogil:
    const int SMALL_C_FLOAT "xent::small_c<float>()"
    const int SMALL_C_DOUBLE "xent::small_c<double>()"

cdef extern from "_xent_rows.h" namespace "xent" nogil:
    ctypedef struct BlockResult:
        double sum
        double comp
        int err
        int64_t err_i
        int64_t err_j
    ctypedef void (*block_fn)(const void*, int64_t, int64_t, BlockResult*) noexcept nogil

    ctypedef struct WeightArgs:
        const int64_t* labels
        const void* sw
        int swkind
        int64_t sw_rep
        int64_t sw_len
        const void* cw
        int64_t C
        int64_t ignore_index
        int has_ignore

    ctypedef struct BinaryArgs:
        const void* y
        int64_t sy
        int ykind
        const void* x
        int64_t sx
        const void* sw
        int swkind
        int64_t sw_rep
        int64_t sw_len
        int64_t sw_off
        const void* w1
        int64_t nw1
        double w0
        double eps
        double gamma
        double dscale
        int from_logits
        void* loss
        void* grad
        void* hess

    ctypedef struct SoftmaxArgs:
        const void* x
        int64_t sx_o
        int64_t sx_c
        int64_t sx_i
        int64_t C
        int64_t inner
        int64_t rows
        const int64_t* labels
        const void* ysoft
        int64_t sy_o
        int64_t sy_c
        int64_t sy_i
        const void* sw
        const void* cwa
        int64_t ignore_index
        int has_ignore
        double eps
        double gamma
        double dscale
        int from_logits
        void* loss
        void* grad
        void* hess
        int64_t res_rows
        int64_t tile_rows
        void* scratch
        int prob_pieces

    int64_t softmax_tile_rows(const SoftmaxArgs* a, int64_t elem_size)
    int64_t softmax_scratch_elems(const SoftmaxArgs* a)

    ctypedef struct Convert16Args:
        const void* src
        void* dst
        int bfloat

    ctypedef struct NarrowArgs:
        const double* src
        float* dst
        double top

    int max_threads()
    int have_openmp()

cdef extern from "_xent_dispatch.h" namespace "xent" nogil:
    const block_fn* kernel_table()
    const char* kernel_isa()
    int K_WEIGHT, K_BINARY, K_SOFTMAX, K_STORE16, K_LOAD16, K_NARROW

# The kernel variant is chosen once, when the module is imported (XENTC_ISA is read then).
cdef const block_fn* _TABLE = kernel_table()

# Below this many elements of work a call runs on the calling thread: starting a parallel region
# costs more than it saves.
cdef int64_t _SERIAL_WORK = 32768
# Elements per block: big enough to amortise scheduling, small enough to balance two..many threads.
cdef int64_t _BLOCK_WORK = 16384
# (C constants: as module globals each use in _block_rows and _threads was a dictionary lookup
# and a Python division; these copies are for Python readers)
SERIAL_WORK = _SERIAL_WORK
BLOCK_WORK = _BLOCK_WORK


def openmp_info():
    """(OpenMP version macro or 0, default thread count)."""
    return have_openmp(), max_threads()


def kernel_variant():
    """The instruction-set variant of the CPU kernels chosen at import ("avx512", "avx2" or "baseline")."""
    return kernel_isa().decode()


cdef size_t _addr(a) except? 0:
    """The address of a NumPy array's first element (0 for None), through the buffer protocol:
    __array_interface__ builds a dictionary each time, 2 us an array of a call's 10 us for 16
    elements (Zen 3). No format is asked for, so any dtype (bfloat16 too) and byte order will do."""
    cdef Py_buffer view
    if a is None:
        return 0
    PyObject_GetBuffer(a, &view, PyBUF_STRIDES)
    cdef size_t p = <size_t>view.buf
    PyBuffer_Release(&view)
    return p


cdef struct Strided:
    size_t addr        # the first element
    int64_t n[3]       # shape
    int64_t s[3]       # strides in elements
    int64_t itemsize


cdef int _strided(a, int ndim, Strided* v) except -1:
    """Address, shape and element strides of an array of ndim (at most 3) dimensions from one
    buffer request: each read of .shape or .strides builds a tuple, and a small softmax call's
    wrapper read them a dozen times (Zen 3: 1-2 us of its 3)."""
    cdef Py_buffer view
    cdef int k
    PyObject_GetBuffer(a, &view, PyBUF_STRIDES)
    try:
        if view.ndim != ndim or ndim > 3:
            raise ValueError(f"expected an array of {ndim} dimensions, got {view.ndim}")
        v.addr = <size_t>view.buf
        v.itemsize = view.itemsize
        for k in range(ndim):
            v.n[k] = view.shape[k]
            v.s[k] = view.strides[k] // view.itemsize
    finally:
        PyBuffer_Release(&view)
    return 0


cdef inline int64_t _block_rows(int64_t per_item):
    """Items per block (and per BlockResult: the unit of the sum's order)."""
    return _BLOCK_WORK // per_item if 1 <= per_item < _BLOCK_WORK else 1


cdef int _threads(int64_t n, int64_t per_item, object n_threads):
    """Threads for n items of per_item work each, before the cap at the number of block calls."""
    if n * per_item < _SERIAL_WORK:
        return 1
    return max_threads() if n_threads is None else <int>n_threads


cdef tuple _run(block_fn fn, const void* args, int64_t n, int64_t per_item, object n_threads, int64_t group=1,
               void** scratch=NULL, size_t scratch_bytes=0):
    """Run fn over [0, n) in blocks of fixed size; return (sum, err, err_i, err_j). With group > 1
    each call of fn covers `group` blocks and fills their `group` results (the sum and the first
    error come out the same as with one call a block). With scratch, *scratch is set to
    scratch_bytes for each thread that runs, freed on return (NULL where there is no memory for it:
    the kernel then does without)."""
    cdef int64_t block = _block_rows(per_item)
    cdef int64_t nblocks = (n + block - 1) // block
    cdef int64_t span = block * group
    cdef int64_t ncalls = (n + span - 1) // span
    cdef int nt = _threads(n, per_item, n_threads)
    if nt > ncalls:
        nt = <int>ncalls
    if nblocks == 0:
        return 0.0, 0, 0, 0
    cdef BlockResult* res = <BlockResult*>calloc(nblocks, sizeof(BlockResult))
    if res == NULL:
        raise MemoryError()
    if scratch != NULL:
        scratch[0] = malloc(scratch_bytes * <size_t>max(nt, 1)) if scratch_bytes else NULL
    cdef int64_t b, lo, hi
    cdef double total = 0.0, comp = 0.0, v, t
    cdef int err = 0
    cdef int64_t ei = 0, ej = 0
    try:
        if nt <= 1:
            with nogil:
                for b in range(ncalls):
                    lo = b * span
                    hi = lo + span if lo + span < n else n
                    fn(args, lo, hi, &res[b * group])
        else:
            with nogil:
                for b in prange(ncalls, schedule="static", num_threads=nt):
                    fn(args, b * span, b * span + span if b * span + span < n else n, &res[b * group])
        for b in range(nblocks):
            if res[b].err != 0 and err == 0:
                err = res[b].err
                ei = res[b].err_i
                ej = res[b].err_j
            for v in (res[b].sum, res[b].comp):
                t = total + v
                if t - t == 0.0:  # finite: keep the rounding error; inf/NaN totals need none
                    if abs(total) >= abs(v):
                        comp += (total - t) + v
                    else:
                        comp += (v - t) + total
                total = t
        return (total + comp if total - total == 0.0 else total), err, ei, ej
    finally:
        free(res)
        if scratch != NULL:
            free(scratch[0])
            scratch[0] = NULL


# Sample weights that repeat (element i takes sw[(i // sw_rep) % sw_len]) are read as they are by
# the binary kernels and weight_sum: the API passes such compact weights (SAMPLE_WEIGHT_PATTERNS)
# rather than broadcasting them to every element.
SAMPLE_WEIGHT_PATTERNS = True

# Binary sample weights the kernels read in their own dtype beside y_pred of any float type
# (WeightKind of _xent_rows.h: its value by dtype name); the API passes them unconverted and
# unchecked (contiguous, native byte order): the weight pass checks each in its own dtype (16-bit
# ones convert exactly). Categorical weights come in the compute dtype.
_WEIGHT_KINDS = {"float32": 1, "float64": 2, "float16": 3, "bfloat16": 4}
BINARY_SAMPLE_WEIGHT_DTYPES = frozenset(_WEIGHT_KINDS)


cdef int _weight_kind(sw, bint double_) except -1:
    """WeightKind of sample weights sw beside a compute dtype of float64 (double_) or float32."""
    if sw is None or sw.dtype == (np.float64 if double_ else np.float32):
        return 0
    kind = _WEIGHT_KINDS.get(dtype_name(sw.dtype)) if sw.dtype.isnative else None
    if kind is None or not sw.flags.c_contiguous:
        raise ValueError(f"sample weights of dtype {sw.dtype} must be contiguous and of a float dtype of "
                         f"{sorted(_WEIGHT_KINDS)}")
    return kind


def weight_sum(labels, sw, cw, int64_t C, int64_t ignore_index, bint has_ignore, int64_t n,
               bint double_, n_threads, int64_t sw_rep=1, int64_t sw_len=-1):
    """Sum of sample_weight * class_weight[label] over non-ignored samples, checking both.
    Element i of n takes sw[(i // sw_rep) % sw_len] (by default sw[i])."""
    cdef WeightArgs a
    a.labels = <const int64_t*>_addr(labels)
    a.sw = <const void*>_addr(sw)
    a.swkind = _weight_kind(sw, double_)
    a.sw_rep, a.sw_len = _weight_pattern(sw, sw_rep, sw_len, n)
    a.cw = <const void*>_addr(cw)
    a.C = C
    a.ignore_index = ignore_index
    a.has_ignore = has_ignore
    return _run(_TABLE[K_WEIGHT + double_], &a, n, 1, n_threads)


# Binary labels the kernels read in their own dtype (LabelKind of _xent_rows.h), beside y_pred
# of the other float type too, with any stride (STRIDED_BINARY_LABELS): the API passes them uncast.
BINARY_LABEL_DTYPES = {np.dtype(t): k for k, t in enumerate(
    (np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
     np.float32, np.float64), start=1)}
STRIDED_BINARY_LABELS = True


cdef tuple _weight_pattern(sw, int64_t rep, int64_t length, int64_t n, int64_t off=0):
    if length < 0:
        rep, length = 1, n + off
    if sw is not None and (rep < 1 or (length < 1 and n > 0) or sw.shape[0] != length or off < 0):
        raise ValueError(f"sample weights: {sw.shape[0]} of them, repeating {rep} x {length} from element "
                         f"{off}, for {n} elements")
    return rep, length


def binary(y, x, sw, w1, double w0, double eps, double gamma, double dscale, bint from_logits,
           loss, grad, hess, bint double_, n_threads, int64_t sw_rep=1, int64_t sw_len=-1,
           int64_t sw_off=0):
    """Binary CE / focal over 1-D y (labels) and x (probabilities or logits). y is of x's dtype,
    or of one of BINARY_LABEL_DTYPES (native byte order); either may have any stride.
    Element i takes the sample weight sw[((i + sw_off) // sw_rep) % sw_len] (by default sw[i]):
    sw_off places x, a part of a larger array, in the weights' pattern."""
    cdef BinaryArgs a
    cdef Strided yv, xv
    _strided(y, 1, &yv)
    _strided(x, 1, &xv)
    if yv.n[0] != xv.n[0]:
        raise ValueError(f"binary: {yv.n[0]} labels for {xv.n[0]} predictions")
    a.y = <const void*>yv.addr
    # one element is read alone whatever its stride (a contiguous size-1 array may have any)
    a.sy = yv.s[0] if yv.n[0] > 1 else 1
    a.x = <const void*>xv.addr
    a.sx = xv.s[0] if xv.n[0] > 1 else 1
    a.ykind = 0 if y.dtype == x.dtype else BINARY_LABEL_DTYPES[y.dtype]
    if a.ykind and not y.dtype.isnative:
        raise ValueError("binary: labels of another dtype than y_pred must be in native byte order")
    a.sw = <const void*>_addr(sw)
    a.swkind = _weight_kind(sw, double_)
    a.sw_rep, a.sw_len = _weight_pattern(sw, sw_rep, sw_len, xv.n[0], sw_off)
    a.sw_off = sw_off
    a.w1 = <const void*>_addr(w1)
    a.nw1 = 1 if w1 is None else w1.shape[0]
    a.w0 = w0
    a.eps = eps
    a.gamma = gamma
    a.dscale = dscale
    a.from_logits = from_logits
    a.loss = <void*>_addr(loss)
    a.grad = <void*>_addr(grad)
    a.hess = <void*>_addr(hess)
    cost = 4 if gamma == 0 else 12
    return _run(_TABLE[K_BINARY + double_], &a, xv.n[0], cost, n_threads)


# The softmax kernels check integer labels themselves (softmax_labels_ok): the API leaves out the
# weight pass where that pass would only check them (_labels_checked_in_kernel).
LABELS_CHECKED_IN_KERNEL = True


# Softmax rows from logits with at most this many classes (by dtype name) are computed 16 rows at a
# time (softmax_small_group); the tests read it to cover both sides.
SMALL_CLASSES = {"float32": SMALL_C_FLOAT, "float64": SMALL_C_DOUBLE}

# Rows whose classes lie apart are computed in tiles (softmax_tiled_rows); False reads them in
# place, the path taken where the tile's scratch cannot be allocated (the tests compare the two).
ROW_TILES = True

# Rows of few classes from probabilities are computed pieces of rows at a time
# (softmax_prob_piece); False takes them one at a time, the path of a piece with a bad entry (the
# tests compare the two bit for bit).
PROB_PIECES = True


def softmax(x, labels, ysoft, sw, cwa, int64_t ignore_index, bint has_ignore,
            double eps, double gamma, double dscale, bint from_logits, loss, grad, hess,
            bint double_, n_threads):
    """Categorical CE / focal over x viewed as (outer, C, inner)."""
    cdef SoftmaxArgs a
    cdef Strided xv, yv
    _strided(x, 3, &xv)
    a.x = <const void*>xv.addr
    a.sx_o, a.sx_c, a.sx_i = xv.s[0], xv.s[1], xv.s[2]
    a.C = xv.n[1]
    a.inner = xv.n[2]
    a.labels = <const int64_t*>_addr(labels)
    a.ysoft = NULL
    a.sy_o = a.sy_c = a.sy_i = 0
    if ysoft is not None:
        _strided(ysoft, 3, &yv)
        if yv.n[0] != xv.n[0] or yv.n[1] != xv.n[1] or yv.n[2] != xv.n[2]:
            raise ValueError("softmax: soft labels of another shape than y_pred")
        a.ysoft = <const void*>yv.addr
        a.sy_o, a.sy_c, a.sy_i = yv.s[0], yv.s[1], yv.s[2]
    a.sw = <const void*>_addr(sw)
    a.cwa = <const void*>_addr(cwa)
    a.ignore_index = ignore_index
    a.has_ignore = has_ignore
    a.eps = eps
    a.gamma = gamma
    a.dscale = dscale
    a.from_logits = from_logits
    a.loss = <void*>_addr(loss)
    a.grad = <void*>_addr(grad)
    a.hess = <void*>_addr(hess)
    cdef int64_t rows = xv.n[0] * xv.n[2]
    a.rows = rows
    cdef int64_t per_row = max(1, xv.n[1]) * 3
    # rows whose classes lie apart go through tiles of neighbouring rows (softmax_tiled_rows); a
    # call then covers whole blocks enough for a tile, and a tile is cut to leave no thread idle
    a.res_rows = _block_rows(per_row)
    a.tile_rows = softmax_tile_rows(&a, xv.itemsize) if ROW_TILES else 0
    a.prob_pieces = PROB_PIECES
    cdef int64_t group = 1
    a.scratch = NULL
    if a.tile_rows > 1:
        a.tile_rows = max(1, min(a.tile_rows, rows // _threads(rows, per_row, n_threads)))
        group = (a.tile_rows + a.res_rows - 1) // a.res_rows
    return _run(_TABLE[K_SOFTMAX + double_], &a, rows, per_row, n_threads, group, &a.scratch,
                softmax_scratch_elems(&a) * xv.itemsize if a.tile_rows else 0)


cdef _convert16(int kind, src, dst, bint bfloat, n_threads):
    if src.size != dst.size or not (src.flags.c_contiguous and dst.flags.c_contiguous and dst.flags.writeable):
        raise ValueError("store16/load16: contiguous arrays of one size (and a writeable destination) only")
    cdef Convert16Args a
    a.src = <const void*>_addr(src)
    a.dst = <void*>_addr(dst)
    a.bfloat = bfloat
    _run(_TABLE[kind], &a, src.size, 1, n_threads)


def store16(src, dst, bint bfloat, n_threads):
    """dst[...] = src rounded to nearest (ties to even): src float32, dst float16 (bfloat=False) or
    bfloat16, both contiguous and of one size, on the kernels' threads."""
    if src.dtype != np.float32 or dst.itemsize != 2:
        raise ValueError("store16: a float32 source and a 16-bit destination")
    _convert16(K_STORE16, src, dst, bfloat, n_threads)


def load16(src, dst, bint bfloat, n_threads):
    """dst[...] = src exactly: src float16 (bfloat=False) or bfloat16, dst float32, both
    contiguous and of one size, on the kernels' threads."""
    if src.itemsize != 2 or dst.dtype != np.float32:
        raise ValueError("load16: a 16-bit source and a float32 destination")
    _convert16(K_LOAD16, src, dst, bfloat, n_threads)


def narrow(src, dst, double top, n_threads):
    """dst[...] = src: src float64, dst float32, both contiguous and of one size, on the kernels'
    threads, checking src as given; returns the flat index of the first value outside [0, top]
    (NaN included), or -1."""
    if src.dtype != np.float64 or dst.dtype != np.float32 or src.size != dst.size or not (
            src.flags.c_contiguous and dst.flags.c_contiguous and dst.flags.writeable):
        raise ValueError("narrow: a contiguous float64 source and a float32 destination of one size")
    cdef NarrowArgs a
    a.src = <const double*>_addr(src)
    a.dst = <float*>_addr(dst)
    a.top = top
    _, err, i, _ = _run(_TABLE[K_NARROW], &a, src.size, 1, n_threads)
    return i if err else -1
