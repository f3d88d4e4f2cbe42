/* CUDA kernels of xentc, compiled at run time by NVRTC (see _cuda.py) for float and double.
 *
 * The per-element formulas come from _xent_math.h; this file only holds the array loops, the
 * reductions and the data checks. The loops mirror the CPU block loops of _xent_rows.h one for
 * one (same operations in the same precision, double row sums), so the two paths agree to a few
 * ulp; the CPU file is the reference for what each loop computes.
 *
 * Determinism: every kernel writes one partial sum (double) and one first-error key per block
 * (per row for the on-chip kernels); blocks cover fixed index ranges that depend only on the
 * shape, and xent_finalize adds the partials in index order. The one atomic, the row counter of
 * the pipelined kernels, only decides which block works on a row, not what the row gives. So two
 * calls give the same bits.
 *
 * Error keys: (flat index << 4) | error code, so the smallest key is the first bad element (the
 * CPU reports the first one in index order, and each element has exactly one code). For the
 * categorical kernels the flat index is row * C + class; an integer label outside [0, C) is
 * reported at row * C (every categorical kernel checks its labels: the weight pre-pass, which
 * checks them too, is skipped where nothing else needs it).
 *
 * The mean's factor: each kernel but xent_weight takes dscale, and `pre`, null or the two
 * result words of a weight pre-pass enqueued before it (its sum is then the denominator:
 * mean_scale_at), so that a call with sample weights, class weights or ignore_index waits for the
 * device once. The categorical kernels check their labels whether or not the pre-pass found one
 * bad, so they never index class weights with one (the host reports the pre-pass's error first,
 * as when it waited for it).
 *
 * Kernels:
 *   xent_weight<T>         the mean's denominator (sample_weight * class_weight[label]) and the
 *                          label range / sample-weight checks, 2048 samples per block.
 *   xent_binary<T,L,CE>    binary CE / focal, elementwise, 2048 elements per block, any strides
 *                          (L: from logits; CE: gamma = 0).
 *   Each kernel but xent_weight and xent_finalize also takes a template argument S, the
 *   storage type of y_pred, soft labels, gradient and Hessian (xhalf / xbf16: float16 / bfloat16
 *   arrays as they are, computed in float); the binary ones take SY after it, that of the labels
 *   (bool, any integer type, any float type), and the generic categorical ones (thread, tile,
 *   warp, block) SL, that of the soft labels (any float type): labels of any dtype are read as
 *   they are, checked in their own type and then converted (label_widen). S and SY default to T,
 *   SL to S.
 *   xent_binary_vec<T,SW>  fast path of binary CE from logits (gamma = 0, pos_weight absent or
 *                          one value) on contiguous, 16-byte aligned arrays: 16-byte loads and
 *                          stores, rounds * 4096 floats / 2048 doubles per block (SW: with
 *                          sample_weight).
 *   xent_softmax_thread<T> categorical rows, one thread per row, any strides (classes not the
 *                          last axis: neighbouring threads read neighbouring memory).
 *   xent_softmax_tile<T>   one thread per row for small C on contiguous rows: the block's rows
 *                          are staged through shared memory so that global loads and stores are
 *                          coalesced.
 *   xent_softmax_warp<T>   one warp per row (moderate C), any strides.
 *   xent_softmax_block<T>  one block per row (large C), any strides: the generic fallback.
 *   xent_softmax_small<T,CMAX> cross entropy from logits with integer labels on contiguous rows
 *                          of at most CMAX (<= 32) classes: a thread per row, a warp per 32 rows
 *                          staged through the warp's shared memory, each exponential once.
 *   xent_onchip<T,VEC>     fast path for cross entropy from logits with integer labels on
 *                          contiguous rows: one block per row, the row read from global memory
 *                          once into shared memory, max / sum / gradient from there.
 *   xent_onchip_cl<T,K,VEC> the same for rows that do not fit one block: a thread-block cluster
 *                          of K blocks (sm_90) shares the row max and sums through distributed
 *                          shared memory, each block keeping its slice of the row on chip.
 *                          Both take a last template argument WIDE (16-bit storage, VEC 8): the
 *                          slice's exponentials kept in float over its logits (wide_at), so the
 *                          gradient pass does not compute them again; twice the shared memory.
 *   xent_onchip_pipe<T,VEC>, xent_onchip_pipe_cl<T,K,VEC> the same, pipelined: persistent
 *                          blocks of 1024 threads (one per SM) take rows from a counter and hold
 *                          two slices, the next row's arriving (cp.async) while this one is
 *                          worked on. Used where two slices fit a block's shared memory.
 *   xent_finalize          adds the per-block partials in order and finds the first error.
 *
 * Everything compiles under NVRTC: no standard headers, own integer typedefs. Two small
 * helpers of _xent_rows.h are repeated here because that file is CPU-only (it includes libc and
 * OpenMP headers): unit_label_error and class_coef; keep them in step.
 * XENT_SHARED / XENT_DYN_SHARED / XENT_EMU only let a host emulator (development, not shipped)
 * give each emulated block its own shared memory and model cp.async.
 */
#include "_xent_math.h"

#ifndef XENT_EMU
#define XENT_SHARED(type, name) __shared__ type name
#define XENT_DYN_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

/* Cluster kernels: only for sm_90+ and only when the loader asks for them. */
#if defined(XENT_WANT_CLUSTER) && XENT_WANT_CLUSTER && \
    (defined(XENT_EMU) || !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900)
#define XENT_CLUSTER 1
#else
#define XENT_CLUSTER 0
#endif

typedef long long xi64;
typedef unsigned long long xu64;

#define XENT_NO_ERR 0xffffffffffffffffULL
#define XENT_NONE_IDX 0x7fffffffffffffffLL
#define XENT_FULL_MASK 0xffffffffu

namespace xentk {
using namespace xent;

/* Error codes of _xent_rows.h (xentc/_api.py turns them into messages). */
enum { ERR_NONE = 0, ERR_LABEL_RANGE = 1, ERR_LABEL_NAN = 2, ERR_LABEL_UNIT = 3, ERR_PROB = 4,
       ERR_WEIGHT = 5 };

__device__ __forceinline__ xu64 err_key(xi64 idx, int code) {
    return ((xu64)idx << 4) | (xu64)(unsigned)code;
}
__device__ __forceinline__ xu64 umin64(xu64 a, xu64 b) { return a < b ? a : b; }

template <typename T> struct Lim;
template <> struct Lim<float> {
    __device__ static __forceinline__ float inf() { return __int_as_float(0x7f800000); }
    __device__ static __forceinline__ float nan() { return __int_as_float(0x7fc00000); }
};
template <> struct Lim<double> {
    __device__ static __forceinline__ double inf() { return __longlong_as_double(0x7ff0000000000000LL); }
    __device__ static __forceinline__ double nan() { return __longlong_as_double(0x7ff8000000000000LL); }
};

/* Storage types. Every kernel reads y_pred (and soft labels) and writes the gradient and Hessian
 * through a storage type S beside its compute type T: S = T, or S = xhalf / xbf16 with T = float,
 * so that float16 and bfloat16 arrays are read and written as they are (no float32 copy of
 * y_pred, no float32 gradient to convert afterwards) and computed in float. An element is
 * converted once when loaded and rounded once (to nearest, ties to even) when stored: the bits are
 * those of converting the float32 result, as the CPU path does. float16: PTX cvt (no header). */
struct xhalf {
    unsigned short u;
#ifdef XENT_EMU
    __device__ __forceinline__ operator float() const {
        _Float16 h;
        __builtin_memcpy(&h, &u, 2);
        return float(h);
    }
    __device__ __forceinline__ xhalf& operator=(float f) {
        const _Float16 h = (_Float16)f;
        __builtin_memcpy(&u, &h, 2);
        return *this;
    }
#else
    __device__ __forceinline__ operator float() const {
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(u));
        return f;
    }
    __device__ __forceinline__ xhalf& operator=(float f) {
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(u) : "f"(f));
        return *this;
    }
#endif
};
/* bfloat16 storage (ml_dtypes.bfloat16 arrays, PyTorch's bfloat16): the upper half of a float.
 * Loading is exact (a shift); storing rounds to nearest even, the CPU's rounding too: from sm_80 on
 * the device's own conversion (one instruction; a NaN becomes a quiet NaN of its own, as with
 * float16's cvt), before that, and in the host emulator, bfloat16_bits of _xent_math.h (plain
 * integer operations, about 8 an element: a quarter of the gradient pass of a narrow 16-bit on-chip
 * slice). */
struct xbf16 {
    unsigned short u;
    __device__ __forceinline__ operator float() const { return __uint_as_float(unsigned(u) << 16); }
    __device__ __forceinline__ xbf16& operator=(float f) {
#if !defined(XENT_EMU) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
        asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(u) : "f"(f));
#else
        u = bfloat16_bits(__float_as_uint(f));   /* _xent_math.h */
#endif
        return *this;
    }
};
template <typename A, typename B> struct SameType { static constexpr bool value = false; };
template <typename A> struct SameType<A, A> { static constexpr bool value = true; };

/* Check of a label that must lie in [0, 1] (as unit_label_error in _xent_rows.h). */
template <typename T> __device__ __forceinline__ int unit_label_error(T y) {
    if (y != y) return ERR_LABEL_NAN;
    if (y < T(0) || y > T(1)) return ERR_LABEL_UNIT;
    return ERR_NONE;
}

/* Binary labels of another dtype than y_pred (SY of the binary kernels: bool, the integer types,
 * the other float type) are read as they are, so that no converted copy of y_true is made on the
 * device. label_widen gives a label's value in a type that holds it exactly (its own; float for
 * 16-bit floats; 0 or 1 for bool, any nonzero byte being true, as NumPy reads it), which is
 * checked there (1 + 1e-10 in float64 is a bad label though it rounds to 1.0f) and then converted
 * to the compute type: the bits of converting the labels first, as the CPU's stage_labels. */
struct xbool { unsigned char u; };
typedef signed char xi8;
typedef unsigned char xu8;
typedef short xi16;
typedef unsigned short xu16;
typedef int xi32;
typedef unsigned int xu32;
template <typename Y> __device__ __forceinline__ Y label_widen(Y v) { return v; }
__device__ __forceinline__ float label_widen(xhalf v) { return float(v); }
__device__ __forceinline__ float label_widen(xbf16 v) { return float(v); }
__device__ __forceinline__ int label_widen(xbool v) { return v.u != 0; }
/* unsigned labels as signed values (no comparisons of unsigned values with 0); any uint64 above 1
 * is as bad as 2 */
__device__ __forceinline__ int label_widen(xu8 v) { return v; }
__device__ __forceinline__ int label_widen(xu16 v) { return v; }
__device__ __forceinline__ xi64 label_widen(xu32 v) { return v; }
__device__ __forceinline__ xi64 label_widen(xu64 v) { return v > 1ULL ? xi64(2) : xi64(v); }

/* Sample weights of any float dtype (sw_kind, _cuda's _WEIGHT_KINDS) are read as they are beside
 * y_pred of any other, so that no converted copy of them is made on the device (float64 weights,
 * CuPy's default, beside float32 logits). Every kernel takes `const void* sw, int sw_kind`; the
 * kind is the same for the whole launch, so the branch below costs no divergence. A weight is
 * converted to the compute type T as it is read: the bits of converting the weights first. The
 * weight pass (xent_weight) checks each weight in its own type before that rounding (-1e-300 in
 * float64 is a bad weight though it rounds to -0.0f) and reports a weight that overflows T. */
enum { SW_F32 = 0, SW_F64 = 1, SW_F16 = 2, SW_BF16 = 3 };
template <typename T> struct OwnWeightKind;
template <> struct OwnWeightKind<float> { static constexpr int value = SW_F32; };
template <> struct OwnWeightKind<double> { static constexpr int value = SW_F64; };

/* Weight j of another kind than T's, converted to T. */
template <typename T> __device__ __forceinline__ T weight_other(const void* sw, int kind, xi64 j) {
    switch (kind) {
    case SW_F32: return T(static_cast<const float*>(sw)[j]);
    case SW_F64: return T(static_cast<const double*>(sw)[j]);
    case SW_F16: return T(float(static_cast<const xhalf*>(sw)[j]));
    default: return T(float(static_cast<const xbf16*>(sw)[j]));
    }
}
/* Weight j in T, for a kernel that reads it once a row (or a few times an element). */
template <typename T> __device__ __forceinline__ T weight_at(const void* sw, int kind, xi64 j) {
    return kind == OwnWeightKind<T>::value ? static_cast<const T*>(sw)[j] : weight_other<T>(sw, kind, j);
}
/* Weight j's exact value and its value in T (for the check of xent_weight). */
template <typename T> __device__ __forceinline__ T weight_checked(const void* sw, int kind, xi64 j, bool& bad) {
    if (kind == OwnWeightKind<T>::value) {
        const T w = static_cast<const T*>(sw)[j];
        bad = !(w >= T(0)) || w == Lim<T>::inf();
        return w;
    }
    const double wide = kind == SW_F64 ? static_cast<const double*>(sw)[j] : double(weight_other<float>(sw, kind, j));
    const T w = T(wide);
    bad = !(wide >= 0.0) || w == Lim<T>::inf();   /* negative or NaN in its own type, or infinite in T */
    return w;
}

/* Compensated (Neumaier) accumulation. Once the sum is infinite or NaN the compensation is left
 * alone, so that an infinite loss sums to inf (not inf - inf = NaN). */
__device__ __forceinline__ void acc_add(double& s, double& c, double v) {
    double t = s + v;
    if (t - t == 0.0) {
        if (fabs(s) >= fabs(v)) c += (s - t) + v;
        else c += (v - t) + s;
    }
    s = t;
}
__device__ __forceinline__ double acc_total(double s, double c) { return (s - s == 0.0) ? s + c : s; }

/* The mean's factor: dscale as the host passed it, or, where the weight pre-pass left the mean's
 * denominator on the device (pre: its two result words, the sum's bits first; _cuda.py's
 * weight_sum_enqueue), 1/denominator as _api's _mean_scale forms it (0 where nothing counts; the
 * quotient of IEEE double division, the same bits as on the host). */
__device__ __forceinline__ double mean_scale_at(double dscale, const xu64* pre) {
    if (!pre) return dscale;
    const double d = __longlong_as_double((long long)pre[0]);
    return d != 0.0 ? 1.0 / d : 0.0;
}

/* Shared scratch of the end-of-block reduction. */
struct ReduceScratch {
    double d[32];
    xu64 u[32];
};

/* Block partial: the sum of v (fixed shuffle tree, then warps in order) and the smallest key,
 * written by thread 0 to slot b. Every thread of the block must call it. The key shuffles run
 * only in warps that hold an error (the usual case has none). */
template <int NT>
__device__ __forceinline__ void block_partial(ReduceScratch& rs, double v, xu64 e, double* part_sum,
                                              xu64* part_err, xi64 b) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(XENT_FULL_MASK, v, o);
    if (__any_sync(XENT_FULL_MASK, e != XENT_NO_ERR)) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            xu64 w = __shfl_down_sync(XENT_FULL_MASK, e, o);
            e = w < e ? w : e;
        }
    }
    if (lane == 0) { rs.d[warp] = v; rs.u[warp] = e; }
    __syncthreads();
    if (tid == 0) {
        double s = rs.d[0];
        xu64 m = rs.u[0];
        for (int w = 1; w < NT / 32; ++w) { s += rs.d[w]; m = umin64(m, rs.u[w]); }
        part_sum[b] = s;
        if (part_err) part_err[b] = m;
    }
}

/* ============================================================================================
 * Categorical rows: one algorithm (softmax_row_from_logits / _from_probs of _xent_rows.h),
 * run by a team of lanes: one thread, one warp or one block per row. Lane l handles classes
 * l, l + size, ...; the team reductions are all-reduces that give every lane the same bits.
 * ========================================================================================== */
template <typename T>
__device__ __forceinline__ bool argmax_better(T m2, xi64 j2, T m1, xi64 j1) {
    return m2 > m1 || (m2 == m1 && j2 < j1);
}

struct TeamThread {
    __device__ __forceinline__ int lane() const { return 0; }
    __device__ __forceinline__ int size() const { return 1; }
    __device__ __forceinline__ xu64 min_u64(xu64 v) { return v; }
    __device__ __forceinline__ bool any(bool b) { return b; }
    template <typename T> __device__ __forceinline__ void argmax(T&, xi64&) {}
    __device__ __forceinline__ void sum4(double&, double&, double&, double&) {}
    __device__ __forceinline__ void sum_dd(double&, double&) {}
    template <typename T> __device__ __forceinline__ T bcast(T v, int) { return v; }
};

struct TeamWarp {
    int l;
    __device__ __forceinline__ int lane() const { return l; }
    __device__ __forceinline__ int size() const { return 32; }
    __device__ __forceinline__ xu64 min_u64(xu64 v) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            xu64 w = __shfl_xor_sync(XENT_FULL_MASK, v, o);
            v = w < v ? w : v;
        }
        return v;
    }
    __device__ __forceinline__ bool any(bool b) { return __any_sync(XENT_FULL_MASK, b) != 0; }
    template <typename T> __device__ __forceinline__ void argmax(T& m, xi64& jm) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            T om = __shfl_xor_sync(XENT_FULL_MASK, m, o);
            xi64 oj = __shfl_xor_sync(XENT_FULL_MASK, jm, o);
            if (argmax_better(om, oj, m, jm)) { m = om; jm = oj; }
        }
    }
    /* Butterfly sums: lane i adds (own, partner) and the partner (partner, own); IEEE addition is
     * commutative, so every lane ends with the same bits. */
    __device__ __forceinline__ void sum4(double& a, double& b, double& c, double& d) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            a += __shfl_xor_sync(XENT_FULL_MASK, a, o);
            b += __shfl_xor_sync(XENT_FULL_MASK, b, o);
            c += __shfl_xor_sync(XENT_FULL_MASK, c, o);
            d += __shfl_xor_sync(XENT_FULL_MASK, d, o);
        }
    }
    /* A double-double sum (hi, lo), the roundings of the hi parts' additions kept in lo (dd_add):
     * the same bits in every lane, as for sum4 */
    __device__ __forceinline__ void sum_dd(double& hi, double& lo) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const double oh = __shfl_xor_sync(XENT_FULL_MASK, hi, o);
            lo += __shfl_xor_sync(XENT_FULL_MASK, lo, o);
            dd_add(hi, lo, oh);
        }
    }
    template <typename T> __device__ __forceinline__ T bcast(T v, int owner) {
        return __shfl_sync(XENT_FULL_MASK, v, owner);
    }
};

struct TeamScratch {
    double d[4][32];
    double m[32];
    xi64 j[32];
    xu64 u[32];
    int f[32];
    double b;
};

template <int NT> struct TeamBlock {
    TeamScratch* s;
    int tid;
    static constexpr int NW = NT / 32;
    __device__ __forceinline__ int lane() const { return tid; }
    __device__ __forceinline__ int size() const { return NT; }
    __device__ __forceinline__ xu64 min_u64(xu64 v) {
        TeamWarp w{tid & 31};
        v = w.min_u64(v);
        if ((tid & 31) == 0) s->u[tid >> 5] = v;
        __syncthreads();
        xu64 r = s->u[0];
        for (int k = 1; k < NW; ++k) r = umin64(r, s->u[k]);
        __syncthreads();
        return r;
    }
    __device__ __forceinline__ bool any(bool b) {
        int a = __any_sync(XENT_FULL_MASK, b);
        if ((tid & 31) == 0) s->f[tid >> 5] = a;
        __syncthreads();
        int r = 0;
        for (int k = 0; k < NW; ++k) r |= s->f[k];
        __syncthreads();
        return r != 0;
    }
    template <typename T> __device__ __forceinline__ void argmax(T& m, xi64& jm) {
        TeamWarp w{tid & 31};
        w.argmax(m, jm);
        if ((tid & 31) == 0) { s->m[tid >> 5] = double(m); s->j[tid >> 5] = jm; }
        __syncthreads();
        T rm = T(s->m[0]);
        xi64 rj = s->j[0];
        for (int k = 1; k < NW; ++k) {
            T om = T(s->m[k]);
            xi64 oj = s->j[k];
            if (argmax_better(om, oj, rm, rj)) { rm = om; rj = oj; }
        }
        __syncthreads();
        m = rm; jm = rj;
    }
    __device__ __forceinline__ void sum4(double& a, double& b, double& c, double& d) {
        TeamWarp w{tid & 31};
        w.sum4(a, b, c, d);
        if ((tid & 31) == 0) {
            s->d[0][tid >> 5] = a; s->d[1][tid >> 5] = b; s->d[2][tid >> 5] = c; s->d[3][tid >> 5] = d;
        }
        __syncthreads();
        a = s->d[0][0]; b = s->d[1][0]; c = s->d[2][0]; d = s->d[3][0];
        for (int k = 1; k < NW; ++k) { a += s->d[0][k]; b += s->d[1][k]; c += s->d[2][k]; d += s->d[3][k]; }
        __syncthreads();
    }
    __device__ __forceinline__ void sum_dd(double& hi, double& lo) {
        TeamWarp w{tid & 31};
        w.sum_dd(hi, lo);
        if ((tid & 31) == 0) { s->d[0][tid >> 5] = hi; s->d[1][tid >> 5] = lo; }
        __syncthreads();
        hi = s->d[0][0]; lo = s->d[1][0];
        for (int k = 1; k < NW; ++k) { lo += s->d[1][k]; dd_add(hi, lo, s->d[0][k]); }
        __syncthreads();
    }
    template <typename T> __device__ __forceinline__ T bcast(T v, int owner) {
        if (tid == owner) s->b = double(v);
        __syncthreads();
        T r = T(s->b);
        __syncthreads();
        return r;
    }
};

/* What a row needs besides its pointers. */
template <typename T> struct RowArgs {
    xi64 C;
    const T* cwa;          /* per-class coefficient (class_weight * alpha), or null */
    T eps, gamma, dscale;
    xi64 ignore_index;
    int has_ignore;
    int from_logits;
};

/* Coefficient c_j = cwa_j * Y'_j of class j (Y' the smoothed label), as class_coef of
 * _xent_rows.h. */
template <typename T, typename S>
__device__ __forceinline__ T class_coef(const RowArgs<T>& a, xi64 y, const S* ys, xi64 syc, xi64 j) {
    T cw = a.cwa ? a.cwa[j] : T(1);
    T eps = a.eps, C = T(a.C);
    T Y;
    if (ys) {
        Y = T(label_widen(ys[j * syc]));
        if (eps != T(0)) Y = Y * (T(1) - eps) + eps / C;
    } else {
        Y = (j == y) ? T(1) - eps + eps / C : eps / C;
    }
    return mul0(cw, Y);
}

/* The end of a cross-entropy row (softmax_ce_finish of _xent_rows.h), from s_rest, the sums over
 * the classes of the coefficients (S; S_rest: all but jm) and of c_j d_j (LD), and
 * L = log1p(s_rest): the loss wi (LD + S L) and the constants of the element derivatives
 * S P_j - c_j and S P_j (1 - P_j), with P_j = e_j / s and at j = jm the forms of
 * ce_grad_at_max (c_jm: jm's own coefficient) and S P Q_jm. c_y is the label's coefficient, for
 * integer labels. */
template <typename T> struct CeRowEnd { T loss, ST, inv_s, g_jm, h_jm, c_y; double S_s; };   /* S_s: S / s */

template <typename T>
__device__ __forceinline__ CeRowEnd<T> ce_row_end(double s_rest, double S, double S_rest, double c_jm, double LD, T L,
                                                  T wi) {
    CeRowEnd<T> o;
    const double s = 1.0 + s_rest;
    o.loss = mul0(wi, T(LD + S * double(L)));
    o.ST = T(S);
    /* a / s: for float results the product by 1/s, one double division a row instead of four (each
     * 15-20 instructions: reciprocal, Newton steps, range test), within about an ulp of double of
     * the quotient, so the same float but where the quotient lies that close to a midpoint; double
     * results divide, as the CPU */
    const double r = 1.0 / s;
    const auto over_s = [&](double a) { return sizeof(T) == 4 ? a * r : a / s; };
    o.inv_s = T(r);
    o.S_s = over_s(S);
    const T Qjm = T(over_s(s_rest));
    o.g_jm = T(over_s(ce_grad_at_max_num(S_rest, c_jm, s_rest)));   /* ce_grad_at_max */
    o.h_jm = o.ST * o.inv_s * Qjm;
    o.c_y = T(0);
    return o;
}

/* Cross entropy of one softmax row from its summary (softmax_ce_finish of _xent_rows.h): the loss
 * sum_j c_j (d_j + L) and, on request, gradient S P_j - c_j and Hessian S P_j (1 - P_j), with
 * S = sum_j c_j; at j = jm, S P - c is ce_grad_at_max (_xent_math.h).
 * Integer labels: c_j = eps/C cw_j, plus (1 - eps) cw_y at j = y. */
template <typename T, typename St, typename SL, class Team>   /* St: the storage type (S elsewhere; S is a sum here) */
__device__ __forceinline__ T ce_finish(const RowArgs<T>& a, Team& tm, const St* xr, xi64 sc, xi64 y, const SL* ys,
                                       xi64 syc, St* gr, St* hr, xi64 so, T wi, T m, xi64 jm, double s_rest,
                                       T L) {
    const xi64 C = a.C;
    const xi64 ln = tm.lane(), ns = tm.size();
    const T* cwa = a.cwa;
    const T eps = a.eps, epsC = a.eps / T(C);
    const bool want_g = gr != 0, want_h = hr != 0;
    double S = 0.0, S_rest = 0.0, LD = 0.0, z = 0.0;
    T cy = T(0);
    if (ys) {
        for (xi64 j = ln; j < C; j += ns) {
            T c = class_coef(a, y, ys, syc, j);
            S += double(c);
            if (j != jm) S_rest += double(c);
            LD += double(mul0(c, softmax_gap(T(xr[j * sc]), m)));
        }
        tm.sum4(S, S_rest, LD, z);
    } else {
        cy = (T(1) - eps) * (cwa ? cwa[y] : T(1));
        if (eps != T(0)) {
            for (xi64 j = ln; j < C; j += ns) {
                T cw = cwa ? cwa[j] : T(1);
                S += double(epsC * cw);
                if (j != jm) S_rest += double(epsC * cw);
                LD += double(mul0(epsC * cw, softmax_gap(T(xr[j * sc]), m)));
            }
            tm.sum4(S, S_rest, LD, z);
        }
        S += double(cy);
        if (y != jm) S_rest += double(cy);
        LD += double(mul0(cy, softmax_gap(T(xr[y * sc]), m)));
    }
    /* jm's own coefficient, formed as the sums took it */
    double c_jm;
    if (ys) c_jm = double(class_coef(a, y, ys, syc, jm));
    else c_jm = (eps != T(0) ? double(epsC * (cwa ? cwa[jm] : T(1))) : 0.0) + (y == jm ? double(cy) : 0.0);
    const CeRowEnd<T> fin = ce_row_end(s_rest, S, S_rest, c_jm, LD, L, wi);
    if (want_g || want_h) {
        const T ds = wi * a.dscale;
        const T inv_s = fin.inv_s, ST = fin.ST, g_jm = fin.g_jm, h_jm = fin.h_jm;
        for (xi64 j = ln; j < C; j += ns) {
            const T P = softmax_exp(T(xr[j * sc]), m) * inv_s;   /* the corrected exponential, as the CPU */
            if (want_g) {
                T gj;
                if (j == jm) gj = g_jm;
                else if (ys) gj = ST * P - class_coef(a, y, ys, syc, j);
                else if (j == y) gj = ST * P - (epsC * (cwa ? cwa[y] : T(1)) + cy);
                else gj = ST * P - epsC * (cwa ? cwa[j] : T(1));
                gr[j * so] = mul0(ds, gj);
            }
            if (want_h) hr[j * so] = mul0(ds, j == jm ? h_jm : ST * P * (T(1) - P));
        }
    }
    return fin.loss;
}

template <typename T, typename S, typename SL, class Team>
__device__ __forceinline__ T row_from_logits(const RowArgs<T>& a, Team& tm, xi64 r, const S* xr, xi64 sc, xi64 y,
                                             const SL* ys, xi64 syc, S* gr, S* hr, xi64 so, T wi, xu64& err) {
    const xi64 C = a.C;
    const xi64 ln = tm.lane(), ns = tm.size();
    const T g = a.gamma;
    const bool want_g = gr != 0, want_h = hr != 0;
    const T ds = wi * a.dscale;
    if (ys) {
        xu64 e = XENT_NO_ERR;
        for (xi64 j = ln; j < C; j += ns) {
            int c = unit_label_error(label_widen(ys[j * syc]));
            if (c) { e = err_key(r * C + j, c); break; }
        }
        e = tm.min_u64(e);
        if (e != XENT_NO_ERR) { err = umin64(err, e); return T(0); }
    }
    /* the maximum and its first index; NaN poisons the row */
    T m = -Lim<T>::inf();
    xi64 jm = XENT_NONE_IDX;
    bool nan = false;
    for (xi64 j = ln; j < C; j += ns) {
        const T v = T(xr[j * sc]);
        if (v != v) nan = true;
        else if (jm == XENT_NONE_IDX || v > m) { m = v; jm = j; }
    }
    nan = tm.any(nan);
    tm.argmax(m, jm);
    if (nan) {
        const T q = Lim<T>::nan();
        for (xi64 j = ln; j < C; j += ns) {
            if (want_g) gr[j * so] = q;
            if (want_h) hr[j * so] = q;
        }
        return q;
    }
    /* s_rest = sum_{j != jm} exp(x_j - m) (softmax_summary of _xent_rows.h); for focal rows with
     * focal_row_exact in double-double (as softmax_rest_dd of _xent_rows.h), and the classes with a coefficient take
     * their exp's error, for the accuracy of Q^g */
    const bool exact = focal_row_exact(double(g));
    double rhi = 0.0, rlo = 0.0;
    if (exact) {
        for (xi64 j = ln; j < C; j += ns) {
            const T x = T(xr[j * sc]);
            if (j == jm) continue;
            DD e = softmax_exp_wide(x, m);
            if (x == m) e.hi = 1.0;   /* another class at m */
            wide_add<T>(rhi, rlo, e);
        }
        tm.sum_dd(rhi, rlo);
        const DD t = rest_total(rhi, rlo, 0.0);   /* the other classes at m are in the sum */
        rhi = t.hi;
        rlo = t.lo;
    } else {
        double z0 = 0.0, z1 = 0.0, z2 = 0.0;
        for (xi64 j = ln; j < C; j += ns)
            if (j != jm) rhi += double(softmax_exp(T(xr[j * sc]), m));
        tm.sum4(rhi, z0, z1, z2);
        if (g == T(0)) return ce_finish(a, tm, xr, sc, y, ys, syc, gr, hr, so, wi, m, jm, rhi, T(log1p(rhi)));
    }
    /* focal: the summary's roundings (softmax_row_err), then the loss and the gradient/Hessian sums */
    const double fh = rhi, fl = rlo;
    const double fs = 1.0 + fh;
    const T fL = T(log1p(fh) + fl / fs);
    const SoftmaxRowErr re = softmax_row_err(exact, fh, fl, fs, 1.0 / fs);
    FocalRowSums<T> sums = focal_row_sums_init<T>();
    for (xi64 j = ln; j < C; j += ns) {
        T c = class_coef(a, y, ys, syc, j);
        if (c == T(0) && !(want_g || want_h)) continue;
        const T x = T(xr[j * sc]), e = softmax_exp(x, m);
        const T erel = (c == T(0) || !exact) ? T(0) : softmax_exp_rel(x, m, e);
        SoftmaxElem<T> el = softmax_elem(softmax_gap(x, m), e, j == jm, fs, fh, fL, erel, re);
        focal_row_add(sums, focal_softmax_elem(c, el, g, want_g, want_h), el, j == jm);
    }
    tm.sum4(sums.loss, sums.Tt, sums.T_rest, sums.U_rest);
    const int owner = int(jm % ns);
    sums.G_jm = tm.bcast(sums.G_jm, owner);
    sums.Kt_jm = tm.bcast(sums.Kt_jm, owner);
    if (want_g || want_h) {
        const RestRecip rr = rest_recip(fh);
        for (xi64 j = ln; j < C; j += ns) {
            T c = class_coef(a, y, ys, syc, j);
            const T x = T(xr[j * sc]), e = softmax_exp(x, m);
            const T erel = (c == T(0) || !exact) ? T(0) : softmax_exp_rel(x, m, e);
            SoftmaxElem<T> el = softmax_elem(softmax_gap(x, m), e, j == jm, fs, fh, fL, erel, re);
            FocalSoftmax<T> f = focal_softmax_elem(c, el, g, want_g, want_h);
            const FocalDerivs d2 = focal_softmax_derivs(el, f, e, j == jm, sums, rr);
            if (want_g) gr[j * so] = mul0(ds, T(d2.g));
            if (want_h) hr[j * so] = mul0(ds, T(d2.h));
        }
    }
    return mul0(wi, T(sums.loss));
}

template <typename T, typename S, typename SL, class Team>
__device__ __forceinline__ T row_from_probs(const RowArgs<T>& a, Team& tm, xi64 r, const S* xr, xi64 sc, xi64 y,
                                            const SL* ys, xi64 syc, S* gr, S* hr, xi64 so, T wi, xu64& err) {
    const xi64 C = a.C;
    const xi64 ln = tm.lane(), ns = tm.size();
    const T g = a.gamma;
    const bool want_g = gr != 0, want_h = hr != 0;
    const T ds = wi * a.dscale;
    xu64 e = XENT_NO_ERR;
    for (xi64 j = ln; j < C; j += ns) {
        const T p = T(xr[j * sc]);
        if (p < T(0) || p > T(1)) { e = err_key(r * C + j, ERR_PROB); break; }
        if (ys) {
            int c = unit_label_error(label_widen(ys[j * syc]));
            if (c) { e = err_key(r * C + j, c); break; }
        }
    }
    e = tm.min_u64(e);
    if (e != XENT_NO_ERR) { err = umin64(err, e); return T(0); }
    double loss = 0.0, z1 = 0.0, z2 = 0.0, z3 = 0.0;
    for (xi64 j = ln; j < C; j += ns) {
        const T p = T(xr[j * sc]);
        T c = class_coef(a, y, ys, syc, j);
        const LGH<T> o = categorical_from_prob(p, c, g, want_g, want_h, wi, ds);
        loss += double(o.l);
        if (want_g) gr[j * so] = o.g;
        if (want_h) hr[j * so] = o.h;
    }
    tm.sum4(loss, z1, z2, z3);
    return T(loss);
}

/* One row: ignore_index, then logits or probabilities (softmax_block of _xent_rows.h). */
template <typename T, typename S, typename SL, class Team>
__device__ __forceinline__ T softmax_row(const RowArgs<T>& a, Team& tm, xi64 r, const S* xr, xi64 sc, bool has_labels,
                                         xi64 y, const SL* ys, xi64 syc, S* gr, S* hr, xi64 so, T wi, xu64& err) {
    if (has_labels && a.has_ignore && y == a.ignore_index) {
        for (xi64 j = tm.lane(); j < a.C; j += tm.size()) {
            if (gr) gr[j * so] = T(0);
            if (hr) hr[j * so] = T(0);
        }
        return T(0);
    }
    if (has_labels && !(y >= 0 && y < a.C)) {
        /* reported with the row's first flat index (_cuda.py reads the label); a label is never
         * used out of range, also where the weight pre-pass has not checked the labels */
        err = umin64(err, err_key(r * a.C, ERR_LABEL_RANGE));
        return T(0);
    }
    if (a.from_logits) return row_from_logits(a, tm, r, xr, sc, y, ys, syc, gr, hr, so, wi, err);
    return row_from_probs(a, tm, r, xr, sc, y, ys, syc, gr, hr, so, wi, err);
}

}  // namespace xentk

/* ============================================================================================
 * Kernels. Pointer arguments that may be absent are null; strides are in elements and may be
 * negative; outputs are C-order (outer, C, inner) and the per-row loss (outer * inner).
 * ========================================================================================== */
#define XENT_SOFTMAX_PARAMS                                                                       \
    const S* __restrict__ x, xi64 sx_o, xi64 sx_c, xi64 sx_i, xi64 C, xi64 inner, xi64 rows,      \
    const xi64* __restrict__ labels, const SL* __restrict__ ysoft, xi64 sy_o, xi64 sy_c, xi64 sy_i, \
    const void* __restrict__ sw, int sw_kind, const T* __restrict__ cwa, xi64 ignore_index,        \
    int has_ignore, double eps, double gamma, double dscale, const xu64* __restrict__ pre,         \
    int from_logits,                                                                               \
    T* __restrict__ loss, S* __restrict__ grad, S* __restrict__ hess,                              \
    double* __restrict__ part_sum, xu64* __restrict__ part_err, xi64 block_offset

#define XENT_ROW_ARGS                                                                              \
    xentk::RowArgs<T> a;                                                                          \
    a.C = C; a.cwa = cwa; a.eps = T(eps); a.gamma = T(gamma);                                      \
    a.dscale = T(xentk::mean_scale_at(dscale, pre));                                              \
    a.ignore_index = ignore_index; a.has_ignore = has_ignore; a.from_logits = from_logits;

namespace xentk {
/* Sample weights that repeat (_api's _sample_weight: a scalar, one per row of (N, L), one per
 * label, any broadcast repeating one block of the shape) are passed once: element i takes
 * sw[(i / rep) % len]; weights of every element have rep = 1, len = n. The two divisions by the
 * call's constants go through their reciprocals in double, made exact by one correction step
 * (the estimate is within 1 of the quotient for quotients below 2^52, which the launcher
 * ensures), so they cost a few multiplies, not a 64-bit integer division. */
struct WeightIndex {
    xi64 rep, len;
    double inv_rep, inv_len;
    __device__ __forceinline__ WeightIndex(xi64 rep_, xi64 len_)
        : rep(rep_), len(len_), inv_rep(1.0 / double(rep_)), inv_len(1.0 / double(len_)) {}
    __device__ static __forceinline__ xi64 quot(xi64 i, xi64 d, double inv) {
        xi64 q = xi64(double(i) * inv);
        const xi64 r = i - q * d;
        if (r < 0) --q;
        else if (r >= d) ++q;
        return q;
    }
    __device__ __forceinline__ xi64 operator()(xi64 i) const {
        xi64 j = rep == 1 ? i : quot(i, rep, inv_rep);
        if (j >= len) j -= quot(j, len, inv_len) * len;
        return j;
    }
};
}  // namespace xentk

/* Sum of sample weights (times class weights) over non-ignored samples, with the checks of
 * weight_block in _xent_rows.h. Sample weight i: sw[WeightIndex(sw_rep, sw_len)(i)]. */
template <typename T>
__global__ void __launch_bounds__(256)
xent_weight(const xi64* __restrict__ labels, const void* __restrict__ sw, int sw_kind, xi64 sw_rep, xi64 sw_len,
            const T* __restrict__ cw, xi64 C, xi64 ignore_index, int has_ignore, xi64 n,
            double* __restrict__ part_sum, xu64* __restrict__ part_err, xi64 block_offset) {
    using namespace xentk;
    constexpr int NT = 256, IT = 8;
    XENT_SHARED(ReduceScratch, rs);
    const xi64 b = xi64(blockIdx.x) + block_offset;
    const xi64 base = b * (NT * IT) + threadIdx.x;
    const WeightIndex widx(sw_rep, sw_len);
    double s = 0.0, c = 0.0;
    xu64 err = XENT_NO_ERR;
#pragma unroll
    for (int k = 0; k < IT; ++k) {
        const xi64 i = base + xi64(k) * NT;
        if (i < n) {
            T w = T(1);
            bool ok = true;
            if (sw) {
                bool bad;
                w = weight_checked<T>(sw, sw_kind, widx(i), bad);
                if (bad) { err = umin64(err, err_key(i, ERR_WEIGHT)); ok = false; }
            }
            if (ok && labels) {
                const xi64 y = labels[i];
                if (has_ignore && y == ignore_index) ok = false;
                else if (y < 0 || y >= C) { err = umin64(err, err_key(i, ERR_LABEL_RANGE)); ok = false; }
                else if (cw) w *= cw[y];
            }
            if (ok) acc_add(s, c, double(w));
        }
    }
    block_partial<NT>(rs, acc_total(s, c), err, part_sum, part_err, b);
}

/* Binary CE / focal over flat y (labels) and x (probabilities or logits): binary_block of
 * _xent_rows.h. pos_weight / alpha (w1) is indexed i % nw1, sample weights as WeightIndex says. LOGITS and CE (gamma == 0) are
 * template flags so that each instance holds only the path it runs (the element loop is unrolled
 * for memory parallelism, and the unused paths would only crowd the instruction cache). */
template <typename T, bool LOGITS, bool CE, typename S = T, typename SY = T>
__global__ void __launch_bounds__(256)
xent_binary(const SY* __restrict__ y, xi64 sy, const S* __restrict__ x, xi64 sx, xi64 n,
            const void* __restrict__ sw, int sw_kind, xi64 sw_rep, xi64 sw_len, const T* __restrict__ w1, xi64 nw1,
            double w0,
            double eps, double gamma, double dscale, const xu64* __restrict__ pre, T* __restrict__ loss,
            S* __restrict__ grad, S* __restrict__ hess, double* __restrict__ part_sum, xu64* __restrict__ part_err,
            xi64 block_offset) {
    using namespace xentk;
    constexpr int NT = 256, IT = 8;
    XENT_SHARED(ReduceScratch, rs);
    const xi64 b = xi64(blockIdx.x) + block_offset;
    const xi64 base = b * (NT * IT) + threadIdx.x;
    const T eps_ = T(eps), g = CE ? T(0) : T(gamma), w0_ = T(w0), dsc = T(mean_scale_at(dscale, pre));
    const bool want_g = grad != 0, want_h = hess != 0;
    const WeightIndex widx(sw_rep, sw_len);
    typedef decltype(label_widen(y[0])) YW;   /* the labels' values, exactly */
    YW yv[IT];
    T xv[IT];
    if (sy == 1 && sx == 1 && b * (NT * IT) + NT * IT <= n) {   /* the common case: no strides, full block */
#pragma unroll
        for (int k = 0; k < IT; ++k) { yv[k] = label_widen(y[base + k * NT]); xv[k] = T(x[base + k * NT]); }
    } else {
#pragma unroll
        for (int k = 0; k < IT; ++k) {
            const xi64 i = base + xi64(k) * NT;
            yv[k] = YW(0); xv[k] = T(0);
            if (i < n) { yv[k] = label_widen(y[i * sy]); xv[k] = T(x[i * sx]); }
        }
    }
    double s = 0.0;   /* the thread's IT losses, exactly enough in double; blocks are compensated */
    xu64 err = XENT_NO_ERR;
#pragma unroll
    for (int k = 0; k < IT; ++k) {
        const xi64 i = base + xi64(k) * NT;
        if (i < n) {
            const int e = unit_label_error(yv[k]);
            const T yi = T(yv[k]);
            const T xi = xv[k];
            if (e) {
                err = umin64(err, err_key(i, e));
            } else if (!LOGITS && (xi < T(0) || xi > T(1))) {
                err = umin64(err, err_key(i, ERR_PROB));
            } else {
                const T w1i = w1 ? w1[nw1 == 1 ? 0 : i % nw1] : T(1);
                const T c1 = w1i * smoothed_pair(yi, eps_, true);
                const T c0 = w0_ * smoothed_pair(yi, eps_, false);
                const T wi = sw ? weight_at<T>(sw, sw_kind, widx(i)) : T(1), ds = wi * dsc;
                LGH<T> o = LOGITS ? binary_from_logit(xi, c1, c0, g, want_g, want_h, wi, ds)
                                  : binary_from_prob(xi, c1, c0, g, want_g, want_h, wi, ds);
                /* cross entropy's gradient from probabilities where its sides cancel (binary_span) */
                if (!LOGITS && CE && want_g)
                    o.g = prob_gradient_near_label(xi, yi, eps_, w1i, w0_, ds, o.g);
                /* focal loss's float gradient from probabilities there, in double (binary_span's
                 * focal_wide_pass) */
                if constexpr (!LOGITS && !CE && sizeof(T) == sizeof(float))
                    if (want_g && two_sided(yi, eps_))
                        o.g = focal_prob_gradient_wide<PowLibm>(xi, yi, eps_, w1i, w0_, g, ds);
                if (loss) loss[i] = o.l;
                s += double(o.l);
                if (want_g) grad[i] = o.g;
                if (want_h) hess[i] = o.h;
            }
        }
    }
    block_partial<NT>(rs, s, err, part_sum, part_err, b);
}

/* ============================================================================================
 * Binary cross entropy from logits, fast path: contiguous y and x, every array 16-byte aligned,
 * gamma = 0, pos_weight absent or one value, any label smoothing, any outputs. The same element
 * formulas (binary_from_logit) as xent_binary, with the per-element overheads taken out: each
 * thread reads 16-byte packs (4 floats / 2 doubles / 8 16-bit floats) of x, as many labels (and sample
 * weights) beside them, U packs of each issued together; offsets inside the block are 32-bit; the
 * label check only accumulates a flag, and the first-error key is worked out (again, in index
 * order) only by a thread that saw a bad label. A block covers `rounds` rounds of NT * U * VEC
 * elements (rounds chosen by the launcher from n alone), so the per-block reduction is shared by
 * more elements; the last block, if partial, takes a guarded scalar loop.
 * SW: sample_weight present (a template flag: without it the loss weight is the constant 1 and
 * mul0(1, v) folds away): one per element, or with sw_scalar one for all (a scalar weight, passed
 * once); other repeating weights take xent_binary. Weights of the compute type come in packs beside
 * x; weights of another float type (sw_kind) are read and converted one at a time.
 * ========================================================================================== */
namespace xentk {
/* N elements of U, loaded and stored as 16-byte vectors (one, or two for float beside 16-bit x);
 * labels narrower than x (bool or int8 beside float: 4 bytes a pack) as one smaller load. */
template <typename U, int N> struct alignas(sizeof(U) * N < 16 ? sizeof(U) * N : 16) BinPack { U v[N]; };

template <typename T> struct BinVecArgs {
    T eps, w0, w1, dsc;
    bool want_g, want_h;
};

/* Quick label filter of the fast loop: true for every y in [0, 1] except -0.0 (float: one
 * unsigned comparison of the bits); a false sends the thread to the exact check of
 * unit_label_error afterwards, so -0.0 costs time there, never a wrong error. */
__device__ __forceinline__ bool unit_label_quick(float y) { return __float_as_uint(y) <= 0x3f800000u; }
__device__ __forceinline__ bool unit_label_quick(double y) { return (y >= 0.0) & (y <= 1.0); }
template <typename Y> __device__ __forceinline__ bool unit_label_quick(Y y) { return (y >= Y(0)) & (y <= Y(1)); }

/* One element: exactly what xent_binary<T, true, true> computes for a valid label. */
template <typename T, bool SW>
__device__ __forceinline__ LGH<T> bin_vec_elem(const BinVecArgs<T>& a, T yi, T zi, T wi) {
    const T c1 = a.w1 * smoothed_pair(yi, a.eps, true);
    const T c0 = a.w0 * smoothed_pair(yi, a.eps, false);
    const T wl = SW ? wi : T(1);
    return binary_from_logit<T, PowNone>(zi, c1, c0, T(0), a.want_g, a.want_h, wl, wl * a.dsc);
}
}  // namespace xentk

template <typename T, bool SW, typename S = T, typename SY = T>
__global__ void __launch_bounds__(256)
xent_binary_vec(const SY* __restrict__ y, const S* __restrict__ x, xi64 n, const void* __restrict__ sw,
                int sw_kind, int sw_scalar, const T* __restrict__ w1, double w0, double eps, double dscale,
                const xu64* __restrict__ pre, T* __restrict__ loss, S* __restrict__ grad, S* __restrict__ hess,
                double* __restrict__ part_sum, xu64* __restrict__ part_err, int rounds, xi64 block_offset) {
    using namespace xentk;
    /* VEC elements a pack: 16 bytes of x (4 floats, 2 doubles, 8 16-bit floats), the labels (SY) and
     * sample_weight (T, when of the compute type) beside them */
    constexpr int NT = 256, U = 4, VEC = 16 / sizeof(S), ROUND = NT * U * VEC;
    typedef BinPack<T, VEC> P;
    typedef BinPack<S, VEC> PS;
    typedef BinPack<SY, VEC> PY;
    XENT_SHARED(ReduceScratch, rs);
    const int tid = threadIdx.x;
    const xi64 b = xi64(blockIdx.x) + block_offset;
    const xi64 start = b * xi64(rounds) * ROUND;
    BinVecArgs<T> a;
    a.eps = T(eps); a.w0 = T(w0); a.w1 = w1 ? w1[0] : T(1); a.dsc = T(mean_scale_at(dscale, pre));
    a.want_g = grad != 0; a.want_h = hess != 0;
    const T w_one = (SW && sw_scalar) ? weight_at<T>(sw, sw_kind, 0) : T(1);   /* one sample weight for every element */
    const bool sw_own = sw_kind == OwnWeightKind<T>::value;   /* else weights of another dtype, read one by one */
    double s = 0.0;   /* the thread's losses; exact enough in double */
    xu64 err = XENT_NO_ERR;
    if (start + xi64(rounds) * ROUND <= n) {
        int bad_round = -1;
#pragma unroll 1
        for (int r = 0; r < rounds; ++r) {
            const xi64 off = start + xi64(r) * ROUND;   /* pack j of this thread: off + (j NT + tid) VEC */
            const PY* yp = reinterpret_cast<const PY*>(y + off) + tid;
            const PS* xp = reinterpret_cast<const PS*>(x + off) + tid;
            PY yv[U];
            P wv[U];
            PS xv[U];
#pragma unroll
            for (int j = 0; j < U; ++j) { yv[j] = yp[j * NT]; xv[j] = xp[j * NT]; }
            if (SW && sw_scalar) {
#pragma unroll
                for (int j = 0; j < U; ++j)
#pragma unroll
                    for (int k = 0; k < VEC; ++k) wv[j].v[k] = w_one;
            } else if (SW && sw_own) {
                const P* wp = reinterpret_cast<const P*>(static_cast<const T*>(sw) + off) + tid;
#pragma unroll
                for (int j = 0; j < U; ++j) wv[j] = wp[j * NT];
            } else if (SW) {
#pragma unroll
                for (int j = 0; j < U; ++j)
#pragma unroll
                    for (int k = 0; k < VEC; ++k)
                        wv[j].v[k] = weight_other<T>(sw, sw_kind, off + xi64(j * NT + tid) * VEC + k);
            }
            bool ok = true;
#pragma unroll
            for (int j = 0; j < U; ++j) {
                P lv;
                PS gv, hv;
#pragma unroll
                for (int k = 0; k < VEC; ++k) {
                    const auto yw = label_widen(yv[j].v[k]);
                    ok &= unit_label_quick(yw);
                    const T yi = T(yw);
                    const LGH<T> o = bin_vec_elem<T, SW>(a, yi, T(xv[j].v[k]), SW ? wv[j].v[k] : T(1));
                    s += double(o.l);
                    lv.v[k] = o.l; gv.v[k] = o.g; hv.v[k] = o.h;
                }
                const int at = j * NT + tid;
                if (loss) reinterpret_cast<P*>(loss + off)[at] = lv;
                if (a.want_g) reinterpret_cast<PS*>(grad + off)[at] = gv;
                if (a.want_h) reinterpret_cast<PS*>(hess + off)[at] = hv;
            }
            bad_round = (!ok && bad_round < 0) ? r : bad_round;
        }
        /* rare: this thread's first bad label, in index order, from the first round that failed
         * the quick filter on (that round may hold only -0.0 labels, which are valid) */
        for (int r = bad_round; r >= 0 && r < rounds && err == XENT_NO_ERR; ++r) {
            const xi64 off = start + xi64(r) * ROUND;
            for (int j = 0; j < U && err == XENT_NO_ERR; ++j)
                for (int k = 0; k < VEC; ++k) {
                    const xi64 i = off + xi64(j * NT + tid) * VEC + k;
                    const int e = unit_label_error(label_widen(y[i]));
                    if (e) { err = err_key(i, e); break; }
                }
        }
    } else {
        /* the partial last block: one element per thread and step, guarded */
        const xi64 end = n;
        for (xi64 i = start + tid; i < end; i += NT) {
            const auto yw = label_widen(y[i]);
            const int e = unit_label_error(yw);
            if (e) { err = umin64(err, err_key(i, e)); continue; }
            const T yi = T(yw);
            const T wi = SW ? (sw_scalar ? w_one : weight_at<T>(sw, sw_kind, i)) : T(1);
            const LGH<T> o = bin_vec_elem<T, SW>(a, yi, T(x[i]), wi);
            s += double(o.l);
            if (loss) loss[i] = o.l;
            if (a.want_g) grad[i] = o.g;
            if (a.want_h) hess[i] = o.h;
        }
    }
    block_partial<NT>(rs, s, err, part_sum, part_err, b);
}

/* One thread per row, rows (o, k) with k fastest: any strides. */
template <typename T, typename S = T, typename SL = S>
__global__ void __launch_bounds__(128) xent_softmax_thread(XENT_SOFTMAX_PARAMS) {
    using namespace xentk;
    constexpr int NT = 128;
    XENT_SHARED(ReduceScratch, rs);
    XENT_ROW_ARGS
    const xi64 b = xi64(blockIdx.x) + block_offset;
    const xi64 r = b * NT + threadIdx.x;
    double acc = 0.0;
    xu64 err = XENT_NO_ERR;
    if (r < rows) {
        const xi64 o = r / inner, k = r - o * inner;
        const S* xr = x + o * sx_o + k * sx_i;
        const SL* ys = ysoft ? ysoft + o * sy_o + k * sy_i : (const SL*)0;
        S* gr = grad ? grad + o * C * inner + k : (S*)0;
        S* hr = hess ? hess + o * C * inner + k : (S*)0;
        const xi64 y = labels ? labels[r] : -1;
        const T wi = sw ? weight_at<T>(sw, sw_kind, r) : T(1);
        TeamThread tm;
        const T l = softmax_row(a, tm, r, xr, sx_c, labels != 0, y, ys, sy_c, gr, hr, inner, wi, err);
        if (loss) loss[r] = l;
        acc = double(l);
    }
    block_partial<NT>(rs, acc, err, part_sum, part_err, b);
}

/* One thread per row for small C on contiguous rows (inner == 1, x and soft labels with class
 * stride 1 and row stride C): the block's rows go through shared memory, so global memory is
 * read and written in coalesced runs. Dynamic shared memory: ntiles * 128 * C elements of T (16-bit
 * rows are converted as they are staged). */
template <typename T, typename S = T, typename SL = S>
__global__ void __launch_bounds__(128) xent_softmax_tile(XENT_SOFTMAX_PARAMS) {
    using namespace xentk;
    constexpr int NT = 128;
    XENT_SHARED(ReduceScratch, rs);
    XENT_DYN_SHARED(dyn);
    XENT_ROW_ARGS
    const xi64 b = xi64(blockIdx.x) + block_offset;
    const xi64 r0 = b * NT;
    const int nr = int((rows - r0) < NT ? (rows - r0) : NT);
    const int tid = threadIdx.x;
    const xi64 tile = xi64(NT) * C;
    T* xs = reinterpret_cast<T*>(dyn);
    T* ysm = xs + tile;
    T* gs = ysoft ? ysm + tile : ysm;
    T* hs = grad ? gs + tile : gs;
    const xi64 cnt = xi64(nr) * C;
    xu64 err = XENT_NO_ERR;
    for (xi64 q = tid; q < cnt; q += NT) xs[q] = T(x[r0 * sx_o + q]);
    if (ysoft)
        for (xi64 q = tid; q < cnt; q += NT) {
            /* labels wider than T (float64 beside float32) are checked here, in their own type:
             * the row sees them rounded, and 1 + 1e-10 rounds to a valid 1.0f */
            const auto v = label_widen(ysoft[r0 * sy_o + q]);
            if (sizeof(v) > sizeof(T)) {
                const int c = unit_label_error(v);
                if (c) err = umin64(err, err_key(r0 * C + q, c));
            }
            ysm[q] = T(v);
        }
    __syncthreads();
    double acc = 0.0;
    if (tid < nr) {
        const xi64 r = r0 + tid;
        const xi64 y = labels ? labels[r] : -1;
        const T wi = sw ? weight_at<T>(sw, sw_kind, r) : T(1);
        TeamThread tm;
        const T l = softmax_row(a, tm, r, xs + xi64(tid) * C, xi64(1), labels != 0, y,
                                ysoft ? ysm + xi64(tid) * C : (const T*)0, xi64(1),
                                grad ? gs + xi64(tid) * C : (T*)0, hess ? hs + xi64(tid) * C : (T*)0,
                                xi64(1), wi, err);
        if (loss) loss[r] = l;
        acc = double(l);
    }
    __syncthreads();
    if (grad)
        for (xi64 q = tid; q < cnt; q += NT) grad[r0 * C + q] = gs[q];
    if (hess)
        for (xi64 q = tid; q < cnt; q += NT) hess[r0 * C + q] = hs[q];
    block_partial<NT>(rs, acc, err, part_sum, part_err, b);
}

/* One warp per row, 8 rows per block: any strides. */
template <typename T, typename S = T, typename SL = S>
__global__ void __launch_bounds__(256) xent_softmax_warp(XENT_SOFTMAX_PARAMS) {
    using namespace xentk;
    constexpr int NT = 256, NW = NT / 32;
    XENT_SHARED(ReduceScratch, rs);
    XENT_ROW_ARGS
    const xi64 b = xi64(blockIdx.x) + block_offset;
    const int lane = threadIdx.x & 31;
    const xi64 r = b * NW + (threadIdx.x >> 5);
    double acc = 0.0;
    xu64 err = XENT_NO_ERR;
    if (r < rows) {   /* uniform per warp */
        const xi64 o = r / inner, k = r - o * inner;
        const S* xr = x + o * sx_o + k * sx_i;
        const SL* ys = ysoft ? ysoft + o * sy_o + k * sy_i : (const SL*)0;
        S* gr = grad ? grad + o * C * inner + k : (S*)0;
        S* hr = hess ? hess + o * C * inner + k : (S*)0;
        const xi64 y = labels ? labels[r] : -1;
        const T wi = sw ? weight_at<T>(sw, sw_kind, r) : T(1);
        TeamWarp tm{lane};
        const T l = softmax_row(a, tm, r, xr, sx_c, labels != 0, y, ys, sy_c, gr, hr, inner, wi, err);
        if (lane == 0) {
            if (loss) loss[r] = l;
            acc = double(l);
        }
    }
    block_partial<NT>(rs, acc, err, part_sum, part_err, b);
}

/* One block per row: any strides, any C. */
template <typename T, typename S = T, typename SL = S>
__global__ void __launch_bounds__(256) xent_softmax_block(XENT_SOFTMAX_PARAMS) {
    using namespace xentk;
    constexpr int NT = 256;
    XENT_SHARED(ReduceScratch, rs);
    XENT_SHARED(TeamScratch, ts);
    XENT_ROW_ARGS
    const xi64 r = xi64(blockIdx.x) + block_offset;
    const int tid = threadIdx.x;
    double acc = 0.0;
    xu64 err = XENT_NO_ERR;
    {   /* r < rows always: one block per row */
        const xi64 o = r / inner, k = r - o * inner;
        const S* xr = x + o * sx_o + k * sx_i;
        const SL* ys = ysoft ? ysoft + o * sy_o + k * sy_i : (const SL*)0;
        S* gr = grad ? grad + o * C * inner + k : (S*)0;
        S* hr = hess ? hess + o * C * inner + k : (S*)0;
        const xi64 y = labels ? labels[r] : -1;
        const T wi = sw ? weight_at<T>(sw, sw_kind, r) : T(1);
        TeamBlock<NT> tm{&ts, tid};
        const T l = softmax_row(a, tm, r, xr, sx_c, labels != 0, y, ys, sy_c, gr, hr, inner, wi, err);
        if (tid == 0) {
            if (loss) loss[r] = l;
            acc = double(l);
        }
    }
    block_partial<NT>(rs, acc, err, part_sum, part_err, r);
}

/* ============================================================================================
 * Cross entropy from logits with integer labels and gamma = 0 (the common case): the on-chip
 * kernels (large C) and the few-classes kernel (C <= 32) on contiguous rows.
 * ========================================================================================== */
namespace xentk {

/* The end of a cross-entropy row from logits with an integer label y in [0, C) and gamma = 0,
 * shared by the on-chip and the few-classes kernels: c_j = eps/C cw_j + (j == y) (1 - eps) cw_y.
 * From s_rest, the smoothing sums over the classes (S_rest: all but jm, LD: c_j d_j) and the
 * label's gap d_y, ce_row_end's loss and constants, and c_y. */
template <typename T>
__device__ __forceinline__ CeRowEnd<T> ce_int_end(double s_rest, double S_rest, double LD, bool dense, T eps, T epsC,
                                                  const T* cwa, xi64 y, int jm, T gap_y, T wi) {
    const T cy = (T(1) - eps) * (cwa ? cwa[y] : T(1));
    double c_jm = dense ? double(epsC * (cwa ? cwa[jm] : T(1))) : 0.0;
    double S = dense ? S_rest + c_jm : 0.0;
    S += double(cy);
    if (y != jm) S_rest += double(cy);
    else c_jm += double(cy);
    LD += double(mul0(cy, gap_y));
    CeRowEnd<T> o = ce_row_end(s_rest, S, S_rest, c_jm, LD, T(log1p(s_rest)), wi);
    o.c_y = epsC * (cwa ? cwa[y] : T(1)) + cy;
    return o;
}

/* ds S / s rounded once from double: the gradient alone of a class other than y and jm without
 * smoothing, ds (S P - 0) with P = e / s, is e times it (one product a class instead of three, two
 * roundings instead of three). Loop-invariant: hoisted out of a caller's loop. Where it overflows
 * T (weights whose product does), e times it would be NaN for e = 0 and inf for tiny e, where the
 * CPU's ds (S P) is 0 or finite: ce_int_elem then takes that form. */
template <typename T> __device__ __forceinline__ T ce_plain_scale(const CeRowEnd<T>& fin, T ds) {
    return T(fin.S_s * double(ds));
}

/* Gradient and Hessian of class j from e = exp(x_j - m): with P = e / s, S P - c_j and
 * S P (1 - P), the exact forms at jm, the label's coefficient at y (`special`: j may be either);
 * times ds, through mul0 when ds may be 0 (DS0: a zero weight, or a mean over nothing). The label
 * y is in [0, C) here: an int, so that the compare a class is a 32-bit one. */
template <bool WG, bool WH, bool DENSE, bool DS0, typename T>
__device__ __forceinline__ void ce_int_elem(T e, int j, bool special, int jm, int y, const CeRowEnd<T>& fin, T ds,
                                            T epsC, const T* cwa, T& go, T& ho) {
    if (WG && !WH && !DENSE && !DS0 && !special) {   /* the gradient alone, without smoothing */
        const T sc = ce_plain_scale(fin, ds);
        if (sc < Lim<T>::inf()) {
            go = e * sc;
            return;
        }
    }
    const T p = e * fin.inv_s;
    const T c = DENSE ? epsC * (cwa ? cwa[j] : T(1)) : T(0);
    T gj = WG ? fin.ST * p - c : T(0);
    T hj = WH ? fin.ST * p * (T(1) - p) : T(0);
    if (special) {
        if (WG && j == y) gj = fin.ST * p - fin.c_y;
        if (j == jm) { gj = fin.g_jm; hj = fin.h_jm; }
    }
    if (WG) go = DS0 ? mul0(ds, gj) : ds * gj;
    if (WH) ho = DS0 ? mul0(ds, hj) : ds * hj;
}

/* On-chip kernels (C >= 512): a row, or with clusters a slice of C / K classes per block, is
 * read once from global memory into shared memory; the maximum, the exponentials (kept in place
 * of the logits) and the gradient then come from there. The per-element P_j = e_j * (1/s) is
 * computed in T (the CPU divides in double), within an ulp; the gradient alone without smoothing
 * takes e_j times ds S / s instead (ce_plain_scale, in ce_int_elem). Per-row partial sums go to
 * part_sum[row], the row's error key (label range) to part_err[row]. */
/* threads per block; the one-row kernels ask for at most 85 registers a thread
 * (__launch_bounds__(OC_NT, 3)), so that three blocks of 64 KiB slices share a multiprocessor */
constexpr int OC_NT = 256;

template <typename T, int VEC> struct __align__(sizeof(T) * VEC) Pack { T v[VEC]; };

/* Copy of one Pack from global to shared memory that does not wait for the data (cp.async,
 * sm_80+: no registers held, so a thread has all its copies of a slice in flight at once), and
 * the wait for all of this thread's copies; __syncthreads then makes every thread's visible.
 * On older GPUs a plain copy; the host emulator models cp.async (data lands at the wait). */
#if !defined(XENT_EMU) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define XENT_CP_ASYNC 1   /* the device has cp.async: the helpers below use it */
#else
#define XENT_CP_ASYNC 0
#endif
template <class P>
__device__ __forceinline__ void copy_to_shared(P* dst, const P* src) {
    static_assert(sizeof(P) == 4 || sizeof(P) == 8 || sizeof(P) == 16, "cp.async copies 4, 8 or 16 bytes");
#if XENT_CP_ASYNC
    unsigned d;
    asm volatile("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(d) : "l"(dst));
    if constexpr (sizeof(P) == 16)   /* cg: past L1, the data is read once */
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d), "l"(src) : "memory");
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2;" ::"r"(d), "l"(src), "n"(int(sizeof(P)))
                     : "memory");
#elif defined(XENT_EMU)
    ::emu::cp_async(dst, src, sizeof(P));
#else
    *dst = *src;
#endif
}
__device__ __forceinline__ void copy_to_shared_wait() {
#if XENT_CP_ASYNC
    asm volatile("cp.async.wait_all;" ::: "memory");
#elif defined(XENT_EMU)
    ::emu::cp_wait_all();
#endif
}
/* Groups, for the pipelined kernels: close the group of copies issued since the last commit; wait
 * for all groups but the newest. */
__device__ __forceinline__ void copy_to_shared_commit() {
#if XENT_CP_ASYNC
    asm volatile("cp.async.commit_group;" ::: "memory");
#elif defined(XENT_EMU)
    ::emu::cp_commit();
#endif
}
__device__ __forceinline__ void copy_to_shared_wait_prior() {
#if XENT_CP_ASYNC
    asm volatile("cp.async.wait_group 1;" ::: "memory");
#elif defined(XENT_EMU)
    ::emu::cp_wait_group(1);
#endif
}

constexpr int PIPE_NT = 1024;   /* threads per block of the pipelined kernels (one block per SM) */

template <int NT> struct OnchipScratch {
    double wm[NT / 32];
    int wj[NT / 32];
    int wn[NT / 32];
    double wd[3][NT / 32];
    double slot_max[3];    /* m, jm, nan of this block: read by the cluster */
    double slot_sum[3];    /* s_rest, S_rest, LD of this block */
    double slot_row[2];    /* pipelined kernels: the next row, from rank 0 (a slot per parity) */
};

/* What every on-chip kernel gets (x, grad and hess in the storage type S). */
template <typename T, typename S> struct OnchipParams {
    const S* x;
    xi64 sx_o;
    int C, chunk;          /* classes, and classes per block (a multiple of VEC) */
    const xi64* labels;
    const void* sw;
    int sw_kind;
    const T* cwa;
    xi64 ignore_index;
    int has_ignore;
    double eps, dscale;
    T* loss;
    S* grad;
    S* hess;
    double* part_sum;
    xu64* part_err;
};

#if XENT_CLUSTER && !defined(XENT_EMU)
__device__ __forceinline__ unsigned cluster_rank() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}
__device__ __forceinline__ void cluster_arrive() { asm volatile("barrier.cluster.arrive.aligned;" ::: "memory"); }
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.aligned;" ::: "memory"); }
/* Load a double from the same shared-memory variable of block `rank` of this cluster. */
__device__ __forceinline__ double cluster_load(const double* p, unsigned rank) {
    unsigned a, ra;
    double v;
    asm volatile("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(ra) : "r"(a), "r"(rank));
    asm volatile("ld.shared::cluster.f64 %0, [%1];" : "=d"(v) : "r"(ra) : "memory");
    return v;
}
#endif

/* The block's slice of a row: classes j0 .. j1 - 1, held in nv Packs from class ja = j0 - s, where
 * s is the place of the slice's first class in its 16-byte Pack (0 in rows of whole, aligned Packs;
 * _cuda.py takes VEC > 1 for other rows only where the gradient and Hessian rows have x's places).
 * Where s > 0 the first Pack, and where the slice ends inside a Pack the last one, is an edge Pack:
 * it also holds classes of the neighbouring slice or row, so it is copied, read and written class by
 * class (valid); the interior Packs qa .. qb - 1 whole. */
template <typename T, typename S, int VEC> struct OnchipSlice {
    int j0, j1, ja, nv, qa, qb;
    const Pack<S, VEC>* xs;
    Pack<S, VEC>* gs;
    Pack<S, VEC>* hs;
    __device__ __forceinline__ OnchipSlice(const OnchipParams<T, S>& p, xi64 row, int rank) {
        j0 = rank * p.chunk;
        j1 = (p.C - j0) < p.chunk ? p.C : j0 + p.chunk;
        if (j1 < j0) j1 = j0;   /* a cluster block past the row's end (chunk rounded up): no classes */
        const S* xr = p.x + row * p.sx_o + j0;
        const int sh = VEC > 1 ? int((reinterpret_cast<xu64>(xr) / sizeof(S)) % VEC) : 0;
        ja = j0 - sh;
        const int n = j1 > j0 ? j1 - ja : 0;
        nv = (n + VEC - 1) / VEC;
        qa = (sh > 0 && nv > 0) ? 1 : 0;
        qb = (n % VEC) ? nv - 1 : nv;
        xs = reinterpret_cast<const Pack<S, VEC>*>(xr - sh);
        gs = p.grad ? reinterpret_cast<Pack<S, VEC>*>(p.grad + row * xi64(p.C) + ja) : (Pack<S, VEC>*)0;
        hs = p.hess ? reinterpret_cast<Pack<S, VEC>*>(p.hess + row * xi64(p.C) + ja) : (Pack<S, VEC>*)0;
    }
    __device__ __forceinline__ bool valid(int j) const { return unsigned(j - j0) < unsigned(j1 - j0); }
};

template <bool B> struct BoolC { static constexpr bool value = B; };

/* f(q, edge) for this thread's Packs of slice sl, in index order: the head edge Pack (thread 0),
 * the interior ones (q = this thread's index mod NT, as for every Pack), the tail edge Pack (its
 * thread). edge: BoolC<true> for an edge Pack (where only the classes sl.valid count), else
 * BoolC<false>. In rows of whole Packs every Pack is interior: the loop of old. */
template <int NT, class SL, class F>
__device__ __forceinline__ void for_packs(const SL& sl, F&& f) {
    const int tid = threadIdx.x;
    if (sl.qa && tid == 0) f(0, BoolC<true>());
    for (int q = tid + (tid < sl.qa ? NT : 0); q < sl.qb; q += NT) f(q, BoolC<false>());
    if (sl.qb < sl.nv && sl.qb >= sl.qa && sl.qb % NT == tid) f(sl.qb, BoolC<true>());
}

/* Every class of the slice's gradient and Hessian set to v (ignored rows: 0; NaN rows: NaN). */
template <int NT, typename T, typename S, int VEC>
__device__ __forceinline__ void onchip_fill(const OnchipSlice<T, S, VEC>& sl, T v) {
    Pack<S, VEC> z;
#pragma unroll
    for (int l = 0; l < VEC; ++l) z.v[l] = v;
    for_packs<NT>(sl, [&](int q, auto edge) {
        if constexpr (decltype(edge)::value) {
#pragma unroll
            for (int l = 0; l < VEC; ++l) {
                if (!sl.valid(sl.ja + q * VEC + l)) continue;
                if (sl.gs) reinterpret_cast<S*>(sl.gs + q)[l] = v;
                if (sl.hs) reinterpret_cast<S*>(sl.hs + q)[l] = v;
            }
        } else {
            if (sl.gs) sl.gs[q] = z;
            if (sl.hs) sl.hs[q] = z;
        }
    });
}

/* Gradient / Hessian of a slice from the exponentials e_j = exp(x_j - m) kept in shared memory
 * (B = T: in place of the logits, or over them in a wide 16-bit slice), or, for a narrow 16-bit
 * slice (B = S), where an exponential does not fit the logit's two bytes, computed again from the
 * logit (the same softmax_exp, so the same bits; SAFE: softmax_exp_safe, for a row whose logits
 * are all gap_safe). Every class takes the common form;
 * then the two whose gradient has its own, the label y and the maximum jm (in that order: jm's
 * wins where y = jm), are written again by the thread that wrote their vector, which orders its
 * two stores to one address. */
template <bool WG, bool WH, bool DENSE, bool DS0, bool SAFE, int NT, typename T, typename S, int VEC, typename B>
__device__ __forceinline__ void onchip_write(const Pack<B, VEC>* buf, const OnchipSlice<T, S, VEC>& sl, T m, int jm,
                                             int y, const CeRowEnd<T>& fin, T ds, T epsC, const T* cwa) {
    constexpr bool KEEP = SameType<B, T>::value;
    Pack<S, VEC>* const gs = sl.gs;
    Pack<S, VEC>* const hs = sl.hs;
    /* e_j: kept in buf, or computed again from the logit x_j */
    auto exp_of = [&](T x, int j) {
        return KEEP ? x : SAFE ? softmax_exp_safe(x, m) : (j == jm ? T(1) : softmax_exp(x, m));
    };
    for_packs<NT>(sl, [&](int q, auto edge) {
        constexpr bool E = decltype(edge)::value;   /* an edge Pack: its classes stored one by one */
        const Pack<B, VEC> ev = buf[q];
        Pack<S, VEC> go, ho;
        const int jb = sl.ja + q * VEC;
#pragma unroll
        for (int l = 0; l < VEC; ++l) {
            if (E && !sl.valid(jb + l)) continue;
            T g = T(0), h = T(0);
            ce_int_elem<WG, WH, DENSE, DS0>(exp_of(T(ev.v[l]), jb + l), jb + l, false, jm, y, fin, ds, epsC, cwa, g, h);
            if (E) {
                if (WG) reinterpret_cast<S*>(gs + q)[l] = g;
                if (WH) reinterpret_cast<S*>(hs + q)[l] = h;
            } else {
                if (WG) go.v[l] = g;
                if (WH) ho.v[l] = h;
            }
        }
        if (!E) {
            if (WG) gs[q] = go;
            if (WH) hs[q] = ho;
        }
    });
#pragma unroll
    for (int k = 0; k < 2; ++k) {
        const int j = k == 0 ? y : jm;
        if ((k == 0 && y == jm) || !sl.valid(j)) continue;
        const int q = (j - sl.ja) / VEC;
        if (q % NT != int(threadIdx.x)) continue;
        const int l = (j - sl.ja) - q * VEC;
        T g = T(0), h = T(0);
        ce_int_elem<WG, WH, DENSE, DS0>(exp_of(T(buf[q].v[l]), j), j, true, jm, y, fin, ds, epsC, cwa, g, h);
        if (WG) reinterpret_cast<S*>(gs + q)[l] = g;
        if (WH) reinterpret_cast<S*>(hs + q)[l] = h;
    }
}

/* Wide 16-bit slices (WIDE: S of two bytes, VEC > 1, so 16-byte Packs of 8 logits): the block's
 * shared memory keeps the exponentials in float as for float32 rows, so the gradient pass needs no
 * second exponential. Each segment of 32 Packs (the Packs a warp's lanes take in one trip of the
 * loops below, q = 32 s + lane) has 1 KiB: its 32 Packs of 8 floats (Pack<T, VEC> index q),
 * whose upper half holds the segment's 32 logit Packs until they are replaced (Pack<S, VEC> index
 * wide_at(q)). The exponential of lane l lands on the logits of lanes 2 l - 32 and 2 l - 31 of its
 * own segment, so a warp reads all its logits before any lane writes (__syncwarp), and no other
 * warp ever touches the segment: no block-wide barrier. */
__device__ __forceinline__ int wide_at(int q) { return q + (q & ~31) + 32; }
template <bool WIDE> __device__ __forceinline__ int logit_at(int q) { return WIDE ? wide_at(q) : q; }

/* Pass 2 of an on-chip row over the block's slice: s_rest's part (ls), and with label smoothing
 * (DENSE) the parts of S_rest (lsr) and LD (lld); where S = T or the slice is wide (KEEP), each
 * exponential replaces its logit in buf (1 at jm), in T. SAFE: every logit of the row is gap_safe
 * (softmax_exp_safe, the same bits, e = 1 at jm already); then only the vector that holds jm takes
 * its 1 out of the sum. */
template <bool SAFE, bool DENSE, bool WIDE, int NT, typename T, typename S, int VEC>
__device__ __forceinline__ void onchip_exps(Pack<S, VEC>* buf, const OnchipSlice<T, S, VEC>& sl, T m, int jm, T epsC,
                                            const T* cwa, double& ls, double& lsr, double& lld) {
    constexpr bool KEEP = WIDE || SameType<S, T>::value;   /* only S = T or a wide slice keeps them */
    Pack<T, VEC>* const ebuf = reinterpret_cast<Pack<T, VEC>*>(buf);   /* KEEP: where they go */
    /* v by value: one 16-byte load, not one per element; edge: only the classes sl.valid count */
    auto vector = [&](const Pack<S, VEC> v, int q, auto edge) {
        constexpr bool E = decltype(edge)::value;
        const int jb = sl.ja + q * VEC;
        T ex[VEC];
#pragma unroll
        for (int l = 0; l < VEC; ++l) {
            const int j = jb + l;
            const T x = T(v.v[l]);
            if (SAFE) {
                ex[l] = softmax_exp_safe(x, m);
            } else {
                const T e = softmax_exp(x, m);
                ex[l] = (j != jm) ? e : T(0);
            }
            if (E && !sl.valid(j)) {
                ex[l] = T(0);
                continue;
            }
            if (DENSE) {
                const T c = epsC * (cwa ? cwa[j] : T(1));
                if (j != jm) lsr += double(c);
                lld += double(mul0(c, softmax_gap(x, m)));
            }
        }
        if constexpr (KEEP) {
            Pack<T, VEC> ev;
#pragma unroll
            for (int l = 0; l < VEC; ++l) ev.v[l] = (SAFE || jb + l != jm) ? ex[l] : T(1);
            ebuf[q] = ev;
        }
        if (SAFE && unsigned(jm - jb) < unsigned(VEC)) {
#pragma unroll
            for (int l = 0; l < VEC; ++l) ex[l] = (jb + l != jm) ? ex[l] : T(0);
        }
        /* a vector's exponentials are added in T first (at most log2(VEC) roundings of 2^-24 for
         * float), then into the double row sum */
        if (VEC == 8)
            ls += double(((ex[0] + ex[1 % VEC]) + (ex[2 % VEC] + ex[3 % VEC]))
                         + ((ex[4 % VEC] + ex[5 % VEC]) + (ex[6 % VEC] + ex[7 % VEC])));
        else if (VEC == 4) ls += double((ex[0] + ex[1 % VEC]) + (ex[2 % VEC] + ex[3 % VEC]));
        else if (VEC == 2) ls += double(ex[0] + ex[1 % VEC]);
        else ls += double(ex[0]);
    };
    if constexpr (WIDE) {
        static_assert(NT % 32 == 0, "a trip takes whole segments");
        const int lane = threadIdx.x & 31;
        const Pack<S, VEC>* src = buf + wide_at(threadIdx.x);   /* wide_at(q + NT) = wide_at(q) + 2 NT */
        const int nv = sl.nv;
        for (int q = threadIdx.x; q - lane < nv; q += NT, src += 2 * NT) {   /* the whole warp takes each trip */
            Pack<S, VEC> v;
            if (q < nv) v = *src;
            __syncwarp();   /* the segment's logits all read before its exponentials replace them */
            if (q < nv) {   /* (each thread's Packs in index order, as for_packs takes them) */
                if (q < sl.qa || q >= sl.qb) vector(v, q, BoolC<true>());
                else vector(v, q, BoolC<false>());
            }
        }
    } else {
        for_packs<NT>(sl, [&](int q, auto edge) { vector(buf[q], q, edge); });
    }
}

/* A row's label y: false, with everything the row gets written, when the row is ignored or its
 * label lies outside [0, C) (reported with the row's first flat index; _cuda.py reads the label
 * itself). The same answer in every block of a cluster, which then all skip the row. */
template <typename T, typename S, int VEC, int NT>
__device__ __forceinline__ bool onchip_row_start(const OnchipParams<T, S>& p, xi64 row, int rank, xi64 y) {
    const bool first = (rank == 0 && threadIdx.x == 0);
    const bool ignored = p.has_ignore && y == p.ignore_index;
    const bool bad_label = !ignored && !(y >= 0 && y < p.C);
    if (first) p.part_err[row] = bad_label ? err_key(row * xi64(p.C), ERR_LABEL_RANGE) : XENT_NO_ERR;
    if (bad_label) {   /* only the error counts: no outputs */
        if (first) p.part_sum[row] = 0.0;
        return false;
    }
    if (ignored) {
        onchip_fill<NT>(OnchipSlice<T, S, VEC>(p, row, rank), T(0));
        if (first) {
            if (p.loss) p.loss[row] = T(0);
            p.part_sum[row] = 0.0;
        }
        return false;
    }
    return true;
}

/* 16-bit slices taken an element at a time (VEC = 1: rows not 16-byte aligned, an odd C, say)
 * are copied as 4-byte words, which cp.async takes, with a lone element at either end where the
 * slice starts or ends inside a word. In shared memory the slice then sits at the same place
 * within a word as in global memory: one element into its stage where it starts two bytes into a
 * word (onchip_shift), so a stage holds chunk + 2 elements, an even number (onchip_stage, in
 * Packs; _cuda.py sizes the shared memory alike). A stage of 16-byte Packs holds one more than
 * chunk / VEC, for a slice that starts inside a Pack (OnchipSlice). */
template <typename S, int VEC> struct OnchipWords {
    static constexpr bool value = sizeof(S) == 2 && VEC == 1;
};
template <typename S, int VEC> __device__ __forceinline__ int onchip_stage(int chunk) {
    return OnchipWords<S, VEC>::value ? ((chunk + 2) & ~1) : VEC > 1 ? chunk / VEC + 1 : chunk;
}
template <typename T, typename S, int VEC>
__device__ __forceinline__ int onchip_shift(const OnchipParams<T, S>& p, xi64 row, int rank) {
    if constexpr (OnchipWords<S, VEC>::value)
        return int((reinterpret_cast<xu64>(p.x + row * p.sx_o + xi64(rank) * p.chunk) >> 1) & 1);
    return 0;
}

/* The copies of the block's slice of a row into buf (shifted by onchip_shift; WIDE: a wide slice),
 * not waited for. */
template <typename T, typename S, int VEC, int NT, bool WIDE = false>
__device__ __forceinline__ void onchip_issue(const OnchipParams<T, S>& p, xi64 row, int rank, Pack<S, VEC>* buf) {
    const OnchipSlice<T, S, VEC> sl(p, row, rank);
    if constexpr (OnchipWords<S, VEC>::value) {
        const S* src = reinterpret_cast<const S*>(sl.xs);
        S* dst = reinterpret_cast<S*>(buf);
        const int n = sl.nv, head = onchip_shift<T, S, VEC>(p, row, rank);
        const int nw = n > head ? (n - head) >> 1 : 0;
        const unsigned* ws = reinterpret_cast<const unsigned*>(src + head);
        unsigned* wd = reinterpret_cast<unsigned*>(dst + head);
        for (int q = threadIdx.x; q < nw; q += NT) copy_to_shared(wd + q, ws + q);
        if (n > 0 && threadIdx.x == NT - 1) {   /* the lone ends: plain copies */
            if (head) dst[0] = src[0];
            if ((n - head) & 1) dst[n - 1] = src[n - 1];
        }
    } else {   /* whole Packs by cp.async; an edge Pack's classes of the slice one by one */
        for_packs<NT>(sl, [&](int q, auto edge) {
            if constexpr (decltype(edge)::value) {
                S* d = reinterpret_cast<S*>(buf + logit_at<WIDE>(q));
                const S* x = reinterpret_cast<const S*>(sl.xs + q);
#pragma unroll
                for (int l = 0; l < VEC; ++l)
                    if (sl.valid(sl.ja + q * VEC + l)) d[l] = x[l];
            } else {
                copy_to_shared(buf + logit_at<WIDE>(q), sl.xs + q);
            }
        });
    }
}

/* A row (label y in [0, C)) from its slice in buf (WIDE: a wide slice), filled and visible to
 * every thread. */
template <typename T, typename S, int K, int VEC, int NT, bool WIDE = false>
__device__ __forceinline__ void onchip_row_body(const OnchipParams<T, S>& pa, xi64 row, int rank, xi64 y,
                                                Pack<S, VEC>* buf, OnchipScratch<NT>& sc) {
    typedef Pack<S, VEC> P;
    static_assert(!WIDE || (sizeof(S) == 2 && VEC > 1 && SameType<T, float>::value), "wide: 16-bit Packs");
    /* the exponentials kept in shared memory (in place of the logits, or over them in a wide slice) */
    constexpr bool KEEP = SameType<S, T>::value || WIDE;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    constexpr int NW = NT / 32;
    const OnchipSlice<T, S, VEC> sl(pa, row, rank);
    const int C = pa.C;
    const T* cwa = pa.cwa;
    const S* xrow = pa.x + row * pa.sx_o;
    T* loss = pa.loss;
    double* part_sum = pa.part_sum;
    const bool first = (rank == 0 && tid == 0);
    const T eps = T(pa.eps);
    const T wi = pa.sw ? weight_at<T>(pa.sw, pa.sw_kind, row) : T(1);
    const T ds = wi * T(pa.dscale);
    const bool dense = eps != T(0);   /* label smoothing: every class has a coefficient */

    /* 1. the slice's maximum and first index: strictly greater replaces (NaN never does), so a
     *    thread keeps its first maximum; a thread that saw only -inf keeps no index (0x7fffffff,
     *    which loses every comparison below), and a row of -inf alone gets index 0 at the end.
     *    Each thread notes whether it saw a logit outside gap_safe (NaN, an infinity, a huge
     *    one), and only then looks for a NaN among its logits again: the flags are bit 0 (NaN)
     *    and bit 1 (not gap_safe) of the row's code. */
    T m = -Lim<T>::inf();
    int jm = 0x7fffffff;
    bool odd = false;
    for_packs<NT>(sl, [&](int q, auto edge) {   /* (an edge Pack's classes of other slices: -inf) */
        constexpr bool E = decltype(edge)::value;
        const P v = buf[logit_at<WIDE>(q)];
#pragma unroll
        for (int l = 0; l < VEC; ++l) {
            const int j = sl.ja + q * VEC + l;
            const bool ok = !E || sl.valid(j);
            const T t = ok ? T(v.v[l]) : -Lim<T>::inf();
            odd = odd || (ok && !gap_safe(t));
            const bool gt = t > m;
            m = gt ? t : m;
            jm = gt ? j : jm;
        }
    });
    bool nan = false;
    if (odd) {
        for_packs<NT>(sl, [&](int q, auto edge) {
            constexpr bool E = decltype(edge)::value;
            const P v = buf[logit_at<WIDE>(q)];
#pragma unroll
            for (int l = 0; l < VEC; ++l)
                nan = nan || ((!E || sl.valid(sl.ja + q * VEC + l)) && T(v.v[l]) != T(v.v[l]));
        });
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        T om = __shfl_xor_sync(XENT_FULL_MASK, m, o);
        int oj = __shfl_xor_sync(XENT_FULL_MASK, jm, o);
        if (argmax_better(om, xi64(oj), m, xi64(jm))) { m = om; jm = oj; }
    }
    const int code = (__any_sync(XENT_FULL_MASK, nan) ? 1 : 0) | (__any_sync(XENT_FULL_MASK, odd) ? 2 : 0);
    if (lane == 0) { sc.wm[warp] = double(m); sc.wj[warp] = jm; sc.wn[warp] = code; }
    __syncthreads();
    if (tid == 0) {
        T bm = T(sc.wm[0]);
        int bj = sc.wj[0], bn = sc.wn[0];
        for (int w = 1; w < NW; ++w) {
            const T om = T(sc.wm[w]);
            const int oj = sc.wj[w];
            if (argmax_better(om, xi64(oj), bm, xi64(bj))) { bm = om; bj = oj; }
            bn |= sc.wn[w];
        }
        sc.slot_max[0] = double(bm); sc.slot_max[1] = double(bj); sc.slot_max[2] = double(bn);
    }
    /* the row's maximum: this block's, or the cluster's blocks combined in rank order */
    int row_code = 0;
    if constexpr (K == 1) {
        __syncthreads();
        m = T(sc.slot_max[0]); jm = int(sc.slot_max[1]); row_code = int(sc.slot_max[2]);
    } else {
#if XENT_CLUSTER
        cluster_arrive();
        cluster_wait();
        m = T(cluster_load(&sc.slot_max[0], 0));
        jm = int(cluster_load(&sc.slot_max[1], 0));
        row_code = int(cluster_load(&sc.slot_max[2], 0));
#pragma unroll
        for (int k = 1; k < K; ++k) {
            const T om = T(cluster_load(&sc.slot_max[0], k));
            const int oj = int(cluster_load(&sc.slot_max[1], k));
            if (argmax_better(om, xi64(oj), m, xi64(jm))) { m = om; jm = oj; }
            row_code |= int(cluster_load(&sc.slot_max[2], k));
        }
#endif
    }
    nan = (row_code & 1) != 0;
    const bool safe = row_code == 0;   /* every logit of the row gap_safe: softmax_exp_safe */
    if (jm == 0x7fffffff) jm = 0;   /* every class -inf (or NaN: then jm is not used) */

    /* 2. s_rest = sum_{j != jm} exp(x_j - m); with label smoothing also the sums of
     *    c_j = eps/C cw_j over the classes (S_rest) and of c_j d_j (LD). Each exponential
     *    replaces its logit in shared memory (1 at jm), for the gradient pass: one exp per
     *    element, the corrected one of softmax_exp (as the CPU, which keeps them in the row).
     *    A narrow 16-bit slice keeps the logits (onchip_write computes the exponentials again);
     *    a wide one takes the exponentials in float over them. */
    const T epsC = eps / T(C);
    double s_rest = 0.0, S_rest = 0.0, LD = 0.0;
    if (!nan) {
        double ls = 0.0, lsr = 0.0, lld = 0.0;
#define XENT_OC_EXPS(SAFE, DN) onchip_exps<SAFE, DN, WIDE, NT>(buf, sl, m, jm, epsC, cwa, ls, lsr, lld)
        if (safe) {
            if (dense) XENT_OC_EXPS(true, true);
            else XENT_OC_EXPS(true, false);
        } else {
            if (dense) XENT_OC_EXPS(false, true);
            else XENT_OC_EXPS(false, false);
        }
#undef XENT_OC_EXPS
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            ls += __shfl_xor_sync(XENT_FULL_MASK, ls, o);
            lsr += __shfl_xor_sync(XENT_FULL_MASK, lsr, o);
            lld += __shfl_xor_sync(XENT_FULL_MASK, lld, o);
        }
        if (lane == 0) { sc.wd[0][warp] = ls; sc.wd[1][warp] = lsr; sc.wd[2][warp] = lld; }
        __syncthreads();
        if (tid == 0) {
            double t0 = sc.wd[0][0], t1 = sc.wd[1][0], t2 = sc.wd[2][0];
            for (int w = 1; w < NW; ++w) { t0 += sc.wd[0][w]; t1 += sc.wd[1][w]; t2 += sc.wd[2][w]; }
            sc.slot_sum[0] = t0; sc.slot_sum[1] = t1; sc.slot_sum[2] = t2;
        }
    }
    if constexpr (K == 1) {
        __syncthreads();
        if (!nan) { s_rest = sc.slot_sum[0]; S_rest = sc.slot_sum[1]; LD = sc.slot_sum[2]; }
    } else {
#if XENT_CLUSTER
        cluster_arrive();
        cluster_wait();
        if (!nan) {
#pragma unroll
            for (int k = 0; k < K; ++k) {
                s_rest += cluster_load(&sc.slot_sum[0], k);
                S_rest += cluster_load(&sc.slot_sum[1], k);
                LD += cluster_load(&sc.slot_sum[2], k);
            }
        }
        cluster_arrive();   /* done reading the other blocks' shared memory */
#endif
    }

    /* 3. the loss and the gradient / Hessian */
    P* const gs = sl.gs;
    P* const hs = sl.hs;
    if (nan) {
        const T q = Lim<T>::nan();
        onchip_fill<NT>(sl, q);
        if (first) {
            if (loss) loss[row] = q;
            part_sum[row] = double(q);
        }
    } else {
        const T gap_y = first ? softmax_gap(T(xrow[y]), m) : T(0);   /* only the first thread's loss counts */
        const CeRowEnd<T> fin = ce_int_end(s_rest, S_rest, LD, dense, eps, epsC, cwa, y, jm, gap_y, wi);
        if (first) {
            if (loss) loss[row] = fin.loss;
            part_sum[row] = double(fin.loss);
        }
        if (gs || hs) {
#define XENT_OC_WRITE(WG, WH, DN, D0)                                                                      \
    do {                                                                                                      \
        if constexpr (KEEP)                                                                                   \
            onchip_write<WG, WH, DN, D0, false, NT, T, S, VEC>(reinterpret_cast<const Pack<T, VEC>*>(buf), sl, m, jm, \
                                                               int(y), fin, ds, epsC, cwa);                   \
        else if (!safe)                                                                                       \
            onchip_write<WG, WH, DN, D0, false, NT, T, S, VEC>(buf, sl, m, jm, int(y), fin, ds, epsC, cwa);    \
        else                                                                                                  \
            onchip_write<WG, WH, DN, D0, true, NT, T, S, VEC>(buf, sl, m, jm, int(y), fin, ds, epsC, cwa);     \
    } while (0)
            if (ds == T(0)) {   /* rare (zero weight, mean over nothing): the general loop */
                if (gs && hs) XENT_OC_WRITE(true, true, true, true);
                else if (gs) XENT_OC_WRITE(true, false, true, true);
                else XENT_OC_WRITE(false, true, true, true);
            } else if (dense) {
                if (gs && hs) XENT_OC_WRITE(true, true, true, false);
                else if (gs) XENT_OC_WRITE(true, false, true, false);
                else XENT_OC_WRITE(false, true, true, false);
            } else {
                if (gs && hs) XENT_OC_WRITE(true, true, false, false);
                else if (gs) XENT_OC_WRITE(true, false, false, false);
                else XENT_OC_WRITE(false, true, false, false);
            }
#undef XENT_OC_WRITE
        }
    }
#if XENT_CLUSTER
    if constexpr (K > 1) cluster_wait();   /* no block leaves while another may still read its slots */
#endif
}

/* One row per block (or per cluster of K blocks): the slice is copied in, then processed (WIDE: a
 * wide 16-bit slice). */
template <typename T, typename S, int K, int VEC, bool WIDE>
__device__ __forceinline__ void onchip_one_row(const OnchipParams<T, S>& p, xi64 row, int rank) {
    XENT_DYN_SHARED(dyn);
    XENT_SHARED(OnchipScratch<OC_NT>, sc);
    Pack<S, VEC>* buf = reinterpret_cast<Pack<S, VEC>*>(dyn) + onchip_shift<T, S, VEC>(p, row, rank);
    const xi64 y = p.labels[row];
    if (!onchip_row_start<T, S, VEC, OC_NT>(p, row, rank, y)) return;
    onchip_issue<T, S, VEC, OC_NT, WIDE>(p, row, rank, buf);   /* every copy of the slice in flight at once */
    copy_to_shared_wait();
    __syncthreads();
    onchip_row_body<T, S, K, VEC, OC_NT, WIDE>(p, row, rank, y, buf, sc);
}

/* The next row for this block (or cluster): taken from the launch's row counter by rank 0 and
 * handed to the cluster through a slot of its shared memory. Slots alternate by parity: a slot is
 * written again two rows later, when every block has passed the next row's barrier and so has
 * read it. */
template <int K, int NT>
__device__ __forceinline__ xi64 onchip_take_row(xu64* counter, OnchipScratch<NT>& sc, int rank, int parity) {
    if (rank == 0 && threadIdx.x == 0) sc.slot_row[parity] = double(atomicAdd(counter, 1ULL));
    if constexpr (K == 1) {
        __syncthreads();
        return xi64(sc.slot_row[parity]);
    } else {
#if XENT_CLUSTER
        cluster_arrive();
        cluster_wait();
        return xi64(cluster_load(&sc.slot_row[parity], 0));
#else
        return 0;
#endif
    }
}

/* Pipelined: persistent blocks (clusters) take rows from a counter until none is left, with two
 * slice buffers: the next row's copies are in flight while this row is worked on, so global
 * memory is read and written all the time. Which block takes which row does not change any
 * result: a row's sums depend only on the row. */
template <typename T, typename S, int K, int VEC>
__device__ __forceinline__ void onchip_pipe(const OnchipParams<T, S>& p, xi64 rows, xu64* counter, int rank) {
    typedef Pack<S, VEC> P;
    XENT_DYN_SHARED(dyn);
    XENT_SHARED(OnchipScratch<PIPE_NT>, sc);
    P* const buf0 = reinterpret_cast<P*>(dyn);
    P* const buf1 = buf0 + onchip_stage<S, VEC>(p.chunk);
    int parity = 0, cur = 0;
    xi64 row = onchip_take_row<K, PIPE_NT>(counter, sc, rank, parity);
    parity ^= 1;
    xi64 y = row < rows ? p.labels[row] : 0;
    bool live = row < rows && onchip_row_start<T, S, VEC, PIPE_NT>(p, row, rank, y);
    if (live) onchip_issue<T, S, VEC, PIPE_NT>(p, row, rank, buf0 + onchip_shift<T, S, VEC>(p, row, rank));
    copy_to_shared_commit();
    while (row < rows) {
        const xi64 next = onchip_take_row<K, PIPE_NT>(counter, sc, rank, parity);
        parity ^= 1;
        const xi64 ny = next < rows ? p.labels[next] : 0;
        const bool nlive = next < rows && onchip_row_start<T, S, VEC, PIPE_NT>(p, next, rank, ny);
        /* the other buffer was last read by the previous row, which every thread has finished */
        if (nlive) {
            P* const nbuf = (cur ? buf0 : buf1) + onchip_shift<T, S, VEC>(p, next, rank);
            onchip_issue<T, S, VEC, PIPE_NT>(p, next, rank, nbuf);
        }
        copy_to_shared_commit();
        copy_to_shared_wait_prior();   /* this row's copies (all but the newest group) */
        __syncthreads();
        if (live) {
            P* const buf = (cur ? buf1 : buf0) + onchip_shift<T, S, VEC>(p, row, rank);
            onchip_row_body<T, S, K, VEC, PIPE_NT>(p, row, rank, y, buf, sc);
        }
        __syncthreads();
        row = next;
        y = ny;
        live = nlive;
        cur ^= 1;
    }
    copy_to_shared_wait();
#if XENT_CLUSTER
    /* the last row number came from rank 0's shared memory: it stays until every block has it */
    if constexpr (K > 1) {
        cluster_arrive();
        cluster_wait();
    }
#endif
}

}  // namespace xentk

#define XENT_ONCHIP_PARAMS                                                                         \
    const S* __restrict__ x, xi64 sx_o, int C, int chunk, const xi64* __restrict__ labels,          \
    const void* __restrict__ sw, int sw_kind, const T* __restrict__ cwa, xi64 ignore_index,          \
    int has_ignore, double eps, double dscale, const xu64* __restrict__ pre, T* __restrict__ loss,   \
    S* __restrict__ grad, S* __restrict__ hess,                                                     \
    double* __restrict__ part_sum, xu64* __restrict__ part_err

#define XENT_ONCHIP_STRUCT                                                                         \
    const xentk::OnchipParams<T, S> p{x, sx_o, C, chunk, labels, sw, sw_kind, cwa, ignore_index, has_ignore, eps, \
                                   xentk::mean_scale_at(dscale, pre), loss, grad, hess, part_sum, part_err};

#ifdef XENT_EMU
#define XENT_CLUSTER_RANK(K) int(blockIdx.x % (K))
#else
#define XENT_CLUSTER_RANK(K) int(xentk::cluster_rank())
#endif

template <typename T, int VEC, typename S = T, bool WIDE = false>
__global__ void __launch_bounds__(xentk::OC_NT, 3) xent_onchip(XENT_ONCHIP_PARAMS, xi64 row_offset) {
    XENT_ONCHIP_STRUCT
    xentk::onchip_one_row<T, S, 1, VEC, WIDE>(p, xi64(blockIdx.x) + row_offset, 0);
}

template <typename T, int VEC, typename S = T>
__global__ void __launch_bounds__(xentk::PIPE_NT, 1) xent_onchip_pipe(XENT_ONCHIP_PARAMS, xi64 rows, xu64* counter) {
    XENT_ONCHIP_STRUCT
    xentk::onchip_pipe<T, S, 1, VEC>(p, rows, counter, 0);
}

#if XENT_CLUSTER
template <typename T, int K, int VEC, typename S = T, bool WIDE = false>
__global__ void __cluster_dims__(K, 1, 1) __launch_bounds__(xentk::OC_NT, 3)
xent_onchip_cl(XENT_ONCHIP_PARAMS, xi64 row_offset) {
    XENT_ONCHIP_STRUCT
    xentk::onchip_one_row<T, S, K, VEC, WIDE>(p, xi64(blockIdx.x / K) + row_offset, XENT_CLUSTER_RANK(K));
}

template <typename T, int K, int VEC, typename S = T>
__global__ void __cluster_dims__(K, 1, 1) __launch_bounds__(xentk::PIPE_NT, 1)
xent_onchip_pipe_cl(XENT_ONCHIP_PARAMS, xi64 rows, xu64* counter) {
    XENT_ONCHIP_STRUCT
    xentk::onchip_pipe<T, S, K, VEC>(p, rows, counter, XENT_CLUSTER_RANK(K));
}
#endif

/* Few classes (C <= CMAX <= 32): cross entropy from logits, integer labels, gamma = 0, contiguous
 * rows (class stride 1, row stride C). One thread per row and a warp per 32 consecutive rows:
 * the warp reads its rows' 32 C logits with coalesced loads (all in flight at once) into its own
 * shared memory, each lane takes its row into registers and computes each exponential once, and
 * the gradient (then the Hessian) goes back out through the same shared memory with coalesced
 * stores. Warps wait for each other only at the block's partial sum. In shared memory a row
 * takes an odd number P of slots, so that the 32 lanes reading their rows hit 32 banks.
 * Dynamic shared memory: 8 warps x 32 rows x P elements of T (16-bit logits are converted as they
 * are loaded, the gradient rounded as it is stored). */
namespace xentk {

/* Shared-memory slot of element q = k * 32 + lane of a warp's 32 x C block (row q / C, class
 * q % C, P slots a row): q + (q / C) (P - C), the quotient as (q M) >> 16 with M = ceil(2^16 / C),
 * exact for every q < 1024 and C <= 32 (checked exhaustively). Each k's slot is computed on its
 * own, not stepped from the previous one: a chain of steps the compiler runs for all CMAX k up
 * front and keeps in local memory. */
struct SmallSlots {
    int lane, M, pad;
    __device__ __forceinline__ SmallSlots(int lane_, int C, int P) : lane(lane_), M((65536 + C - 1) / C), pad(P - C) {}
    __device__ __forceinline__ int slot(int k) const {
        const int q = k * 32 + lane;
        return q + pad * ((q * M) >> 16);
    }
};

/* The warp's cnt = nr C elements from xw[lane + 32 k] into its shared block (row-major, P slots a
 * row), every load in flight before the first store. The loops stop at C (a uniform branch, none
 * where C is a constant); FULL: a warp of 32 rows (cnt = 32 C), whose first C k are all its
 * elements, so that no element needs a test. */
template <int CMAX, bool FULL = false, typename T, typename S>
__device__ __forceinline__ void small_load(const S* xw, int lane, int C, int P, int cnt, T* buf) {
    T v[CMAX];
#pragma unroll
    for (int k = 0; k < CMAX; ++k) {
        if (k >= C) break;
        v[k] = (FULL || k * 32 + lane < cnt) ? T(xw[k * 32]) : T(0);
    }
    const SmallSlots sl(lane, C, P);
#pragma unroll
    for (int k = 0; k < CMAX; ++k) {
        if (k >= C) break;
        if (FULL || k * 32 + lane < cnt) buf[sl.slot(k)] = v[k];
    }
}

/* The reverse: the warp's shared block out to ow[lane + 32 k], coalesced (16-bit storage rounded
 * as it is stored). */
template <int CMAX, bool FULL = false, typename T, typename S>
__device__ __forceinline__ void small_store(S* ow, int lane, int C, int P, int cnt, const T* buf) {
    const SmallSlots sl(lane, C, P);
#pragma unroll
    for (int k = 0; k < CMAX; ++k) {
        if (k >= C) break;
        if (FULL || k * 32 + lane < cnt) ow[k * 32] = buf[sl.slot(k)];
    }
}

}  // namespace xentk

template <typename T, int CMAX, typename S = T>
__global__ void __launch_bounds__(256, (CMAX * sizeof(T) <= 64 ? 3 : 2)) xent_softmax_small(
        const S* __restrict__ x, int C, xi64 rows, const xi64* __restrict__ labels, const void* __restrict__ sw,
        int sw_kind, const T* __restrict__ cwa, xi64 ignore_index, int has_ignore, double eps, double dscale,
        const xu64* __restrict__ pre,
        T* __restrict__ loss, S* __restrict__ grad, S* __restrict__ hess, double* __restrict__ part_sum,
        xu64* __restrict__ part_err, xi64 block_offset) {
    using namespace xentk;
    constexpr int NT = 256, NW = NT / 32;
    const double dsc = mean_scale_at(dscale, pre);
    XENT_SHARED(ReduceScratch, rs);
    XENT_DYN_SHARED(dyn);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int P = C | 1;
    T* buf = reinterpret_cast<T*>(dyn) + warp * 32 * P;
    const xi64 b = xi64(blockIdx.x) + block_offset;
    const xi64 r0 = (b * NW + warp) * 32;   /* the warp's first row */
    const int nr = int(rows - r0 < 32 ? (rows - r0 > 0 ? rows - r0 : 0) : 32);
    double acc = 0.0;
    xu64 err = XENT_NO_ERR;
    if (nr > 0) {   /* uniform across the warp */
        const int cnt = nr * C;
        const xi64 base = r0 * C;
        const bool active = lane < nr;
        const xi64 r = r0 + lane;
        /* the label and weight loads go out with the logits' (none depends on another) */
        const xi64 y = active ? labels[r] : xi64(0);
        const T wi = (sw && active) ? weight_at<T>(sw, sw_kind, r) : T(1);
        small_load<CMAX>(x + base + lane, lane, C, P, cnt, buf);   /* the warp's logits */
        __syncwarp();
        T* row = buf + lane * P;
        T e[CMAX];
        T m = -Lim<T>::inf();
        int jm = -1;
        bool nan = false;
#pragma unroll
        for (int k = 0; k < CMAX; ++k) {
            if (k >= C) break;
            const T t = active ? row[k] : T(0);
            e[k] = t;
            nan = nan || t != t;
            const bool gt = t > m;   /* the first maximum (NaN never replaces one) */
            m = gt ? t : m;
            jm = gt ? k : jm;
        }
        if (jm < 0) jm = 0;   /* every class -inf (or NaN: then the row is not live) */
        const bool ignored = has_ignore && y == ignore_index;
        const bool bad = active && !ignored && !(y >= 0 && y < C);
        if (bad) err = err_key(r * xi64(C), ERR_LABEL_RANGE);
        const bool live = active && !ignored && !bad && !nan;
        const int yi = int(y);   /* the label where it counts (live rows: in [0, C)), compared in 32 bits */
        const T ds = wi * T(dsc);
        const T eps_ = T(eps), epsC = eps_ / T(C);
        const bool dense = eps_ != T(0);   /* uniform */
        CeRowEnd<T> fin;
        fin.loss = T(0);
        if (live) {
            /* s_rest = sum_{j != jm} exp(x_j - m); smoothing sums as in the on-chip kernel */
            double s_rest = 0.0, S_rest = 0.0, LD = 0.0;
            T gap_y = T(0);
#pragma unroll
            for (int k = 0; k < CMAX; ++k) {
                if (k >= C) break;
                const T t = e[k];
                if (k == yi) gap_y = softmax_gap(t, m);
                const T ek = softmax_exp(t, m);
                if (k != jm) s_rest += double(ek);
                e[k] = (k != jm) ? ek : T(1);
            }
            if (dense) {
#pragma unroll
                for (int k = 0; k < CMAX; ++k) {
                    if (k >= C) break;
                    const T c = epsC * (cwa ? cwa[k] : T(1));
                    if (k != jm) S_rest += double(c);
                    LD += double(mul0(c, softmax_gap(row[k], m)));
                }
            }
            fin = ce_int_end(s_rest, S_rest, LD, dense, eps_, epsC, cwa, y, jm, gap_y, wi);
        } else if (active && nan && !ignored && !bad) {
            fin.loss = Lim<T>::nan();
        }
        /* gradient, then Hessian: each lane writes its row, the warp stores the block */
        for (int pass = 0; pass < 2; ++pass) {
            S* out = pass == 0 ? grad : hess;
            if (!out) continue;   /* uniform */
            __syncwarp();   /* every lane has read its row (the smoothing sums read the logits) */
            if (live) {   /* the general element (any eps, weight 0 allowed): one loop for every
                           * option (a second, leaner variant made ptxas spill) */
#pragma unroll
                for (int k = 0; k < CMAX; ++k) {
                    if (k >= C) break;
                    T g = T(0), h = T(0);
                    if (pass == 0) ce_int_elem<true, false, true, true>(e[k], k, true, jm, yi, fin, ds, epsC, cwa, g, h);
                    else ce_int_elem<false, true, true, true>(e[k], k, true, jm, yi, fin, ds, epsC, cwa, g, h);
                    row[k] = pass == 0 ? g : h;
                }
            } else if (active) {   /* ignored, bad label: zeros; NaN logits: NaN */
                const T fill = (!nan || ignored || bad) ? T(0) : Lim<T>::nan();
#pragma unroll
                for (int k = 0; k < CMAX; ++k) {
                    if (k >= C) break;
                    row[k] = fill;
                }
            }
            __syncwarp();
            small_store<CMAX>(out + base + lane, lane, C, P, cnt, buf);
        }
        if (active && !bad) {
            if (loss) loss[r] = fin.loss;
            acc = double(fin.loss);
        }
    }
    block_partial<NT>(rs, acc, err, part_sum, part_err, b);
}

/* The few-classes kernel compiled for its exact C (1 <= C <= 32): every call of
 * xent_softmax_small's, with its arguments but C. With C known to the compiler every loop is
 * straight code (no test of a bound at each class, no spill), and a warp of 32 rows (all but the
 * last) moves its block without a test an element. A row whose logits are all gap_safe (all but
 * rows with an infinite or huge logit, or NaN) takes softmax_exp_safe (the same bits); the
 * label's gap and exponential come once from its logit in shared memory. Every class takes the
 * common form, then the label and the maximum are written again in their own forms (ce_int_elem,
 * which gives the maximum's where y = jm): without label smoothing the gradient's common form is
 * e_j (ds S / s) (ce_plain_scale: one product a class); with it, as xent_softmax_small's, the
 * same bits. */
namespace xentk {
/* Blocks of 256 a multiprocessor that xent_softmax_few asks ptxas to fit (3: at most 85 registers a
 * thread, 2: 128): float32 rows of up to 16 classes fit 85 without spilling; float64 rows of more
 * than 3 classes spill at 85 (ptxas -v), and at 128 only those of 15 and 16 classes do (64 and 328
 * bytes). */
template <typename T> constexpr int few_min_blocks(int C) { return (sizeof(T) == 8 ? C <= 3 : C <= 16) ? 3 : 2; }
}  // namespace xentk

template <typename T, int C, typename S = T>
__global__ void __launch_bounds__(256, xentk::few_min_blocks<T>(C)) xent_softmax_few(
        const S* __restrict__ x, xi64 rows, const xi64* __restrict__ labels, const void* __restrict__ sw, int sw_kind,
        const T* __restrict__ cwa, xi64 ignore_index, int has_ignore, double eps, double dscale,
        const xu64* __restrict__ pre,
        T* __restrict__ loss, S* __restrict__ grad, S* __restrict__ hess, double* __restrict__ part_sum,
        xu64* __restrict__ part_err, xi64 block_offset) {
    using namespace xentk;
    static_assert(C >= 1 && C <= 32, "xent_softmax_few: 1 <= C <= 32");
    constexpr int NT = 256, NW = NT / 32, P = C | 1;
    const double dsc = mean_scale_at(dscale, pre);
    XENT_SHARED(ReduceScratch, rs);
    XENT_DYN_SHARED(dyn);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    T* buf = reinterpret_cast<T*>(dyn) + warp * 32 * P;
    const xi64 b = xi64(blockIdx.x) + block_offset;
    const xi64 r0 = (b * NW + warp) * 32;   /* the warp's first row */
    const int nr = int(rows - r0 < 32 ? (rows - r0 > 0 ? rows - r0 : 0) : 32);
    double acc = 0.0;
    xu64 err = XENT_NO_ERR;
    if (nr > 0) {   /* uniform across the warp */
        const int cnt = nr * C;
        const xi64 base = r0 * C;
        const bool active = lane < nr;
        const xi64 r = r0 + lane;
        const xi64 y = active ? labels[r] : xi64(0);
        const T wi = (sw && active) ? weight_at<T>(sw, sw_kind, r) : T(1);
        if (nr == 32) small_load<C, true>(x + base + lane, lane, C, P, cnt, buf);
        else small_load<C, false>(x + base + lane, lane, C, P, cnt, buf);
        __syncwarp();
        T* row = buf + lane * P;
        /* the maximum, its first index, and whether every logit is gap_safe (NaN is not: such a
         * row looks for NaN again) */
        T e[C];
        T m = -Lim<T>::inf();
        int jm = 0;   /* stays 0 where every class is -inf (or NaN: then the row is not live) */
        bool safe = true;
#pragma unroll
        for (int k = 0; k < C; ++k) {
            const T t = row[k];
            e[k] = t;
            safe = safe && gap_safe(t);
            const bool gt = t > m;
            m = gt ? t : m;
            jm = gt ? k : jm;
        }
        bool nan = false;
        if (!safe) {
#pragma unroll
            for (int k = 0; k < C; ++k) nan = nan || e[k] != e[k];
        }
        const bool ignored = has_ignore && y == ignore_index;
        const bool bad = active && !ignored && !(y >= 0 && y < C);
        if (bad) err = err_key(r * xi64(C), ERR_LABEL_RANGE);
        const bool live = active && !ignored && !bad && !nan;
        const int yi = int(y);
        const T ds = wi * T(dsc);
        const T eps_ = T(eps), epsC = eps_ / T(C);
        const bool dense = eps_ != T(0);   /* uniform */
        CeRowEnd<T> fin;
        fin.loss = T(0);
        T e_y = T(1);
        if (live) {
            /* s_rest = sum_{j != jm} exp(x_j - m), in class order as the CPU; with smoothing also
             * S_rest and LD as xent_softmax_small sums them */
            double s_rest = 0.0, S_rest = 0.0, LD = 0.0;
            if (safe) {
#pragma unroll
                for (int k = 0; k < C; ++k) {
                    e[k] = softmax_exp_safe(e[k], m);   /* 1 at jm */
                    if (k != jm) s_rest += double(e[k]);
                }
            } else {
#pragma unroll
                for (int k = 0; k < C; ++k) {
                    e[k] = softmax_exp(e[k], m);   /* 1 at jm (and at every x == m) */
                    if (k != jm) s_rest += double(e[k]);
                }
            }
            if (dense) {
#pragma unroll
                for (int k = 0; k < C; ++k) {
                    const T c = epsC * (cwa ? cwa[k] : T(1));
                    if (k != jm) S_rest += double(c);
                    LD += double(mul0(c, softmax_gap(row[k], m)));
                }
            }
            const T xy = row[yi];   /* the label's logit, still in shared memory */
            if (yi != jm) e_y = safe ? softmax_exp_safe(xy, m) : softmax_exp(xy, m);
            fin = ce_int_end(s_rest, S_rest, LD, dense, eps_, epsC, cwa, y, jm, softmax_gap(xy, m), wi);
        } else if (active && nan && !ignored && !bad) {
            fin.loss = Lim<T>::nan();
        }
        /* ignored rows and bad labels: zeros; NaN logits: NaN */
        const T fill = (!nan || ignored || bad) ? T(0) : Lim<T>::nan();
        if (grad) {   /* uniform */
            if (live) {
                T g = T(0), h = T(0);
                if (!dense) {   /* the gradient alone without smoothing: one product a class */
#pragma unroll
                    for (int k = 0; k < C; ++k) {
                        ce_int_elem<true, false, false, false>(e[k], k, false, jm, yi, fin, ds, epsC, cwa, g, h);
                        row[k] = g;
                    }
                } else {
#pragma unroll
                    for (int k = 0; k < C; ++k) {
                        ce_int_elem<true, false, true, true>(e[k], k, false, jm, yi, fin, ds, epsC, cwa, g, h);
                        row[k] = g;
                    }
                }
                ce_int_elem<true, false, true, true>(e_y, yi, true, jm, yi, fin, ds, epsC, cwa, g, h);
                row[yi] = g;
                ce_int_elem<true, false, true, true>(T(1), jm, true, jm, yi, fin, ds, epsC, cwa, g, h);
                row[jm] = g;
            } else if (active) {
#pragma unroll
                for (int k = 0; k < C; ++k) row[k] = fill;
            }
            __syncwarp();
            if (nr == 32) small_store<C, true>(grad + base + lane, lane, C, P, cnt, buf);
            else small_store<C, false>(grad + base + lane, lane, C, P, cnt, buf);
        }
        if (hess) {   /* uniform; the label's Hessian is the common form */
            if (grad) __syncwarp();   /* every lane has stored the gradient from the block */
            if (live) {
                T g = T(0), h = T(0);
#pragma unroll
                for (int k = 0; k < C; ++k) {
                    ce_int_elem<false, true, true, true>(e[k], k, false, jm, yi, fin, ds, epsC, cwa, g, h);
                    row[k] = h;
                }
                ce_int_elem<false, true, true, true>(T(1), jm, true, jm, yi, fin, ds, epsC, cwa, g, h);
                row[jm] = h;
            } else if (active) {
#pragma unroll
                for (int k = 0; k < C; ++k) row[k] = fill;
            }
            __syncwarp();
            if (nr == 32) small_store<C, true>(hess + base + lane, lane, C, P, cnt, buf);
            else small_store<C, false>(hess + base + lane, lane, C, P, cnt, buf);
        }
        if (active && !bad) {
            if (loss) loss[r] = fin.loss;
            acc = double(fin.loss);
        }
    }
    block_partial<NT>(rs, acc, err, part_sum, part_err, b);
}

/* Adds part_sum[0..n) in order (compensated, per thread, then a fixed tree) and finds the
 * smallest error key; out[0] = the sum's bits, out[1] = the key (all ones: no error). With a
 * `loss` pointer also the reduced loss, as _api's _finish would form it from the sum on the host
 * (so it needs no copy to the device): the sum, or for a mean (kind & 2) sum / denom, and 0 where
 * denom is 0; rounded to float unless kind & 1 (double). With `pre`, the two result words of the
 * weight pre-pass (whose sum the kernels took as the mean's denominator, mean_scale_at): the
 * denominator comes from there and both words go to out[2], out[3], so one copy brings back all
 * four (out has room for them). */
__global__ void __launch_bounds__(1024)
xent_finalize(const double* __restrict__ part_sum, const xu64* __restrict__ part_err, xi64 n, xu64* __restrict__ out,
              void* __restrict__ loss, int kind, double denom, const xu64* __restrict__ pre) {
    using namespace xentk;
    constexpr int NT = 1024;
    XENT_SHARED(ReduceScratch, rs);
    double s = 0.0, c = 0.0;
    xu64 e = XENT_NO_ERR;
    /* each thread adds its entries in index order, FIN_BATCH loads in flight at a time (one load
     * waited for an entry made a thread's walk over 32768 partial sums some 20 us long) */
    constexpr int FIN_BATCH = 8;
    xi64 i = threadIdx.x;
    for (; i + (FIN_BATCH - 1) * NT < n; i += FIN_BATCH * NT) {
        double v[FIN_BATCH];
#pragma unroll
        for (int k = 0; k < FIN_BATCH; ++k) v[k] = part_sum[i + k * NT];
        if (part_err) {
#pragma unroll
            for (int k = 0; k < FIN_BATCH; ++k) e = umin64(e, part_err[i + k * NT]);
        }
#pragma unroll
        for (int k = 0; k < FIN_BATCH; ++k) acc_add(s, c, v[k]);
    }
    for (; i < n; i += NT) {
        acc_add(s, c, part_sum[i]);
        if (part_err) e = umin64(e, part_err[i]);
    }
    double v = acc_total(s, c);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_down_sync(XENT_FULL_MASK, v, o);
        xu64 w = __shfl_down_sync(XENT_FULL_MASK, e, o);
        e = w < e ? w : e;
    }
    if (lane == 0) { rs.d[warp] = v; rs.u[warp] = e; }
    __syncthreads();
    if (tid == 0) {
        double t = 0.0, tc = 0.0;
        xu64 m = XENT_NO_ERR;
        for (int w = 0; w < NT / 32; ++w) { acc_add(t, tc, rs.d[w]); m = umin64(m, rs.u[w]); }
        const double total = acc_total(t, tc);
        out[0] = (xu64)__double_as_longlong(total);
        out[1] = m;
        if (pre) {   /* the weight pre-pass's words: the denominator, and its first error */
            out[2] = pre[0];
            out[3] = pre[1];
            denom = __longlong_as_double((long long)pre[0]);
        }
        if (loss) {
            const double v = (kind & 2) ? (denom != 0.0 ? total / denom : 0.0) : total;
            if (kind & 1) *static_cast<double*>(loss) = v;
            else *static_cast<float*>(loss) = float(v);
        }
    }
}

/* What the loader compiled: the target architecture and whether cluster kernels exist. */
__global__ void xent_probe(int* out) {
#ifdef __CUDA_ARCH__
    out[0] = __CUDA_ARCH__;
#else
    out[0] = 0;
#endif
    out[1] = XENT_CLUSTER;
}
