/* CUDA kernels of xentc, compiled at run time by NVRTC (see _cuda.py) for float and double.
 *
 * The per-element formulas come from _xent_math.h; this file only holds the array loops, the
 * reductions and the data checks. The loops mirror the CPU block loops of _xent_rows.h one for
 * one (same operations in the same precision, double row sums), so the two paths agree to a few
 * ulp; the CPU file is the reference for what each loop computes.
 *
 * Determinism: every kernel writes one partial sum (double) and one first-error key per block
 * (per row for the on-chip kernel); blocks cover fixed index ranges that depend only on the
 * shape, and xent_finalize adds the partials in index order. No atomics anywhere, so two calls
 * give the same bits.
 *
 * Error keys: (flat index << 4) | error code, so the smallest key is the first bad element (the
 * CPU reports the first one in index order, and each element has exactly one code). For the
 * categorical kernels the flat index is row * C + class.
 *
 * Kernels:
 *   xent_weight<T>         the mean's denominator (sample_weight * class_weight[label]) and the
 *                          label range / sample-weight checks, 2048 samples per block.
 *   xent_binary<T,L,CE>    binary CE / focal, elementwise, 2048 elements per block, any strides
 *                          (L: from logits; CE: gamma = 0).
 *   xent_softmax_thread<T> categorical rows, one thread per row, any strides (classes not the
 *                          last axis: neighbouring threads read neighbouring memory).
 *   xent_softmax_tile<T>   one thread per row for small C on contiguous rows: the block's rows
 *                          are staged through shared memory so that global loads and stores are
 *                          coalesced.
 *   xent_softmax_warp<T>   one warp per row (moderate C), any strides.
 *   xent_softmax_block<T>  one block per row (large C), any strides: the generic fallback.
 *   xent_onchip<T,VEC>     fast path for cross entropy from logits with integer labels on
 *                          contiguous rows: one block per row, the row read from global memory
 *                          once into shared memory, max / sum / gradient from there.
 *   xent_onchip_cl<T,K,VEC> the same for rows that do not fit one block: a thread-block cluster
 *                          of K blocks (sm_90) shares the row max and sums through distributed
 *                          shared memory, each block keeping its slice of the row on chip.
 *   xent_finalize          adds the per-block partials in order and finds the first error.
 *
 * Everything compiles under NVRTC: no standard headers, own integer typedefs. Three small
 * helpers of _xent_rows.h are repeated here because that file is CPU-only (it includes libc and
 * OpenMP headers): unit_label_error, smoothed_pair and class_coef; keep them in step.
 * XENT_SHARED / XENT_DYN_SHARED / XENT_EMU only let a host emulator (development, not shipped)
 * give each emulated block its own shared memory.
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

/* Check of a label that must lie in [0, 1] (as unit_label_error in _xent_rows.h). */
template <typename T> __device__ __forceinline__ int unit_label_error(T y) {
    if (y != y) return ERR_LABEL_NAN;
    if (y < T(0) || y > T(1)) return ERR_LABEL_UNIT;
    return ERR_NONE;
}

/* The smoothed weight of the positive side, y (1 - eps) + eps/2, or of the negative side,
 * (1 - y)(1 - eps) + eps/2, each from the raw label (as smoothed_pair in _xent_rows.h). */
template <typename T> __device__ __forceinline__ T smoothed_pair(T y, T eps, bool positive) {
    const T v = positive ? y : T(1) - y;
    return v * (T(1) - eps) + eps * T(0.5);
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

/* Shared scratch of the end-of-block reduction. */
struct ReduceScratch {
    double d[32];
    xu64 u[32];
};

/* Block partial: the sum of v (fixed shuffle tree, then warps in order) and the smallest key,
 * written by thread 0 to slot b. Every thread of the block must call it. */
template <int NT>
__device__ __forceinline__ void block_partial(ReduceScratch& rs, double v, xu64 e, double* part_sum,
                                              xu64* part_err, xi64 b) {
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
template <typename T>
__device__ __forceinline__ T class_coef(const RowArgs<T>& a, xi64 y, const T* ys, xi64 syc, xi64 j) {
    T cw = a.cwa ? a.cwa[j] : T(1);
    T eps = a.eps, C = T(a.C);
    T Y;
    if (ys) {
        Y = ys[j * syc];
        if (eps != T(0)) Y = Y * (T(1) - eps) + eps / C;
    } else {
        Y = (j == y) ? T(1) - eps + eps / C : eps / C;
    }
    return mul0(cw, Y);
}

/* Cross entropy of one softmax row from its summary (softmax_ce_finish of _xent_rows.h): the loss
 * sum_j c_j (d_j + L) and, on request, gradient S P_j - c_j and Hessian S P_j (1 - P_j), with
 * S = sum_j c_j; at j = jm, S P - c = (S - c_jm) - S Q_jm keeps the small difference exact.
 * Integer labels: c_j = eps/C cw_j, plus (1 - eps) cw_y at j = y. */
template <typename T, class Team>
__device__ __forceinline__ T ce_finish(const RowArgs<T>& a, Team& tm, const T* xr, xi64 sc, xi64 y, const T* ys,
                                       xi64 syc, T* gr, T* hr, xi64 so, T wi, T m, xi64 jm, double s,
                                       double s_rest, T L) {
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
            LD += double(mul0(c, softmax_gap(xr[j * sc], m)));
        }
        tm.sum4(S, S_rest, LD, z);
    } else {
        cy = (T(1) - eps) * (cwa ? cwa[y] : T(1));
        if (eps != T(0)) {
            for (xi64 j = ln; j < C; j += ns) {
                T cw = cwa ? cwa[j] : T(1);
                S += double(epsC * cw);
                if (j != jm) S_rest += double(epsC * cw);
                LD += double(mul0(epsC * cw, softmax_gap(xr[j * sc], m)));
            }
            tm.sum4(S, S_rest, LD, z);
        }
        S += double(cy);
        if (y != jm) S_rest += double(cy);
        LD += double(mul0(cy, softmax_gap(xr[y * sc], m)));
    }
    if (want_g || want_h) {
        const T ds = wi * a.dscale;
        const T inv_s = T(1.0 / s), ST = T(S);
        const T Qjm = T(s_rest / s);
        const T g_jm = T(S_rest - S * double(Qjm));
        const T h_jm = ST * inv_s * Qjm;
        for (xi64 j = ln; j < C; j += ns) {
            const T P = x_exp(-softmax_gap(xr[j * sc], m)) * inv_s;
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
    return mul0(wi, T(LD + S * double(L)));
}

template <typename T, class Team>
__device__ __forceinline__ T row_from_logits(const RowArgs<T>& a, Team& tm, xi64 r, const T* xr, xi64 sc, xi64 y,
                                             const T* ys, xi64 syc, T* gr, T* hr, xi64 so, T wi, xu64& err) {
    const xi64 C = a.C;
    const xi64 ln = tm.lane(), ns = tm.size();
    const T g = a.gamma;
    const bool want_g = gr != 0, want_h = hr != 0;
    const T ds = wi * a.dscale;
    if (ys) {
        xu64 e = XENT_NO_ERR;
        for (xi64 j = ln; j < C; j += ns) {
            int c = unit_label_error(ys[j * syc]);
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
        T v = xr[j * sc];
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
    /* s_rest = sum_{j != jm} exp(x_j - m) (softmax_summary of _xent_rows.h) */
    double s_rest = 0.0, z0 = 0.0, z1 = 0.0, z2 = 0.0;
    for (xi64 j = ln; j < C; j += ns)
        if (j != jm) s_rest += double(softmax_exp(xr[j * sc], m));
    tm.sum4(s_rest, z0, z1, z2);
    const double s = 1.0 + s_rest;
    const T L = T(log1p(s_rest));
    if (g == T(0)) return ce_finish(a, tm, xr, sc, y, ys, syc, gr, hr, so, wi, m, jm, s, s_rest, L);
    /* focal: the loss and the gradient/Hessian sums */
    FocalRowSums<T> sums = focal_row_sums_init<T>();
    for (xi64 j = ln; j < C; j += ns) {
        T c = class_coef(a, y, ys, syc, j);
        if (c == T(0) && !(want_g || want_h)) continue;
        T d = softmax_gap(xr[j * sc], m);
        SoftmaxElem<T> el = softmax_elem(d, x_exp(-d), j == jm, s, s_rest, L);
        focal_row_add(sums, focal_softmax_elem(c, el, g, want_g, want_h), el, j == jm);
    }
    tm.sum4(sums.loss, sums.Tt, sums.T_rest, sums.U_rest);
    const int owner = int(jm % ns);
    sums.G_jm = tm.bcast(sums.G_jm, owner);
    sums.Kt_jm = tm.bcast(sums.Kt_jm, owner);
    if (want_g || want_h) {
        for (xi64 j = ln; j < C; j += ns) {
            T c = class_coef(a, y, ys, syc, j);
            T d = softmax_gap(xr[j * sc], m);
            T e = x_exp(-d);
            SoftmaxElem<T> el = softmax_elem(d, e, j == jm, s, s_rest, L);
            FocalSoftmax<T> f = focal_softmax_elem(c, el, g, want_g, want_h);
            const FocalDerivs d2 = focal_softmax_derivs(el, f, e, j == jm, sums, s_rest);
            if (want_g) gr[j * so] = mul0(ds, T(d2.g));
            if (want_h) hr[j * so] = mul0(ds, T(d2.h));
        }
    }
    return mul0(wi, T(sums.loss));
}

template <typename T, class Team>
__device__ __forceinline__ T row_from_probs(const RowArgs<T>& a, Team& tm, xi64 r, const T* xr, xi64 sc, xi64 y,
                                            const T* ys, xi64 syc, T* gr, T* hr, xi64 so, T wi, xu64& err) {
    const xi64 C = a.C;
    const xi64 ln = tm.lane(), ns = tm.size();
    const T g = a.gamma;
    const bool want_g = gr != 0, want_h = hr != 0;
    const T ds = wi * a.dscale;
    xu64 e = XENT_NO_ERR;
    for (xi64 j = ln; j < C; j += ns) {
        T p = xr[j * sc];
        if (p < T(0) || p > T(1)) { e = err_key(r * C + j, ERR_PROB); break; }
        if (ys) {
            int c = unit_label_error(ys[j * syc]);
            if (c) { e = err_key(r * C + j, c); break; }
        }
    }
    e = tm.min_u64(e);
    if (e != XENT_NO_ERR) { err = umin64(err, e); return T(0); }
    double loss = 0.0, z1 = 0.0, z2 = 0.0, z3 = 0.0;
    for (xi64 j = ln; j < C; j += ns) {
        T p = xr[j * sc];
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
template <typename T, class Team>
__device__ __forceinline__ T softmax_row(const RowArgs<T>& a, Team& tm, xi64 r, const T* xr, xi64 sc, bool has_labels,
                                         xi64 y, const T* ys, xi64 syc, T* gr, T* hr, xi64 so, T wi, xu64& err) {
    if (has_labels && a.has_ignore && y == a.ignore_index) {
        for (xi64 j = tm.lane(); j < a.C; j += tm.size()) {
            if (gr) gr[j * so] = T(0);
            if (hr) hr[j * so] = T(0);
        }
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
    const T* __restrict__ x, xi64 sx_o, xi64 sx_c, xi64 sx_i, xi64 C, xi64 inner, xi64 rows,      \
    const xi64* __restrict__ labels, const T* __restrict__ ysoft, xi64 sy_o, xi64 sy_c, xi64 sy_i, \
    const T* __restrict__ sw, const T* __restrict__ cwa, xi64 ignore_index, int has_ignore,        \
    double eps, double gamma, double dscale, int from_logits,                                     \
    T* __restrict__ loss, T* __restrict__ grad, T* __restrict__ hess,                              \
    double* __restrict__ part_sum, xu64* __restrict__ part_err, xi64 block_offset

#define XENT_ROW_ARGS                                                                              \
    xentk::RowArgs<T> a;                                                                          \
    a.C = C; a.cwa = cwa; a.eps = T(eps); a.gamma = T(gamma); a.dscale = T(dscale);               \
    a.ignore_index = ignore_index; a.has_ignore = has_ignore; a.from_logits = from_logits;

/* Sum of sample weights (times class weights) over non-ignored samples, with the checks of
 * weight_block in _xent_rows.h. */
template <typename T>
__global__ void __launch_bounds__(256)
xent_weight(const xi64* __restrict__ labels, const T* __restrict__ sw, const T* __restrict__ cw, xi64 C,
            xi64 ignore_index, int has_ignore, xi64 n, double* __restrict__ part_sum,
            xu64* __restrict__ part_err, xi64 block_offset) {
    using namespace xentk;
    constexpr int NT = 256, IT = 8;
    XENT_SHARED(ReduceScratch, rs);
    const xi64 b = xi64(blockIdx.x) + block_offset;
    const xi64 base = b * (NT * IT) + threadIdx.x;
    double s = 0.0, c = 0.0;
    xu64 err = XENT_NO_ERR;
#pragma unroll
    for (int k = 0; k < IT; ++k) {
        const xi64 i = base + xi64(k) * NT;
        if (i < n) {
            T w = T(1);
            bool ok = true;
            if (sw) {
                w = sw[i];
                if (!(w >= T(0)) || w == Lim<T>::inf()) { err = umin64(err, err_key(i, ERR_WEIGHT)); ok = false; }
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
 * _xent_rows.h. pos_weight / alpha (w1) is indexed i % nw1. LOGITS and CE (gamma == 0) are
 * template flags so that each instance holds only the path it runs (the element loop is unrolled
 * for memory parallelism, and the unused paths would only crowd the instruction cache). */
template <typename T, bool LOGITS, bool CE>
__global__ void __launch_bounds__(256)
xent_binary(const T* __restrict__ y, xi64 sy, const T* __restrict__ x, xi64 sx, xi64 n,
            const T* __restrict__ sw, const T* __restrict__ w1, xi64 nw1, double w0, double eps,
            double gamma, double dscale, T* __restrict__ loss, T* __restrict__ grad,
            T* __restrict__ hess, double* __restrict__ part_sum, xu64* __restrict__ part_err,
            xi64 block_offset) {
    using namespace xentk;
    constexpr int NT = 256, IT = 8;
    XENT_SHARED(ReduceScratch, rs);
    const xi64 b = xi64(blockIdx.x) + block_offset;
    const xi64 base = b * (NT * IT) + threadIdx.x;
    const T eps_ = T(eps), g = CE ? T(0) : T(gamma), w0_ = T(w0), dsc = T(dscale);
    const bool want_g = grad != 0, want_h = hess != 0;
    T yv[IT], xv[IT];
    if (sy == 1 && sx == 1 && b * (NT * IT) + NT * IT <= n) {   /* the common case: no strides, full block */
#pragma unroll
        for (int k = 0; k < IT; ++k) { yv[k] = y[base + k * NT]; xv[k] = x[base + k * NT]; }
    } else {
#pragma unroll
        for (int k = 0; k < IT; ++k) {
            const xi64 i = base + xi64(k) * NT;
            yv[k] = T(0); xv[k] = T(0);
            if (i < n) { yv[k] = y[i * sy]; xv[k] = x[i * sx]; }
        }
    }
    double s = 0.0;   /* the thread's IT losses, exactly enough in double; blocks are compensated */
    xu64 err = XENT_NO_ERR;
#pragma unroll
    for (int k = 0; k < IT; ++k) {
        const xi64 i = base + xi64(k) * NT;
        if (i < n) {
            const T yi = yv[k];
            const T xi = xv[k];
            const int e = unit_label_error(yi);
            if (e) {
                err = umin64(err, err_key(i, e));
            } else if (!LOGITS && (xi < T(0) || xi > T(1))) {
                err = umin64(err, err_key(i, ERR_PROB));
            } else {
                const T c1 = (w1 ? w1[nw1 == 1 ? 0 : i % nw1] : T(1)) * smoothed_pair(yi, eps_, true);
                const T c0 = w0_ * smoothed_pair(yi, eps_, false);
                const T wi = sw ? sw[i] : T(1), ds = wi * dsc;
                LGH<T> o = LOGITS ? binary_from_logit(xi, c1, c0, g, want_g, want_h, wi, ds)
                                  : binary_from_prob(xi, c1, c0, g, want_g, want_h, wi, ds);
                if (loss) loss[i] = o.l;
                s += double(o.l);
                if (want_g) grad[i] = o.g;
                if (want_h) hess[i] = o.h;
            }
        }
    }
    block_partial<NT>(rs, s, err, part_sum, part_err, b);
}

/* One thread per row, rows (o, k) with k fastest: any strides. */
template <typename T>
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
        const T* xr = x + o * sx_o + k * sx_i;
        const T* ys = ysoft ? ysoft + o * sy_o + k * sy_i : (const T*)0;
        T* gr = grad ? grad + o * C * inner + k : (T*)0;
        T* hr = hess ? hess + o * C * inner + k : (T*)0;
        const xi64 y = labels ? labels[r] : -1;
        const T wi = sw ? sw[r] : T(1);
        TeamThread tm;
        const T l = softmax_row(a, tm, r, xr, sx_c, labels != 0, y, ys, sy_c, gr, hr, inner, wi, err);
        if (loss) loss[r] = l;
        acc = double(l);
    }
    block_partial<NT>(rs, acc, err, part_sum, part_err, b);
}

/* One thread per row for small C on contiguous rows (inner == 1, x and soft labels with class
 * stride 1 and row stride C): the block's rows go through shared memory, so global memory is
 * read and written in coalesced runs. Dynamic shared memory: ntiles * 128 * C elements. */
template <typename T>
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
    for (xi64 q = tid; q < cnt; q += NT) xs[q] = x[r0 * sx_o + q];
    if (ysoft)
        for (xi64 q = tid; q < cnt; q += NT) ysm[q] = ysoft[r0 * sy_o + q];
    __syncthreads();
    double acc = 0.0;
    xu64 err = XENT_NO_ERR;
    if (tid < nr) {
        const xi64 r = r0 + tid;
        const xi64 y = labels ? labels[r] : -1;
        const T wi = sw ? sw[r] : T(1);
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
template <typename T>
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
        const T* xr = x + o * sx_o + k * sx_i;
        const T* ys = ysoft ? ysoft + o * sy_o + k * sy_i : (const T*)0;
        T* gr = grad ? grad + o * C * inner + k : (T*)0;
        T* hr = hess ? hess + o * C * inner + k : (T*)0;
        const xi64 y = labels ? labels[r] : -1;
        const T wi = sw ? sw[r] : T(1);
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
template <typename T>
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
        const T* xr = x + o * sx_o + k * sx_i;
        const T* ys = ysoft ? ysoft + o * sy_o + k * sy_i : (const T*)0;
        T* gr = grad ? grad + o * C * inner + k : (T*)0;
        T* hr = hess ? hess + o * C * inner + k : (T*)0;
        const xi64 y = labels ? labels[r] : -1;
        const T wi = sw ? sw[r] : T(1);
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
 * On-chip cross entropy from logits, integer labels, contiguous rows (class stride 1, inner 1).
 * A row (or, with clusters, a slice of C / K classes per block) is read once from global memory
 * into shared memory; the maximum, the exponential sum and the gradient then come from there.
 * The formulas are those of row_from_logits with gamma = 0 and no soft labels; the per-element
 * gradient P_j = e_j * (1/s) is computed in T (the CPU divides in double), within an ulp.
 * Per-row partial sums go to part_sum[row].
 * ========================================================================================== */
namespace xentk {

constexpr int OC_NT = 256;   /* threads per block */
constexpr int OC_U = 4;      /* vector loads in flight per thread while filling the row */

template <typename T, int VEC> struct __align__(sizeof(T) * VEC) Pack { T v[VEC]; };

struct OnchipScratch {
    double wm[OC_NT / 32];
    int wj[OC_NT / 32];
    int wn[OC_NT / 32];
    double wd[3][OC_NT / 32];
    double slot_max[3];    /* m, jm, nan of this block: read by the cluster */
    double slot_sum[3];    /* s_rest, S_rest, LD of this block */
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

/* Gradient / Hessian of a slice from the logits kept in shared memory (softmax_ce_finish of
 * _xent_rows.h with integer labels): S P_j - c_j and S P_j (1 - P_j), with the exact forms at
 * j = jm and the label's coefficient at j = y. A vector holding neither takes the short path. */
template <bool WG, bool WH, bool DENSE, bool DS0, typename T, int VEC>
__device__ __forceinline__ void onchip_write(const Pack<T, VEC>* buf, Pack<T, VEC>* gs, Pack<T, VEC>* hs, int nv,
                                             int j0, T m, int jm, xi64 y, T ST, T inv_s, T ds, T g_jm, T h_jm,
                                             T c_y, T epsC, const T* cwa) {
    for (int q = threadIdx.x; q < nv; q += OC_NT) {
        const Pack<T, VEC> xv = buf[q];
        Pack<T, VEC> go, ho;
        const int jb = j0 + q * VEC;
        const bool special = (unsigned)(jm - jb) < (unsigned)VEC || (y >= jb && y < jb + VEC);
#pragma unroll
        for (int l = 0; l < VEC; ++l) {
            const int j = jb + l;
            const T p = x_exp(-softmax_gap(xv.v[l], m)) * inv_s;
            const T c = DENSE ? epsC * (cwa ? cwa[j] : T(1)) : T(0);
            T gj = WG ? ST * p - c : T(0);
            T hj = WH ? ST * p * (T(1) - p) : T(0);
            if (special) {
                if (WG && j == y) gj = ST * p - c_y;
                if (j == jm) { gj = g_jm; hj = h_jm; }
            }
            /* mul0(ds, v) is ds * v unless ds == 0 (a zero weight, or a mean over nothing) */
            if (WG) go.v[l] = DS0 ? mul0(ds, gj) : ds * gj;
            if (WH) ho.v[l] = DS0 ? mul0(ds, hj) : ds * hj;
        }
        if (WG) gs[q] = go;
        if (WH) hs[q] = ho;
    }
}

template <typename T, int K, int VEC>
__device__ __forceinline__ void onchip_row(const T* __restrict__ x, xi64 sx_o, int C, int chunk,
                                           const xi64* __restrict__ labels, const T* __restrict__ sw,
                                           const T* __restrict__ cwa, xi64 ignore_index, int has_ignore,
                                           double eps, double dscale, T* __restrict__ loss,
                                           T* __restrict__ grad, T* __restrict__ hess,
                                           double* __restrict__ part_sum, xi64 row, int rank) {
    typedef Pack<T, VEC> P;
    XENT_DYN_SHARED(dyn);
    XENT_SHARED(OnchipScratch, sc);
    P* buf = reinterpret_cast<P*>(dyn);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    constexpr int NW = OC_NT / 32;

    RowArgs<T> a;
    a.C = C; a.cwa = cwa; a.eps = T(eps); a.gamma = T(0); a.dscale = T(dscale);
    a.ignore_index = ignore_index; a.has_ignore = has_ignore; a.from_logits = 1;

    const xi64 y = labels[row];
    const int j0 = rank * chunk;
    const int j1 = (C - j0) < chunk ? C : j0 + chunk;
    const int nv = j1 > j0 ? (j1 - j0) / VEC : 0;
    const T* xrow = x + row * sx_o;
    const P* xs = reinterpret_cast<const P*>(xrow + j0);
    P* gs = grad ? reinterpret_cast<P*>(grad + row * xi64(C) + j0) : (P*)0;
    P* hs = hess ? reinterpret_cast<P*>(hess + row * xi64(C) + j0) : (P*)0;
    const bool first = (rank == 0 && tid == 0);

    if (has_ignore && y == ignore_index) {   /* the same for every block of the cluster */
        P z;
#pragma unroll
        for (int l = 0; l < VEC; ++l) z.v[l] = T(0);
        for (int q = tid; q < nv; q += OC_NT) {
            if (gs) gs[q] = z;
            if (hs) hs[q] = z;
        }
        if (first) {
            if (loss) loss[row] = T(0);
            part_sum[row] = 0.0;
        }
        return;
    }
    const T wi = sw ? sw[row] : T(1);
    const T ds = wi * a.dscale;
    const bool dense = a.eps != T(0);   /* label smoothing: every class has a coefficient */

    /* 1. read the slice into shared memory; maximum and its first index */
    T m = -Lim<T>::inf();
    int jm = 0x7fffffff;
    bool nan = false;
    for (int q0 = tid; q0 < nv; q0 += OC_NT * OC_U) {
        P v[OC_U];
#pragma unroll
        for (int u = 0; u < OC_U; ++u) {
            const int q = q0 + u * OC_NT;
            if (q < nv) v[u] = xs[q];
        }
#pragma unroll
        for (int u = 0; u < OC_U; ++u) {
            const int q = q0 + u * OC_NT;
            if (q < nv) {
                buf[q] = v[u];
#pragma unroll
                for (int l = 0; l < VEC; ++l) {
                    const T t = v[u].v[l];
                    if (t != t) nan = true;
                    else if (jm == 0x7fffffff || t > m) { m = t; jm = j0 + q * VEC + l; }
                }
            }
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        T om = __shfl_xor_sync(XENT_FULL_MASK, m, o);
        int oj = __shfl_xor_sync(XENT_FULL_MASK, jm, o);
        if (argmax_better(om, xi64(oj), m, xi64(jm))) { m = om; jm = oj; }
    }
    nan = __any_sync(XENT_FULL_MASK, nan) != 0;
    if (lane == 0) { sc.wm[warp] = double(m); sc.wj[warp] = jm; sc.wn[warp] = nan ? 1 : 0; }
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
    if constexpr (K == 1) {
        __syncthreads();
        m = T(sc.slot_max[0]); jm = int(sc.slot_max[1]); nan = sc.slot_max[2] != 0.0;
    } else {
#if XENT_CLUSTER
        cluster_arrive();
        cluster_wait();
        m = T(cluster_load(&sc.slot_max[0], 0));
        jm = int(cluster_load(&sc.slot_max[1], 0));
        nan = cluster_load(&sc.slot_max[2], 0) != 0.0;
#pragma unroll
        for (int k = 1; k < K; ++k) {
            const T om = T(cluster_load(&sc.slot_max[0], k));
            const int oj = int(cluster_load(&sc.slot_max[1], k));
            if (argmax_better(om, xi64(oj), m, xi64(jm))) { m = om; jm = oj; }
            nan = nan || cluster_load(&sc.slot_max[2], k) != 0.0;
        }
#endif
    }

    /* 2. s_rest = sum_{j != jm} exp(x_j - m); with label smoothing also the sums of
     *    c_j = eps/C cw_j over the classes (S_rest) and of c_j d_j (LD) */
    const T epsC = a.eps / T(C);
    double s_rest = 0.0, S_rest = 0.0, LD = 0.0;
    if (!nan) {
        double ls = 0.0, lsr = 0.0, lld = 0.0;
        for (int q = tid; q < nv; q += OC_NT) {
            const P v = buf[q];
            T ex[VEC];
#pragma unroll
            for (int l = 0; l < VEC; ++l) {
                const int j = j0 + q * VEC + l;
                ex[l] = (j != jm) ? softmax_exp(v.v[l], m) : T(0);
                if (dense) {
                    const T c = epsC * (cwa ? cwa[j] : T(1));
                    if (j != jm) lsr += double(c);
                    lld += double(mul0(c, softmax_gap(v.v[l], m)));
                }
            }
            /* a vector's exponentials are added in T first (at most two roundings of 2^-24 for
             * float), then into the double row sum */
            if (VEC == 4) ls += double((ex[0] + ex[1 % VEC]) + (ex[2 % VEC] + ex[3 % VEC]));
            else if (VEC == 2) ls += double(ex[0] + ex[1 % VEC]);
            else ls += double(ex[0]);
        }
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
    if (nan) {
        const T q = Lim<T>::nan();
        P z;
#pragma unroll
        for (int l = 0; l < VEC; ++l) z.v[l] = q;
        for (int qq = tid; qq < nv; qq += OC_NT) {
            if (gs) gs[qq] = z;
            if (hs) hs[qq] = z;
        }
        if (first) {
            if (loss) loss[row] = q;
            part_sum[row] = double(q);
        }
    } else {
        /* as softmax_ce_finish with integer labels: c_j = eps/C cw_j + (j == y) (1 - eps) cw_y */
        const double s = 1.0 + s_rest;
        const T L = T(log1p(s_rest));
        const bool y_ok = y >= 0 && y < C;
        const T cy = y_ok ? (T(1) - a.eps) * (cwa ? cwa[y] : T(1)) : T(0);
        double S = dense ? S_rest + double(epsC * (cwa ? cwa[jm] : T(1))) : 0.0;
        S += double(cy);
        if (y_ok && y != jm) S_rest += double(cy);
        if (first) {
            if (y_ok) LD += double(mul0(cy, softmax_gap(xrow[y], m)));
            const T l = mul0(wi, T(LD + S * double(L)));
            if (loss) loss[row] = l;
            part_sum[row] = double(l);
        }
        if (gs || hs) {
            const T ST = T(S);
            const T inv_s = T(1.0 / s);
            const T Qjm = T(s_rest / s);
            const T g_jm = T(S_rest - S * double(Qjm));
            const T h_jm = ST * inv_s * Qjm;
            const T c_y = y_ok ? epsC * (cwa ? cwa[y] : T(1)) + cy : T(0);
#define XENT_OC_WRITE(WG, WH, DN, D0) \
    onchip_write<WG, WH, DN, D0, T, VEC>(buf, gs, hs, nv, j0, m, jm, y, ST, inv_s, ds, g_jm, h_jm, c_y, epsC, cwa)
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

}  // namespace xentk

#define XENT_ONCHIP_PARAMS                                                                         \
    const T* __restrict__ x, xi64 sx_o, int C, int chunk, const xi64* __restrict__ labels,          \
    const T* __restrict__ sw, const T* __restrict__ cwa, xi64 ignore_index, int has_ignore,          \
    double eps, double dscale, T* __restrict__ loss, T* __restrict__ grad, T* __restrict__ hess,     \
    double* __restrict__ part_sum, xi64 row_offset

#define XENT_ONCHIP_ARGS                                                                           \
    x, sx_o, C, chunk, labels, sw, cwa, ignore_index, has_ignore, eps, dscale, loss, grad, hess, part_sum

template <typename T, int VEC>
__global__ void __launch_bounds__(xentk::OC_NT) xent_onchip(XENT_ONCHIP_PARAMS) {
    xentk::onchip_row<T, 1, VEC>(XENT_ONCHIP_ARGS, xi64(blockIdx.x) + row_offset, 0);
}

#if XENT_CLUSTER
template <typename T, int K, int VEC>
__global__ void __cluster_dims__(K, 1, 1) __launch_bounds__(xentk::OC_NT) xent_onchip_cl(XENT_ONCHIP_PARAMS) {
#ifdef XENT_EMU
    const int rank = int(blockIdx.x % K);
#else
    const int rank = int(xentk::cluster_rank());
#endif
    xentk::onchip_row<T, K, VEC>(XENT_ONCHIP_ARGS, xi64(blockIdx.x / K) + row_offset, rank);
}
#endif

/* Adds part_sum[0..n) in order (compensated, per thread, then a fixed tree) and finds the
 * smallest error key; out[0] = the sum's bits, out[1] = the key (all ones: no error). */
__global__ void __launch_bounds__(1024)
xent_finalize(const double* __restrict__ part_sum, const xu64* __restrict__ part_err, xi64 n, xu64* __restrict__ out) {
    using namespace xentk;
    constexpr int NT = 1024;
    XENT_SHARED(ReduceScratch, rs);
    double s = 0.0, c = 0.0;
    xu64 e = XENT_NO_ERR;
    for (xi64 i = threadIdx.x; i < n; i += NT) {
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
        out[0] = (xu64)__double_as_longlong(acc_total(t, tc));
        out[1] = m;
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
