/* Per-element formulas of xentc: the one place where each loss, gradient and Hessian term is
 * written. Shared by the CPU kernels (_xent_rows.h, included from Cython as C++) and the CUDA
 * kernels (_xent.cu, compiled by NVRTC), so a symbolic check of one path is evidence for both.
 *
 * Conventions used throughout:
 *   - `T` is the compute type (float or double). Sums over rows and blocks are accumulated by
 *     the callers in double.
 *   - A coefficient of zero times anything that is not NaN is zero (0 * log 0 = 0): a side or class
 *     with no label weight adds nothing, even at p = 0, p = 1 or an infinite logit.
 *   - Everything is written in the form that keeps relative accuracy: no 1 - p where p may be close
 *     to 1 unless that subtraction is exact, log-space for logits, no products that overflow where the
 *     true value is finite.
 */
#ifndef XENTC_XENT_MATH_H
#define XENTC_XENT_MATH_H

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define XENT_HD __host__ __device__ __forceinline__
#define XENT_HD_MEMBER __host__ __device__ __forceinline__
#else
#include <math.h>
#include "_xent_vmath.h"
#define XENT_HD static XENT_ALWAYS_INLINE
#define XENT_HD_MEMBER XENT_ALWAYS_INLINE
#endif

namespace xent {

/* Overloads so that templates pick the float or double function (also under NVRTC, which has no
 * <cmath>). On the CPU exp/log/log1p are the branch-free versions of _xent_vmath.h, so the loops
 * that call them vectorise; on the GPU the CUDA math library's. */
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
XENT_HD float  x_exp(float x)   { return expf(x); }
XENT_HD double x_exp(double x)  { return exp(x); }
XENT_HD float  x_log(float x)   { return logf(x); }
XENT_HD double x_log(double x)  { return log(x); }
XENT_HD float  x_log1p(float x) { return log1pf(x); }
XENT_HD double x_log1p(double x){ return log1p(x); }
/* log(d) for d in [1, 2] (or NaN), float: about half the instructions of logf, which also handles
 * zero, subnormals, infinities and the exponent. d >= 4/3 is halved (exactly), so f = d - 1 or
 * d/2 - 1 is exact and lies in [-1/3, 1/3]; then log(1 + f) = f + f^2 q(f), q a degree-8
 * polynomial fitted here (weighted least squares iterated towards the minimax of the relative
 * error of the result: 0.08 ulp from q), plus log 2 for the halved ones. Checked on the host
 * with the same fmaf sequence over every float d in [1, 2] against long-double logl: at most
 * 0.89 ulp; and log1p(e) as binary_from_logit forms it, over every float e in [0, 1]: at most
 * 1.32 ulp (1.31 with glibc's logf in its place). NaN d gives NaN (the comparison is false). */
XENT_HD float x_log_1to2(float d) {
    const bool hi = d >= 1.33333337f;
    const float f = fmaf(d, hi ? 0.5f : 1.0f, -1.0f);
    float q = -0.1297001838684082f;
    q = fmaf(q, f, 0.14025144279003143f);
    q = fmaf(q, f, -0.12162646651268005f);
    q = fmaf(q, f, 0.13997341692447662f);
    q = fmaf(q, f, -0.16682615876197815f);
    q = fmaf(q, f, 0.2001095861196518f);
    q = fmaf(q, f, -0.2499970942735672f);
    q = fmaf(q, f, 0.3333320617675781f);
    q = fmaf(q, f, -0.5f);
    const float r = fmaf(f * f, q, f);
    return r + (hi ? 0.693147182f : 0.0f);
}
XENT_HD double x_log_1to2(double x) { return log(x); }
/* 1/d for d in [1, 2] (or NaN), float: the hardware reciprocal and one Newton step, which is the
 * instruction sequence the compiler emits for an IEEE 1.0f / d when d is in its safe range (it
 * also tests the range and branches to a slow path for tiny, huge and special d): the same bits,
 * without the test. (The host emulator, XENT_EMU, divides.) */
XENT_HD float x_recip_1to2(float d) {
#if defined(__CUDA_ARCH__) && !defined(XENT_EMU)
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(d));
    return fmaf(r, fmaf(-d, r, 1.0f), r);
#else
    return 1.0f / d;
#endif
}
XENT_HD double x_recip_1to2(double d) { return 1.0 / d; }
/* exp(-(d + err)) for d >= 0 (or +inf, then err = 0) and err the rounding of d = m - x
 * (gap_rounding), float on the GPU: the instruction sequence nvcc emits for expf (2^n from a
 * clamped, rounded-down n, times 2^r of the reduced argument r = -d log2(e) - n, written with
 * log2(e) in two parts, by the hardware's ex2.approx), with -err log2(e) added to r. That one FFMA
 * replaces the CPU form's 1 - err and product (two roundings, two instructions): expf's accuracy
 * (|err| < 2^-18 wherever the result is not 0, so r keeps its size), exactly 1 at d = err = 0,
 * 0 at d = +inf. The host emulator (XENT_EMU) takes exp2f for ex2.approx and forms the
 * rounded-down FMA in double (t 252 + 12582913 is exact there, and floats near 1.5 2^23 are
 * integers). */
XENT_HD float x_exp_gap(float d, float err) {
    const float t = __saturatef(fmaf(-d, 0.00572498f, 0.5f));   /* (-d log2(e) + 126) / 252, clamped */
#if defined(__CUDA_ARCH__) && !defined(XENT_EMU)
    const float k = __fmaf_rd(t, 252.0f, 12582913.0f);           /* 1.5 2^23 + 1 + (n + 126) */
#else
    const float k = float(floor(double(t) * 252.0 + 12582913.0));
#endif
    float r = fmaf(-d, 1.44269502f, -(k - 12583039.0f));
    r = fmaf(-d, 1.92596303e-8f, r);
    r = fmaf(-err, 1.44269502f, r);
    float e;
#if defined(__CUDA_ARCH__) && !defined(XENT_EMU)
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(r));
#else
    e = exp2f(r);
#endif
    return __uint_as_float(__float_as_uint(k) << 23) * e;         /* 2^n: n + 127 in the exponent field */
}
XENT_HD float  x_exp_nonpos(float x)  { return expf(x); }
XENT_HD double x_exp_nonpos(double x) { return exp(x); }
XENT_HD float  x_fma(float a, float b, float c)    { return fmaf(a, b, c); }
XENT_HD double x_fma(double a, double b, double c) { return fma(a, b, c); }
/* v 2^n for t = n + 1.5 * 2^23 (float) or n + 1.5 * 2^52 (double): see the CPU versions */
XENT_HD float x_times_pow2(float v, float t) {
    return (v * __uint_as_float((__float_as_uint(t) + 227u) << 23)) * 7.88860905e-31f;
}
XENT_HD double x_times_pow2(double v, double t) {
    const unsigned long long e = ((unsigned long long)__double_as_longlong(t) + 1623ull) << 52;
    return (v * __longlong_as_double((long long)e)) * 2.409919865102884e-181;
}
#else
XENT_HD float  x_exp(float x)   { return vexp(x); }
XENT_HD double x_exp(double x)  { return vexp(x); }
XENT_HD float  x_log(float x)   { return vlog(x); }
XENT_HD double x_log(double x)  { return vlog(x); }
XENT_HD float  x_log1p(float x) { return vlog1p(x); }
XENT_HD double x_log1p(double x){ return vlog1p(x); }
/* log of x in [1, 2] (or NaN): the CPU version skips the exponent and the other cases */
XENT_HD float  x_log_1to2(float x)  { return vlog_1to2(x); }
XENT_HD double x_log_1to2(double x) { return vlog_1to2(x); }
/* exp of x <= 0 (or NaN): the CPU version skips the overflow clamp */
XENT_HD float  x_exp_nonpos(float x)  { return vexp_nonpos(x); }
XENT_HD double x_exp_nonpos(double x) { return vexp_nonpos(x); }
/* 1/d for d in [1, 2]: a plain division on the CPU (a hook for the GPU's shorter sequence) */
XENT_HD float  x_recip_1to2(float d)  { return 1.0f / d; }
XENT_HD double x_recip_1to2(double d) { return 1.0 / d; }
#if defined(__FMA__) || defined(__AVX512F__)
XENT_HD float  x_fma(float a, float b, float c)    { return fmaf(a, b, c); }   /* one instruction */
XENT_HD double x_fma(double a, double b, double c) { return fma(a, b, c); }
#endif
/* v 2^n for t = n + 1.5 * 2^23, n in [-150, 0] (float), or t = n + 1.5 * 2^52, n in [-1077, 0]
 * (double): v 2^(n + 100), v 2^(n + 600) is exact (a normal number for the v used here), then one
 * rounding by 2^-100, 2^-600, as vexp_nonpos scales (the low bits of t are n modulo 512, 4096) */
XENT_HD float x_times_pow2(float v, float t) {
    uint32_t tb; memcpy(&tb, &t, sizeof tb);
    return (v * bits_to_float((tb + 227u) << 23)) * 0x1p-100f;
}
XENT_HD double x_times_pow2(double v, double t) {
    return (v * bits_to_double((double_to_bits(t) + 1623u) << 52)) * 0x1p-600;
}
/* exp(-(d + err)) as written: float rounds twice (the GPU's version folds err into expf's argument) */
XENT_HD float x_exp_gap(float d, float err) { return x_exp_nonpos(-d) * (1.0f - err); }
#endif
XENT_HD double x_exp_gap(double d, double err) { return x_exp_nonpos(-d) * (1.0 - err); }
/* bfloat16 from the bits b of a float: the upper half, the lower half rounded to nearest, ties
 * to even (as ml_dtypes and PyTorch round); a NaN stays a quiet NaN of the same sign. Integer
 * operations only, for the CPU's 16-bit stores and the CUDA kernels' bfloat16 storage alike. */
XENT_HD unsigned short bfloat16_bits(unsigned b) {
    return (b & 0x7fffffffu) > 0x7f800000u ? (unsigned short)((b >> 16) | 0x40u)
                                           : (unsigned short)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}
XENT_HD float  x_pow(float x, float y)   { return powf(x, y); }
XENT_HD double x_pow(double x, double y) { return pow(x, y); }
XENT_HD float  x_abs(float x)   { return fabsf(x); }
XENT_HD double x_abs(double x)  { return fabs(x); }

template <typename T> XENT_HD bool is_nan(T x) { return x != x; }
/* x = +-inf or NaN (x - x is NaN then, 0 for every finite x) */
template <typename T> XENT_HD bool not_finite(T x) { return !(x - x == T(0)); }

/* a b - fl(a b) exactly, p = fl(a b), where that error is normal (and, for the split below,
 * |a|, |b| < 2^995): a fused multiply-add where
 * the hardware has one (CUDA, the CPU's AVX2 and AVX-512 variants); else, float: the product in
 * double (exact); double: Dekker's product of 26-bit halves (Veltkamp's split), for the CPU's
 * baseline variant. */
#if defined(__CUDACC__) || defined(__CUDACC_RTC__) || defined(__FMA__) || defined(__AVX512F__)
template <typename T> XENT_HD T prod_err(T a, T b, T p) { return x_fma(a, b, -p); }
#else
XENT_HD float prod_err(float a, float b, float p) { return float(double(a) * double(b) - double(p)); }
XENT_HD double prod_err(double a, double b, double p) {
    const double sa = 134217729.0 * a, sb = 134217729.0 * b;   /* 2^27 + 1 */
    const double ah = sa - (sa - a), al = a - ah, bh = sb - (sb - b), bl = b - bh;
    return (((ah * bh - p) + ah * bl) + al * bh) + al * bl;
}
#endif

/* A value with extra precision: hi + lo (exp_nonpos_split, log_split). */
template <typename T> struct Split { T hi, lo; };

/* ---------------------------------------------------------------------------------------------
 * Powers x^g, x in [0, 1], for the focal factor (1 - p)^gamma. A policy type chooses how; the
 * CPU loops pick one per call (pow_kind), the GPU uses the default, the math library's pow.
 *   PowLibm       pow() itself: any gamma, but a scalar call that stops a loop vectorising.
 *   PowSquare     g = 2, the usual focal gamma: x^2 as x * x (and x^1, for the g - 1 of the Hessian
 *                 from probabilities), the bits PowInt gives, without its loop over the bits of g
 *                 (which GCC re-evaluated for every element). Only for exponents 1 and 2.
 *   PowInt        integer 0 < g < 32 (double: g < 16): binary powering, branch-free, so loops
 *                 vectorise; float in double, double rounding per factor. Needs 0 <= x <= 1.
 *   PowIntDD      double, integer 16 <= g < 32: the same in double-double.
 *   PowViaDouble  float only, any g: exp(g log x) in double, rounded once to float. The double
 *                 error, |g log x| 2^-52, stays far below a float ulp wherever the result is normal.
 *   PowDD         double only, any g: exp(g log x) with log x and the product in double-double.
 *   PowNone       gamma = 0 known at compile time: the cross-entropy branches fold away.
 * For the g each is used with they give 0^g = 0 for g > 0, 1^g = 1, and NaN for NaN x.
 * `zero`: g is 0 (cross entropy); `nonzero`: g is never 0 (the CPU picks PowNone for 0), so the
 * formulas' test for g = 0 folds away. Each such test left in a loop is one more way into the
 * merge of its results, and GCC if-converts (and so vectorises) a loop only while every merge
 * has at most 4 of them (its max-tree-if-conversion-phi-args): from probabilities the focal
 * loops stayed scalar without this.
 * ------------------------------------------------------------------------------------------- */
template <typename Pow, typename T> XENT_HD bool pow_is_ce(T g) { return Pow::zero || (!Pow::nonzero && g == T(0)); }

/* g - 1 = hi + lo exactly (TwoSum). g - 1 rounds for 0 < g < 1/2 with low bits set (0.3 - 1 is
 * -0.7 - 1.1e-17 in double), and x^(g - 1) with the rounded exponent is off by |log x| times that
 * rounding: 126 ulp of the Hessian from probabilities at x = 5e-324, g = 0.3. So each policy's
 * pw_below(x, g), x^(g - 1), takes the exponent whole (the integer ones never see such g). */
template <typename T> XENT_HD Split<T> below_one(T g) {
    Split<T> o;
    o.hi = g - T(1);
    const T bb = o.hi - g;
    o.lo = (g - (o.hi - bb)) + (T(-1) - bb);
    return o;
}

struct PowLibm {
    static constexpr bool zero = false, nonzero = false;
    template <typename T> static XENT_HD_MEMBER T pw(T x, T g) { return x_pow(x, g); }
    template <typename T> static XENT_HD_MEMBER T pw_below(T x, T g) {
        const Split<T> e = below_one(g);
        const T r = x_pow(x, e.hi);
        /* x^lo = 1 + lo log x to first order (|lo log x| < 2^-40); r as it is where it overflowed
         * (a tiny x: inf + inf * (negative) would be NaN) */
        return (e.lo == T(0) || x == T(0) || not_finite(r)) ? r : r + r * (e.lo * x_log(x));
    }
};
struct PowNone {
    static constexpr bool zero = true, nonzero = false;
    template <typename T> static XENT_HD_MEMBER T pw(T, T) { return T(1); }
    template <typename T> static XENT_HD_MEMBER T pw_below(T, T) { return T(1); }
};
#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
struct PowInt {
    /* x^n = prod of x^(2^k) over the set bits k of n. The factor of bit k is max(b, m) with
     * m = -1 (bit set: b >= 0 wins) or 1 (unset: 1 wins, since b <= 1), so the loop-invariant
     * bit is a value, not a branch, and the caller's loop still vectorises. Each product rounds,
     * and up to 9 of them add up: float powers are formed in double and rounded once; double ones
     * round as they go (n < 16 here: within the bar; larger n take PowIntDD). */
    static constexpr bool zero = false, nonzero = true;
    template <typename W> static XENT_ALWAYS_INLINE W plain(W x, int n) {
        W r = W(1), b = x;
        for (int bit = 0; bit < 5; ++bit) {
            const W m = ((n >> bit) & 1) ? W(-1) : W(1);
            r = r * (b > m ? b : m);
            b = b * b;
        }
        return r;
    }
    static XENT_ALWAYS_INLINE float pw(float x, float g) { return x != x ? x : float(plain<double>(x, int(g))); }
    static XENT_ALWAYS_INLINE double pw(double x, double g) { return x != x ? x : plain<double>(x, int(g)); }
    template <typename T> static XENT_ALWAYS_INLINE T pw_below(T x, T g) { return pw(x, g - T(1)); }
};
/* Integer 16 <= n < 32 in double: PowInt's products in double-double, each one's rounding error
 * (prod_err) carried in a low part, wherever the product is far above the subnormal range (there
 * the error is exact, so the same with and without a fused multiply-add). Plain products reached
 * 19 ulp of a focal loss at n = 31 (an audit's finding); these cost twice PowInt's time. */
struct PowIntDD {
    static constexpr bool zero = false, nonzero = true;
    static XENT_ALWAYS_INLINE double pw(double x, double g) {
        const int n = int(g);
        double rh = 1.0, rl = 0.0, bh = x, bl = 0.0;
#pragma GCC unroll 5
        for (int bit = 0; bit < 5; ++bit) {
            const double m = ((n >> bit) & 1) ? -1.0 : 1.0;
            const bool on = bh > m;
            const double sh = on ? bh : m, sl = on ? bl : 0.0;
            const double p = rh * sh;
            const double pe = p >= 0x1p-960 ? prod_err(rh, sh, p) + (rh * sl + rl * sh) : 0.0;
            rh = p + pe;
            rl = pe - (rh - p);
            const double q = bh * bh;
            const double qe = q >= 0x1p-960 ? prod_err(bh, bh, q) + 2.0 * (bh * bl) : 0.0;
            bh = q + qe;
            bl = qe - (bh - q);
        }
        return x != x ? x : rh + rl;
    }
    static XENT_ALWAYS_INLINE double pw_below(double x, double g) { return pw(x, g - 1.0); }
};
struct PowSquare {
    static constexpr bool zero = false, nonzero = true;
    template <typename T> static XENT_ALWAYS_INLINE T pw(T x, T e) { return e == T(1) ? x : x * x; }
    template <typename T> static XENT_ALWAYS_INLINE T pw_below(T x, T) { return x; }
};
struct PowViaDouble {
    static constexpr bool zero = false, nonzero = true;
    template <typename T> static XENT_ALWAYS_INLINE T pw(T x, T g) {
        /* log(0) = -inf gives exp(-inf) = 0 for g > 0 and exp(+inf) = inf for g < 0, as pow does;
         * g = 0 (0 * -inf = NaN) never reaches here: the callers treat it as cross entropy. */
        return T(vexp(double(g) * vlog(double(x))));
    }
    /* g - 1 in double is exact for a float g */
    template <typename T> static XENT_ALWAYS_INLINE T pw_below(T x, T g) {
        return T(vexp((double(g) - 1.0) * vlog(double(x))));
    }
};
/* log x for x > 0 (normal or subnormal) as hi + lo, within about 2^-57 absolute: vlog's terms,
 * e ln2_hi (exact), f (exact) and -f^2/2 (exact as hi + lo by prod_err) added by TwoSum, the
 * small rest (fdlibm's tail, e ln2_lo) in the low part. */
static XENT_ALWAYS_INLINE Split<double> log_split(double x) {
    double e, f;
    log_reduce(x, e, f);
    const double sq = f * f, sq_lo = prod_err(f, f, sq);
    const double hh = 0.5 * sq, hl = 0.5 * sq_lo;          /* f^2 / 2 = hh + hl */
    const double a = e * LN2_HI;
    const double s1 = a + f, b1 = s1 - a, e1 = (a - (s1 - b1)) + (f - b1);
    const double s2 = s1 - hh, b2 = s2 - s1, e2 = (s1 - (s2 - b2)) + (-hh - b2);
    const double lo = ((e1 + e2) - hl) + (log1p_tail(f, hh) + e * LN2_LO);
    Split<double> o;
    o.hi = s2 + lo;
    o.lo = lo - (o.hi - s2);
    return o;
}
/* double, any g: exp(g log x) with log x as hi + lo and g log x = yh + yl (prod_err), then
 * exp(yh) (1 + yl). A plain double exp(g log x) carries log's rounding, |g log x| 2^-53 relative
 * (90 ulp of x^2.5 at x = 1e-16); here the error is about g/16 ulp plus exp's own (about 1 ulp),
 * and the loop vectorises, where the math library's pow, which it replaces, stopped it (float64
 * binary focal from logits, gamma 2.5, n = 10^7: 186 -> 47 ms; benchmarks/RESULTS.md). For x in
 * [0, 1]: 0^g = 0 for g > 0, inf for g < 0 (the Hessian's c^(g - 1) from probabilities), 1^g = 1,
 * NaN for NaN x. */
struct PowDD {
    static constexpr bool zero = false, nonzero = true;
    /* x^(gh + gl) */
    static XENT_ALWAYS_INLINE double pw2(double x, double gh, double gl) {
        const Split<double> l = log_split(x);
        const double yh = gh * l.hi;
        const double yl = prod_err(gh, l.hi, yh) + (gh * l.lo + gl * l.hi);
        const double e = vexp(yh);
        /* e as it is where it overflowed: x^(g - 1) past the largest double for a subnormal x
         * and g just above 0 (inf + inf * yl is NaN for yl < 0: a focal Hessian of NaN at
         * p = 2.2e-313, gamma 2^-8, that hypothesis found) */
        const double r = not_finite(e) ? e : e + e * yl;
        const double at_zero = gh > 0.0 ? 0.0 : INFINITY;
        return x != x ? x : (x == 0.0 ? at_zero : r);   /* x in [0, 1] (a probability or its complement) */
    }
    static XENT_ALWAYS_INLINE double pw(double x, double g) { return pw2(x, g, 0.0); }
    static XENT_ALWAYS_INLINE double pw_below(double x, double g) {
        const Split<double> e = below_one(g);
        return pw2(x, e.hi, e.lo);
    }
};
#endif

/* c * v with 0 * (anything but NaN) = 0. */
template <typename T> XENT_HD T mul0(T c, T v) {
    const T at_zero = (v == v) ? T(0) : v;   /* two selects of one comparison each: GCC vectorises */
    return c == T(0) ? at_zero : c * v;       /* this, not the nested masks of (c == 0 && v == v) */
}

/* ---------------------------------------------------------------------------------------------
 * Extra precision for the focal factor of a logit. q^g multiplies the relative error of q by g,
 * and q = sigmoid(-z) carries the rounding of exp (up to 2 ulp), of 1 + e, of 1 / (1 + e) and of
 * e / (1 + e): 24 ulp in the loss at g = 10 and 128 at g = 50 (float64) when q was simply rounded.
 * Here each of those errors is kept (exp as hi + lo, the others exactly by Fast2Sum and
 * prod_err), their sum rel is q's relative error, and q^g is corrected by 1 + g rel, as the
 * probability path corrects (1 - p)^g. Float and double alike, in their own type.
 * ------------------------------------------------------------------------------------------- */

/* r^2 P(r) with P the Taylor series of (exp(r) - 1 - r) / r^2, for |r| <= ln2/2: to r^11 / 13!
 * in double (truncation 2^-57.7), to r^7 / 9! in float (2^-32) */
XENT_HD double exp_taylor_tail(double r) {
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const double c0 = 0.5 + r * 0.16666666666666666, c1 = 0.041666666666666664 + r * 0.008333333333333333;
    const double c2 = 0.001388888888888889 + r * 0.0001984126984126984;
    const double c3 = 2.48015873015873e-05 + r * 2.7557319223985893e-06;
    const double c4 = 2.755731922398589e-07 + r * 2.505210838544172e-08;
    const double c5 = 2.08767569878681e-09 + r * 1.6059043836821613e-10;
    return r2 * (((c0 + r2 * c1) + r4 * (c2 + r2 * c3)) + r8 * (c4 + r2 * c5));
}
XENT_HD float exp_taylor_tail(float r) {
    const float r2 = r * r, r4 = r2 * r2;
    const float c0 = 0.5f + r * 0.166666672f, c1 = 0.0416666679f + r * 0.00833333377f;
    const float c2 = 0.00138888892f + r * 0.000198412701f;
    const float c3 = 2.48015876e-05f + r * 2.75573188e-06f;
    return r2 * ((c0 + r2 * c1) + r4 * (c2 + r2 * c3));
}

/* exp(x) for x <= 0 (or NaN) as hi + lo: x = n ln2 + r, r = rh + rl kept exactly (ln2_hi has few
 * bits, so n ln2_hi and x - n ln2_hi are exact), exp(r) = 1 + r + exp_taylor_tail(r) with its two
 * additions by Fast2Sum, and rl entering as exp(r) rl; then 2^n. Double: hi + lo within 2^-55 of
 * exp(x) relative (measured on 2 10^6 points against expl: the tail's own roundings); float:
 * within about 2^-27, 16x below float's rounding. The constants are those of vexp_nonpos. */
template <typename T>
XENT_HD Split<T> exp_nonpos_split(T x) {
    const bool dbl = sizeof(T) == sizeof(double);
    const T lowest = T(dbl ? -746.0 : -104.0);
    const T xc = x < lowest ? lowest : x;
    const T shifter = T(dbl ? 6755399441055744.0 : 12582912.0);   /* 1.5 * 2^52, 1.5 * 2^23 */
    const T t = xc * T(1.4426950408889634) + shifter;
    const T n = t - shifter;
    const T a = xc - n * T(dbl ? 6.93147180369123816490e-01 : 0.693359375);
    const T b = n * T(dbl ? 1.90821492927058770002e-10 : -2.12194440e-4);
    const T rh = a - b, rl = (a - rh) - b;
    const T tail = exp_taylor_tail(rh);
    const T s = rh + tail, sl = (rh - s) + tail;
    const T h = T(1) + s, hl = (T(1) - h) + s;
    Split<T> o;
    o.hi = x != x ? x : x_times_pow2(h, t);
    o.lo = x_times_pow2((hl + sl) + h * rl, t);
    return o;
}

/* The bases of the two focal factors of a logit z: p = sigmoid(z), q = sigmoid(-z), their
 * relative errors prel, qrel (the exact q is q (1 + qrel)), and lp = log1p(exp(-|z|)), the part
 * softplus(z) and softplus(-z) share, with exp's low part in it. */
template <typename T> struct FocalSigmoid { T p, q, lp, prel, qrel; };

template <typename T>
XENT_HD FocalSigmoid<T> focal_sigmoid(T z) {
    FocalSigmoid<T> o;
    const Split<T> e = exp_nonpos_split(-x_abs(z));
    const T d = T(1) + e.hi;
    const T dl = (e.hi - (d - T(1))) + e.lo;                    /* 1 + e = d + dl */
    const T big = x_recip_1to2(d);
    const T dbig = d * big;                                     /* 1 - dbig exact (Sterbenz) */
    const T rel_big = ((T(1) - dbig) - prod_err(d, big, dbig)) - dl * big;
    const T small = e.hi * big;
    /* below the normal range the product's error is not representable: no correction there */
    const T tiny = sizeof(T) == sizeof(float) ? T(1.17549435e-38f) : T(2.2250738585072014e-308);
    const T rel_small = small >= tiny ? (prod_err(e.hi, big, small) + e.lo * big) / small + rel_big : T(0);
    o.lp = x_log_1to2(d) + dl * big;
    const bool pos = z >= T(0);
    o.p = pos ? big : small;            o.q = pos ? small : big;
    o.prel = pos ? rel_big : rel_small; o.qrel = pos ? rel_small : rel_big;
    return o;
}

/* log(x) / c for c = 1 - x, with its limit -1 at c = 0 (x = 1). `logx` is log(x) computed
 * accurately by the caller (log(p), log1p(-p), or a log-softmax value). */
template <typename T> XENT_HD T log_over_complement(T logx, T c) {
    return c == T(0) ? T(-1) : logx / c;
}

/* ---------------------------------------------------------------------------------------------
 * The focal term of probability x: A(x) = (1 - x)^g * log x, and its first two derivatives with
 * respect to x, times weights. With c = 1 - x and r = log(x) / c <= 0:
 *     A   = c^g log x
 *     A'  = c^g (1/x - g r)                    (both parts >= 0: no cancellation)
 *     A'' = c^(g-1) (g (g-1) r - 2 g / x) - c^g / x^2
 * g = 0 gives log x, 1/x, -1/x^2 exactly (the cross-entropy terms), without evaluating c^(g-1).
 * ------------------------------------------------------------------------------------------- */
template <typename T> struct Terms { T v, d1, d2; };

/* c = 1 - p rounded, and its rounding error: c + complement_error(p, c) = 1 - p exactly (Fast2Sum
 * of 1 and -p, 1 >= p; 0 where p >= 1/2, whose complement is exact). */
template <typename T> XENT_HD T complement_error(T p, T c) { return (-p) - (c - T(1)); }

/* x^e from the power b of a rounded base whose exact value is x (1 + rel): corrected to first
 * order, b (1 + e rel), since the power multiplies the base's relative error by e; b as it is where
 * rel = 0 (b may be inf there: x = 0 with e < 0). The focal factors' one correction. */
template <typename T> XENT_HD T power_corrected(T b, T e, T rel) {
    return rel == T(0) ? b : b + b * (e * rel);
}

template <typename T, typename Pow = PowLibm>
XENT_HD Terms<T> focal_prob_term(T kv, T kd, T x, T c, T clo, T logx, T g, bool want_d1, bool want_d2) {
    /* Returns kv * A and kd * (A', A'') for weights kv, kd >= 0 (coefficient times sample weight,
     * and for the derivatives also the mean's 1/sum w). The weights enter before the divisions by
     * x, so kd / x^2 stays finite wherever the weighted value is (1 / x^2 alone overflows for
     * x < 1e-154 in double, 1e-19 in float). A zero weight gives exactly zero terms.
     * c + clo = 1 - x exactly (clo = 0 where c is exact): c^g is taken of the rounded c and
     * corrected by the first-order factor 1 + g clo / c, since a rounding of c is multiplied by g
     * in c^g (0.5 ulp of c is 10 ulp of c^20). */
    Terms<T> t;
    t.v = t.d1 = t.d2 = T(0);
    if (pow_is_ce<Pow>(g)) {
        t.v = mul0(kv, logx);
        if (kd != T(0)) {
            if (want_d1) t.d1 = kd / x;
            if (want_d2) t.d2 = -((kd / x) / x);
        }
        return t;
    }
    const T rel = c > T(0) ? clo / c : T(0);
    const T cg0 = Pow::pw(c, g);
    const T cg = power_corrected(cg0, g, rel);
    t.v = mul0(kv * cg, logx);
    if (kd != T(0) && (want_d1 || want_d2)) {
        const T kcg = kd * cg;
        const T r = log_over_complement(logx, c);
        if (want_d1) t.d1 = kcg / x - kcg * (g * r);  /* not (kcg * g) * r: that can underflow to 0 * -inf = NaN at x = 0 */
        if (want_d2) {
            const T cgm0 = Pow::pw_below(c, g);
            const T cgm1 = power_corrected(cgm0, g - T(1), rel);   /* cgm0 may be inf (c = 0, g < 1) */
            const T inner = g * (g - T(1)) * r - T(2) * g / x;
            /* c^(g-1) passes the largest number for a tiny c and g just above 0 (c = 1e-310 with
             * g = 2^-8 in double, 1e-41 in float) where c^(g-1) inner need not: c^g inner / c there
             * (the exact Hessian 2.4e306 came out as inf) */
            const T below = (not_finite(cgm1) && c > T(0)) ? (kcg * inner) / c : kd * mul0(cgm1, inner);
            /* at x = 0 the -1/x^2 term dominates: the limit is -inf (g(g-1) r - 2g/x is inf - inf there) */
            t.d2 = (x == T(0)) ? -((kd / x) / x) : below - (kcg / x) / x;
        }
    }
    return t;
}

/* ---------------------------------------------------------------------------------------------
 * The focal term of a logit: f(z) = q^g log p with p = sigmoid(z), q = sigmoid(-z), and its
 * derivatives with respect to z (dp/dz = pq, dq/dz = -pq, d log p/dz = q):
 *     f   = q^g log p
 *     f'  = q^g (q - g p log p)                         (both parts >= 0)
 *     f'' = -q^g ((1 + 2g) p q - g^2 p (p log p) + g q (p log p))
 * p log p is taken as 0 at p = 0 (its limit), so z = -inf and z = +inf give exact limits.
 * The other side of a binary loss, (1-p)^g... = p^g log q, is f(-z): swap p and q, log p and log q.
 * ------------------------------------------------------------------------------------------- */
/* q^g for a base q whose exact value is q (1 + rel) (focal_sigmoid) */
template <typename T, typename Pow>
XENT_HD T focal_logit_power(T q, T rel, T g) {
    return power_corrected(Pow::pw(q, g), g, rel);
}

template <typename T, typename Pow = PowLibm>
XENT_HD Terms<T> focal_logit_term(T p, T q, T logp, T g, T qg, bool want_d1, bool want_d2) {
    /* qg = q^g, formed by the caller (focal_logit_power); g > 0 */
    Terms<T> t;
    T plogp = (p == T(0)) ? T(0) : p * logp;
    t.v = mul0(qg, logp);
    t.d1 = want_d1 ? qg * (q - g * plogp) : T(0);
    t.d2 = want_d2 ? -qg * ((T(1) + T(2) * g) * (p * q) - g * g * p * plogp + g * q * plogp) : T(0);
    return t;
}

/* ---------------------------------------------------------------------------------------------
 * Binary losses, one element. c1 weights the positive side (y * pos_weight for BCE, y * alpha for
 * focal), c0 the negative side ((1 - y), or (1 - y) * (1 - alpha)):
 *     l = -(c1 * A(p) + c0 * A(1 - p))        from probabilities
 *     l = -(c1 * f(z) + c0 * f(-z))           from logits
 * With g = 0 these are binary cross entropy; the code paths are the same, so focal with gamma = 0
 * reproduces cross entropy bit for bit. wl weights the loss (the sample weight), wd the derivatives
 * (sample weight / sum of weights for the mean); zero weights give exact zeros (0 * inf = 0).
 * ------------------------------------------------------------------------------------------- */
template <typename T> struct LGH { T l, g, h; };

/* The smoothed weight of the positive side, y (1 - eps) + eps/2, or of the negative side,
 * (1 - y)(1 - eps) + eps/2, each from the raw label: 1 - y is exact for hard labels, whereas 1 minus
 * the smoothed y would cancel (relative error 1e-10 at eps = 2e-6). The CPU's and GPU's binary
 * coefficients both. */
template <typename T> XENT_HD T smoothed_pair(T y, T eps, bool positive) {
    const T v = positive ? y : T(1) - y;
    return v * (T(1) - eps) + eps * T(0.5);
}

/* The scale of label_gap's result: 2^26 (float) or 2^56 (double) times the smallest subnormal
 * number is normal, so scaled probabilities and their differences keep full precision. */
template <typename T> XENT_HD T gap_scale() { return sizeof(T) == sizeof(float) ? T(0x1p26f) : T(0x1p56); }

/* The smoothed label y_s = y + eps (1/2 - y), times a power of two `scale` (y, eps in [0, 1]), as
 * hi + lo within an ulp or so of hi's ulp squared: 1/2 - y exactly by Fast2Sum (which holds for y
 * in [0, 1]), eps times it by prod_err, the sum with y by TwoSum. y itself (lo = 0) where eps = 0.
 * A rounded y_s would be off by up to half an ulp of y_s: thousands of ulp of a difference
 * p - y_s that is near p's own ulp. */
template <typename T> XENT_HD Split<T> smoothed_label(T y, T eps, T scale) {
    Split<T> r;
    const T ys = y * scale, half = T(0.5) * scale;
    r.hi = ys;
    r.lo = T(0);
    if (eps == T(0)) return r;
    const T t = half - ys;
    const T te = (half - t) - ys;
    const T uh = eps * t;
    const T ue = prod_err(eps, t, uh) + eps * te;
    r.hi = ys + uh;
    const T bb = r.hi - ys;
    r.lo = ((ys - (r.hi - bb)) + (uh - bb)) + ue;
    return r;
}

/* Whether the binary gradient from probabilities has two sides that can cancel: a soft label, or
 * any label smoothed. A hard label without smoothing leaves one term (nothing cancels), and the
 * gradient stays binary_from_prob's. The CPU's chunks and the GPU's elements both ask this. */
template <typename T> XENT_HD bool two_sided(T y, T eps) { return (eps != T(0)) | ((y != T(0)) & (y != T(1))); }

/* (p - y_s) * gap_scale, within an ulp or so of its exact value also where p nears y_s and the
 * difference is far below p: with y_s as hi + lo (smoothed_label), p - hi is exact (Sterbenz).
 * The scaling (exact: a power of two, all values <= 1) keeps the parts out of the subnormal range,
 * where the difference of a float label of 3e-40 and a smoothed 0.025 lost 20 ulp. */
template <typename T> XENT_HD T label_gap(T p, T y, T eps) {
    const Split<T> l = smoothed_label(y, eps, gap_scale<T>());
    const T ps = p * gap_scale<T>();
    if (eps == T(0)) return ps - l.hi;
    return (ps - l.hi) - l.lo;
}

/* The binary cross-entropy gradient from a probability where both sides carry the same weight
 * wb (pos_weight 1 or absent, focal gamma 0 with alpha absent or 0.5), times wd:
 *     k ((1 - y_s)/(1 - p) - y_s/p) = k (p - y_s) / (p (1 - p)),     k = wd wb,
 * from one accurate difference (gs = label_gap) instead of two terms that cancel as p nears y_s.
 * Taken where |p - y_s| <= min(p, 1 - p): there the quotient is at most 2 in magnitude (the weight
 * comes last, so nothing overflows that the two-term form would not) and p (1 - p), scaled as the
 * gap is, stays normal. Elsewhere the larger term is more than twice the smaller, so `two_term`
 * (binary_from_prob's gradient) is accurate, and it is returned, as it is for wb = 0 (a hard
 * label without smoothing), p = 0 or 1 (its limits) and NaN p. A zero weight gives +0. A pass of
 * its own after binary_from_prob: inside it, GCC stopped vectorising the gradient-only loop
 * (3 -> 20 ns). */
template <typename T> XENT_HD T balanced_prob_gradient(T p, T gs, T wd, T wb, T two_term) {
    p = p + T(0);
    const T q = T(1) - p;
    const T s = gap_scale<T>();
    const bool near = wb != T(0) && p > T(0) && q > T(0) && x_abs(gs) <= (p < q ? p : q) * s;
    return near ? (gs / ((p * s) * q)) * (wd * wb) + T(0) : two_term;
}

/* The scale of weighted_prob_gradient: gap_scale squared, 2^52 (float) or 2^112 (double).
 * Products of a weight and a scaled label then stay so far above the subnormal range that their
 * rounding errors, carried as low parts, keep their bits (for weights up to about 2^70, float, or
 * 2^900, double; beyond, the two-term gradient stays). */
template <typename T> XENT_HD T weighted_gap_scale() { return gap_scale<T>() * gap_scale<T>(); }

/* The cross-entropy gradient from a probability where the sides weigh differently (pos_weight
 * w1 != 1 = w0; focal gamma 0 with alpha = w1 != 1/2, w0 = 1 - alpha), times wd:
 *     wd (c0/(1 - p) - c1/p),    c1 = w1 y_s, c0 = w0 (1 - y_s).
 * It vanishes at p* = c1/(c0 + c1), not at y_s, so label_gap does not serve. With S =
 * weighted_gap_scale it is wd e / ((1 - p) S) for
 *     e = c0 S - (c1 S / p) (1 - p),
 * with c0, c1, 1 - p, the quotient (by its remainder) and the product each a sum of two floats
 * (prod_err, Fast2Sum, TwoSum) and the two parts subtracted last, so e is within an ulp or so of
 * exact also where they cancel (near p*). The parts are the terms' own size: forms through
 * w0 p - w1 y_s have parts up to 1/(1 - y_s) times larger (10^4 at y = 0.9999, which cost 1200
 * ulp), and a numerator c0 p - c1 (1 - p) can underflow where the gradient does not (p = 2 y,
 * y = 1e-35, pos_weight 2: the gradient is y, 1e-35 of its terms).
 * Taken wherever both parts are positive and finite, near p* or not: it is as accurate away from
 * p*, and more so where c1 = w1 y_s is subnormal (a label of 3e-40: binary_from_prob's rounded c1
 * was 8000 ulp off at p = 1e-43). A hard label (c1 or c0 zero), p = 0 or 1, NaN p and a part or
 * w1 beyond 2^120 (float) or 2^960 (double) keep `two_term` (binary_from_prob's gradient): c1/p
 * dominates there, and the two-term form is accurate. */
template <typename T> XENT_HD T weighted_prob_gradient(T p, T y, T eps, T w1, T w0, T wd, T two_term) {
    p = p + T(0);
    const T s = weighted_gap_scale<T>();
    const Split<T> l = smoothed_label(y, eps, s);                  /* y_s S */
    const T zh = s - l.hi, zl = ((s - zh) - l.hi) - l.lo;         /* (1 - y_s) S */
    const T ah = w0 * zh, al = prod_err(w0, zh, ah) + w0 * zl;    /* c0 S */
    const T bh = w1 * l.hi, bl = prod_err(w1, l.hi, bh) + w1 * l.lo;   /* c1 S */
    const T rh = bh / p, rp = rh * p;
    const T rl = (((bh - rp) - prod_err(rh, p, rp)) + bl) / p;    /* c1 S / p */
    const T qh = T(1) - p, ql = (T(1) - qh) - p;                  /* 1 - p */
    const T mh = rh * qh, ml = prod_err(rh, qh, mh) + (rh * ql + rl * qh);
    const T eh = ah - mh, eb = eh - ah, ee = (ah - (eh - eb)) + (-mh - eb);
    const T e = eh + (ee + (al - ml));
    /* below `big` Veltkamp's split in prod_err cannot overflow (it did at p = 1.9e-271, double,
     * pos_weight 2.75: NaN), so every CPU variant takes the same choice */
    const T big = sizeof(T) == sizeof(float) ? T(0x1p120f) : T(0x1p960);
    const bool ok = (ah > T(0)) & (mh > T(0)) & (ah < big) & (rh < big) & (w1 < big);
    return ok ? (e / (qh * s)) * wd + T(0) : two_term;
}

/* Cross entropy's gradient from a probability p where its two sides can cancel (two_sided):
 * balanced_prob_gradient where they weigh alike, weighted_prob_gradient where not; two_term,
 * binary_from_prob's gradient, elsewhere. The GPU's one call per element, the CPU's pass over a
 * chunk where the weights differ (its chunks that weigh alike stage label_gap instead). */
template <typename T> XENT_HD T prob_gradient_near_label(T p, T y, T eps, T w1, T w0, T wd, T two_term) {
    if (!two_sided(y, eps)) return two_term;
    if (w1 == w0) return balanced_prob_gradient(p, label_gap(p, y, eps), wd, w0, two_term);
    return weighted_prob_gradient(p, y, eps, w1, w0, wd, two_term);
}

template <typename T, typename Pow = PowLibm>
XENT_HD LGH<T> binary_from_prob(T p, T c1, T c0, T g, bool want_g, bool want_h, T wl, T wd) {
    LGH<T> o;
    if (is_nan(p)) { o.l = p; o.g = p; o.h = p; return o; }
    p = p + T(0);   /* -0 (a valid probability: it equals 0) as +0, so 1 / p is +inf, not -inf */
    T q = T(1) - p;                 /* exact for p >= 1/2 */
    Terms<T> pos, neg;
    pos.v = pos.d1 = pos.d2 = T(0);
    neg.v = neg.d1 = neg.d2 = T(0);
    if (c1 != T(0))
        pos = focal_prob_term<T, Pow>(c1 * wl, c1 * wd, p, q, complement_error(p, q), x_log(p), g, want_g, want_h);
    if (c0 != T(0))   /* the base p is exact */
        neg = focal_prob_term<T, Pow>(c0 * wl, c0 * wd, q, p, T(0), x_log1p(-p), g, want_g, want_h);
    o.l = T(0) - (pos.v + neg.v);   /* not -(...): a zero loss is +0, not -0 */
    o.g = want_g ? (neg.d1 - pos.d1) : T(0);
    o.h = want_h ? -(pos.d2 + neg.d2) : T(0);
    return o;
}

/* Focal loss's gradient (gamma != 0) from a float probability p where its sides can cancel
 * (two_sided), times wd, evaluated in double from the label, the smoothing and the weights and
 * rounded once:
 *     wd (c0 A'(1 - p) - c1 A'(p)),    c1 = w1 y_s, c0 = w0 (1 - y_s),    A: focal_prob_term.
 * It vanishes at a p* of no closed form, where the two terms cancel: in float they left the
 * gradient up to 2.6e8 ulp of itself off around p* (gamma 0.5, 2, 2.5, soft or smoothed labels;
 * benchmarks/RESULTS.md). In double the cancellation costs some 2^-52 of the terms, below a float
 * ulp of the result wherever p is more than a relative 2^-27 or so from p* (an ulp of float p is
 * 2^-23 of it). c1 and c0 are formed in double too (a few roundings, some 2^-52 of them), since
 * a float c1 would move p* by its own rounding. Pow: a double policy. NaN p gives NaN,
 * p = 0 or 1 the infinities of binary_from_prob. float64 keeps binary_from_prob's two terms: its
 * fix needs the focal terms in double-double. */
template <typename Pow>
XENT_HD float focal_prob_gradient_wide(float p, float y, float eps, float w1, float w0, float g, float wd) {
    const double c1 = double(w1) * smoothed_pair(double(y), double(eps), true);
    const double c0 = double(w0) * smoothed_pair(double(y), double(eps), false);
    const LGH<double> o = binary_from_prob<double, Pow>(double(p), c1, c0, double(g), true, false, 1.0, double(wd));
    return float(o.g);
}

template <typename T, typename Pow = PowLibm>
XENT_HD LGH<T> binary_from_logit(T z, T c1, T c0, T g, bool want_g, bool want_h, T wl, T wd) {
    LGH<T> o;  /* NaN z propagates through every term below (mul0 keeps NaN) */
    /* One exp and one log1p serve both sides: with e = exp(-|z|),
     * softplus(z) = max(z, 0) + log1p(e) and softplus(-z) = max(-z, 0) + log1p(e). */
    if (pow_is_ce<Pow>(g)) {
        T e = x_exp_nonpos(-x_abs(z));
        T d = T(1) + e;
        T big = x_recip_1to2(d), small = e * big;
        /* log1p(e) = log(d) + (rounding error of d) / d; the error e - (d - 1) is exact (Fast2Sum,
         * 1 >= e) and 1/d is at hand, so this needs no division of its own, unlike log1p */
        T lp = x_log_1to2(d) + (e - (d - T(1))) * big;
        const bool pos = z >= T(0);
        const T p = pos ? big : small, q = pos ? small : big;
        T sp_pos = (z > T(0) ? z : T(0)) + lp;     /* softplus(z)  = -log q */
        T sp_neg = (z < T(0) ? -z : T(0)) + lp;    /* softplus(-z) = -log p */
        /* Cross entropy: softplus terms (both >= 0), gradient (1-y) p - pw y q, Hessian (c0+c1) pq. */
        o.l = mul0(wl, mul0(c1, sp_neg) + mul0(c0, sp_pos));
        /* plain products: p and q are finite (or NaN with z), so c * p needs mul0's 0 * inf rule
         * nowhere, and c0 p - c1 q, a difference of two non-negative finite numbers, cannot overflow */
        o.g = want_g ? wd * (c0 * p - c1 * q) : T(0);
        o.h = want_h ? mul0(wd, (c0 + c1) * (small * big)) : T(0);
        return o;
    }
    /* Focal: the same quantities with the precision the powers need (focal_sigmoid). */
    const FocalSigmoid<T> f = focal_sigmoid(z);
    const T sp_pos = (z > T(0) ? z : T(0)) + f.lp;
    const T sp_neg = (z < T(0) ? -z : T(0)) + f.lp;
    Terms<T> pos, neg;
    pos.v = pos.d1 = pos.d2 = T(0);
    neg.v = neg.d1 = neg.d2 = T(0);
    if (c1 != T(0))
        pos = focal_logit_term<T, Pow>(f.p, f.q, -sp_neg, g, focal_logit_power<T, Pow>(f.q, f.qrel, g), want_g, want_h);
    if (c0 != T(0))
        neg = focal_logit_term<T, Pow>(f.q, f.p, -sp_pos, g, focal_logit_power<T, Pow>(f.p, f.prel, g), want_g, want_h);
    o.l = mul0(wl, T(0) - (mul0(c1, pos.v) + mul0(c0, neg.v)));   /* +0, not -0, for a zero loss */
    o.g = want_g ? mul0(wd, mul0(c0, neg.d1) - mul0(c1, pos.d1)) : T(0);
    o.h = want_h ? mul0(wd, -(mul0(c1, pos.d2) + mul0(c0, neg.d2))) : T(0);
    /* a NaN logit gives itself, as from probabilities: the NaN the terms above make has a sign
     * that depended on the instruction set and the element's place in a vector */
    const bool nan = z != z;
    o.l = nan ? z : o.l;
    o.g = nan && want_g ? z : o.g;
    o.h = nan && want_h ? z : o.h;
    return o;
}

/* One class of a categorical loss from probabilities: each entry of y_pred is an independent
 * input, so this is -c A(p) and its derivatives, weighted (wl for the loss, wd for the derivatives).
 * NaN p gives NaN everywhere, even where c = 0. */
template <typename T, typename Pow = PowLibm>
XENT_HD LGH<T> categorical_from_prob(T p, T c, T g, bool want_g, bool want_h, T wl, T wd) {
    LGH<T> o;
    o.l = o.g = o.h = T(0);
    if (is_nan(p)) { o.l = p; o.g = p; o.h = p; return o; }
    if (c == T(0)) return o;
    p = p + T(0);   /* -0 as +0 (binary_from_prob) */
    const T q = T(1) - p;
    Terms<T> t = focal_prob_term<T, Pow>(c * wl, c * wd, p, q, complement_error(p, q), x_log(p), g, want_g, want_h);
    o.l = T(0) - t.v;   /* +0, not -0, for a zero loss */
    o.g = -t.d1;
    o.h = -t.d2;
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * Softmax rows. A row is summarised by m = max_j x_j, its first index jm, and
 * s_rest = sum_{j != jm} exp(x_j - m), so that s = 1 + s_rest and lse = m + log1p(s_rest).
 * Then, for every class j, with d_j = m - x_j >= 0 (0 where x_j == m, also for infinite m):
 *     -log P_j = d_j + log1p(s_rest)        (two non-negative parts: no cancellation, so a
 *                                             confident-correct row keeps its tiny loss)
 *     P_j = exp(-d_j) / s,   1 - P_j = s_rest / s at j = jm (exact), 1 - P_j elsewhere (P_j <= 1/2).
 * ------------------------------------------------------------------------------------------- */
template <typename T> XENT_HD T softmax_gap(T x, T m) { return x == m ? T(0) : m - x; }

/* exp(x - m) with the rounding error of m - x taken into account (TwoSum gives it exactly):
 * exp(-(d + err)) = exp(-d) (1 - err). Without it, exp(-d) inherits a relative error of
 * d ulp/2 from the rounded d, 15 ulp at d = 30: too much for the tiny losses of confident rows. */
/* d = m - x rounded, and its rounding: d + gap_rounding(x, m, d) = m - x exactly (0 where d is
 * infinite) */
template <typename T> XENT_HD T gap_rounding_finite(T x, T m, T d) {   /* d finite */
    const T bb = d - m;
    return (m - (d - bb)) + (-x - bb);
}
template <typename T> XENT_HD T gap_rounding(T x, T m, T d) {
    const T err = gap_rounding_finite(x, m, d);
    return (d - d == T(0)) ? err : T(0);
}

template <typename T> XENT_HD T softmax_exp(T x, T m) {
    const T d = m - x;
    const T e = x_exp_gap(d, gap_rounding(x, m, d));
    return x == m ? T(1) : e;
}

/* softmax_exp of a row whose every x has |x| < 2^(emax - 1) (gap_safe; m is one of them): d = m - x
 * cannot overflow, so gap_rounding's test is not needed, and at x == m, d = err = 0 gives exactly
 * 1 (x_exp_gap), so neither is the tie's. The same bits as softmax_exp, in fewer instructions. */
template <typename T> XENT_HD bool gap_safe(T x) { return x_abs(x) < T(sizeof(T) == 4 ? 0x1p126 : 0x1p1022); }
template <typename T> XENT_HD T softmax_exp_safe(T x, T m) {
    const T d = m - x;
    return x_exp_gap(d, gap_rounding_finite(x, m, d));
}

/* Cross-entropy gradient at the row's maximum jm, S P_jm - c_jm with P_jm = 1 / s, s = 1 + s_rest:
 * formed as (S_rest - c_jm s_rest) / s, S_rest the coefficients' sum without jm and c_jm jm's own,
 * each summed apart. S_rest - S Q_jm (Q_jm = s_rest / s) held the same small difference exactly
 * only while S was about 1: soft labels that sum to 1000 lost up to 100 ulp in the cancellation
 * of S_rest and S Q_jm; here no large terms cancel. */
XENT_HD double ce_grad_at_max_num(double S_rest, double c_jm, double s_rest) { return S_rest - c_jm * s_rest; }
template <typename T> XENT_HD T ce_grad_at_max(double S_rest, double c_jm, double s_rest, double s) {
    return T(ce_grad_at_max_num(S_rest, c_jm, s_rest) / s);
}

/* ---------------------------------------------------------------------------------------------
 * Extra precision for the focal factor of a softmax class. Q_j^g multiplies Q_j's relative error by
 * g, and Q_j carried the roundings of exp, of the sum s_rest, of 1/s, of P_j = e_j / s and of
 * 1 - P_j (about 2 ulp): 25 ulp in the loss at g = 20 and 53-69 at g = 50 (float64). So a focal row
 * sums s_rest again in double-double (softmax_exp_wide, wide_add, rest_total; float rows in double), its
 * summary's roundings are kept as relative errors (softmax_row_err), each class with a coefficient
 * has its exp's error (softmax_exp_rel), and softmax_elem_inv sums them into Q's relative error
 * Qrel, which focal_softmax_elem applies with power_corrected, as the binary losses do.
 * ------------------------------------------------------------------------------------------- */
struct DD { double hi, lo; };

/* Which focal rows carry these errors: those with gamma > 4. It costs a second exp of every class
 * (1 thread, loss only: float32 1024 x 32000 13 -> 34 ms, float64 27 -> 59; 65536 x 10 float32
 * 1.3 -> 2.4 ms), while below, the errors it removes, about 1.7 gamma ulp of the loss (float64 6.8
 * ulp at gamma 4, 14.6 at 8, 25 at 20: 400 rows of 3 classes), stay well within the bar; rows up to
 * 4 keep their bits and speed. */
XENT_HD bool focal_row_exact(double g) { return g > 4.0; }

/* hi + lo += a, with the rounding of hi + a kept in lo (TwoSum: the error term is exact, so the
 * order of two operands does not change the bits) */
XENT_HD void dd_add(double& hi, double& lo, double a) {
    const double s = hi + a, bb = s - hi;
    lo += (hi - (s - bb)) + (a - bb);
    hi = s;
}

/* exp(x - m) for x < m as precisely as a row of T needs it. Double rows as hi + lo: m - x with
 * its rounding err (gap_rounding), exp_nonpos_split, and err applied to first order,
 * exp(-(d + err)) = exp(-d) (1 - err). Float rows in double, lo = 0 (m - x is exact there, and
 * exp's error, 2^-52, is 2^-28 of a float ulp: half the time of the double-double form). 0 at
 * x = m: the caller counts those 1s apart (a 1 in a float row's double sum absorbed the exps below
 * 2^-53, and s_rest lost them when jm's 1 was taken off). wide_add sums them: for float in double,
 * whose roundings over C terms stay below C 2^-53 relative. */
XENT_HD DD softmax_exp_wide(double x, double m) {
    const double d = m - x;
    const Split<double> e = exp_nonpos_split(-d);
    DD o;
    o.hi = x == m ? 0.0 : e.hi;
    o.lo = x == m ? 0.0 : e.lo - e.hi * gap_rounding(x, m, d);
    return o;
}
XENT_HD DD softmax_exp_wide(float x, float m) {
    DD o;
    o.hi = x == m ? 0.0 : x_exp_nonpos(double(x) - double(m));
    o.lo = 0.0;
    return o;
}
template <typename T> XENT_HD void wide_add(double& hi, double& lo, const DD& e) {
    if (sizeof(T) == sizeof(double)) {
        dd_add(hi, lo, e.hi);
        lo += e.lo;
    } else {
        hi += e.hi;
    }
}

/* s_rest from such a sum (hi, lo) of a row's exps below m, and `ones` for the other classes at m
 * (jm's own 1 is not in s_rest): normalised, |lo| <= ulp(hi) / 2 */
XENT_HD DD rest_total(double hi, double lo, double ones) {
    dd_add(hi, lo, ones);
    DD t;
    t.hi = hi + lo;
    t.lo = lo - (t.hi - hi);
    return t;
}

/* the relative error of e, an exp(x - m) of a row's summary (the exact value is e (1 + rel)) */
template <typename T> XENT_HD T softmax_exp_rel(T x, T m, T e) {
    const DD w = softmax_exp_wide(x, m);
    return (e > T(0) && x != m) ? T(((w.hi - double(e)) + w.lo) / double(e)) : T(0);
}

/* The roundings of a row's summary: the exact s_rest is s_rest + lo; s = 1 + s_rest and inv_s = 1 / s
 * have the relative errors s and inv (exact = computed (1 + rel)). on: focal_row_exact, else the
 * row's Q are taken as they are. */
struct SoftmaxRowErr { double lo, s, inv; bool on; };

XENT_HD SoftmaxRowErr softmax_row_err(bool on, double s_rest, double rest_lo, double s, double inv_s) {
    SoftmaxRowErr o;
    o.on = on;
    o.lo = rest_lo;
    const double bb = s - 1.0, sig = (1.0 - (s - bb)) + (s_rest - bb);   /* 1 + s_rest = s + sig */
    o.s = (sig + rest_lo) * inv_s;
    const double p = s * inv_s;                                          /* 1 - p exact */
    o.inv = (1.0 - p) - prod_err(s, inv_s, p);
    return o;
}

/* P_j, Q_j = 1 - P_j, -log P_j of one class, and with re.on Qrel, Q's relative error (exact Q =
 * Q (1 + Qrel)) from the row's errors re and e's own, erel:
 *     at jm:     Q = qd = s_rest / s rounded; exact Q = (s_rest + re.lo) / s (1 - re.s), and
 *                (s_rest + re.lo) / s = qd + (s_rest - qd s + re.lo) inv_s, qd s exactly by prod_err;
 *     elsewhere: P = e inv_s rounded (its error pe), exact P = P + pe + P (erel + re.inv - re.s),
 *                and Q = 1 - P rounded (its error clo), so Qrel = (clo - pe - P (...)) / Q.
 * CORR: -1 takes re.on as it comes (scalar code); 0 and 1 fix it at compile time, for vector loops
 * that the caller writes twice (a test of re.on inside kept GCC from vectorising them). */
template <typename T> struct SoftmaxElem { T P, Q, nlogP, Qrel; };

template <typename T, int CORR = -1>
XENT_HD SoftmaxElem<T> softmax_elem_inv(T d, T e, bool is_jm, double s, double inv_s, double s_rest, T log1p_rest,
                                        T erel, const SoftmaxRowErr& re) {
    SoftmaxElem<T> o;
    /* times inv_s = 1/s rather than / s: the caller computes the reciprocal once per row (a double
     * division per element was the largest cost of the focal loops); at most one more rounding */
    const double Pd = double(e) * inv_s;
    o.P = T(Pd);
    o.nlogP = d + log1p_rest;
    o.Qrel = T(0);
    const bool on = CORR < 0 ? re.on : CORR > 0;
    if (is_jm) {
        const double qd = s_rest / s;
        o.Q = T(qd);
        if (on && o.Q > T(0)) {
            const double p = qd * s, dq = ((s_rest - p) - prod_err(qd, s, p) + re.lo) * inv_s;
            o.Qrel = T(((qd - double(o.Q)) + dq) / double(o.Q) - re.s);
        }
    } else {
        o.Q = T(1) - o.P;
        if (on) {
            const T pe = sizeof(T) == sizeof(double) ? T(prod_err(double(e), inv_s, Pd)) : T(Pd - double(o.P));
            const T dP = pe + o.P * (erel + T(re.inv - re.s));
            o.Qrel = (complement_error(o.P, o.Q) - dP) / o.Q;   /* Q >= 1/2 away from jm */
        }
    }
    return o;
}

/* The same with 1/s computed here: in a loop over one row the compiler hoists it. */
template <typename T, int CORR = -1>
XENT_HD SoftmaxElem<T> softmax_elem(T d, T e, bool is_jm, double s, double s_rest, T log1p_rest, T erel,
                                    const SoftmaxRowErr& re) {
    return softmax_elem_inv<T, CORR>(d, e, is_jm, s, 1.0 / s, s_rest, log1p_rest, erel, re);
}

/* Focal pieces of one softmax class with coefficient c (alpha_j * class_weight_j * Y_j).
 * With F(P) = (1-P)^g log P and the loss -sum_j c_j F(P_j):
 *     Gj  = c_j P_j F'(P_j)            = c_j Q^g (1 - g P r),       r = log P / Q
 *     Ktj = c_j P_j H'(P_j) Q_j^2      = -g c_j P Q^(g+1) (log P - (g-1) P r + 2),  H = P F'
 * so that, with T = sum_j Gj and U = sum_j Ktj / Q_j^2,
 *     d loss / d x_k    = P_k T - G_k
 *     d2 loss / d x_k^2 = P_k Q_k T - Kt_k - P_k^2 (U - Kt_k / Q_k^2).
 * Kt (not K) is kept because K = Kt / Q^2 diverges at Q = 0 for g < 1 while the Hessian does not. */
template <typename T> struct FocalSoftmax { T loss, G, Kt; };

template <typename T, typename Pow = PowLibm>
XENT_HD FocalSoftmax<T> focal_softmax_elem(T c, const SoftmaxElem<T>& e, T g, bool want_g, bool want_h) {
    FocalSoftmax<T> o;
    o.loss = T(0); o.G = T(0); o.Kt = T(0);
    if (c == T(0)) return o;
    T logP = -e.nlogP;
    if (pow_is_ce<Pow>(g)) {
        o.loss = mul0(c, e.nlogP);
        o.G = c;
        return o;
    }
    T Qg = power_corrected(Pow::pw(e.Q, g), g, e.Qrel);
    o.loss = c * mul0(Qg, e.nlogP);
    if (want_g || want_h) {
        T r = log_over_complement(logP, e.Q);
        T Pr = (e.P == T(0)) ? T(0) : e.P * r;
        o.G = c * Qg * (T(1) - g * Pr);
        if (want_h) {
            T PlogP = (e.P == T(0)) ? T(0) : e.P * logP;
            /* P Q^(g+1) (log P - (g-1) P r + 2) = Q^(g+1) (P log P - (g-1) P Pr + 2P) */
            o.Kt = -g * c * (Qg * e.Q) * (PlogP - (g - T(1)) * e.P * Pr + T(2) * e.P);
        }
    }
    return o;
}

/* Sums of the focal pieces over a softmax row: the loss, Tt = sum_j G_j, and over j != jm
 * T_rest = sum G_j and U_rest = sum K_j (K_j = Kt_j / Q_j^2, finite there since Q_j >= 1/2);
 * G and Kt at jm are kept apart. */
template <typename T> struct FocalRowSums { double loss, Tt, T_rest, U_rest; T G_jm, Kt_jm; };

template <typename T> XENT_HD FocalRowSums<T> focal_row_sums_init() {
    FocalRowSums<T> r;
    r.loss = r.Tt = r.T_rest = r.U_rest = 0.0;
    r.G_jm = r.Kt_jm = T(0);
    return r;
}

template <typename T>
XENT_HD void focal_row_add(FocalRowSums<T>& r, const FocalSoftmax<T>& f, const SoftmaxElem<T>& el, bool is_jm) {
    r.loss += double(f.loss);
    r.Tt += double(f.G);
    if (is_jm) { r.G_jm = f.G; r.Kt_jm = f.Kt; }
    else { r.T_rest += double(f.G); r.U_rest += double(f.Kt) / (double(el.Q) * double(el.Q)); }
}

/* 1 / s_rest of a row, for focal_softmax_derivs' P_j / Q_jm = e / s_rest: both scaled by 2^200
 * when s_rest is so small that 1 / s_rest would overflow (exact: powers of two). Made once per row
 * by the caller: in the group kernel, whose vector lanes are rows, the compiler did not take the
 * division out of the class loop, and it was one double division per element. */
struct RestRecip { double sc, inv; };

XENT_HD RestRecip rest_recip(double s_rest) {
    RestRecip o;
    o.sc = s_rest < 0x1p-900 ? 0x1p200 : 1.0;
    o.inv = 1.0 / (s_rest * o.sc);
    return o;
}

/* K_j = Kt_j / Q_j^2 of a class away from jm, as the row sums take it; 0 where Kt is 0. */
template <typename T> XENT_HD double focal_k(T Kt, T Q) {
    return Kt == T(0) ? 0.0 : double(Kt) / (double(Q) * double(Q));
}

/* Gradient and Hessian diagonal of the focal loss at one class of a softmax row, from the row sums:
 *     grad = P T - G        (at jm: P T_rest - Q G_jm, which keeps the small difference exact)
 *     hess = P Q T - Kt - P^2 (U - K)      with P^2 K_jm = (e / s_rest)^2 Kt_jm away from jm. */
struct FocalDerivs { double g, h; };

/* with K_j given (focal_k's, kept from the row sums' pass by a caller that has room for it) */
template <typename T>
XENT_HD FocalDerivs focal_softmax_derivs_k(const SoftmaxElem<T>& el, const FocalSoftmax<T>& f, double Kj, T e,
                                           bool is_jm, const FocalRowSums<T>& r, const RestRecip& rr) {
    const double P = double(el.P), Q = double(el.Q);
    FocalDerivs o;
    if (is_jm) {
        o.g = P * r.T_rest - Q * double(r.G_jm);
        o.h = P * Q * r.Tt - double(r.Kt_jm) - P * P * r.U_rest;
    } else {
        const double ratio = (e == T(0)) ? 0.0 : (double(e) * rr.sc) * rr.inv;
        o.g = P * r.Tt - double(f.G);
        o.h = P * Q * r.Tt - double(f.Kt) - P * P * (r.U_rest - Kj) - ratio * ratio * double(r.Kt_jm);
    }
    return o;
}

/* with K_j computed here */
template <typename T>
XENT_HD FocalDerivs focal_softmax_derivs(const SoftmaxElem<T>& el, const FocalSoftmax<T>& f, T e, bool is_jm,
                                         const FocalRowSums<T>& r, const RestRecip& rr) {
    return focal_softmax_derivs_k(el, f, is_jm ? 0.0 : focal_k(f.Kt, el.Q), e, is_jm, r, rr);
}

}  // namespace xent

#endif  /* XENTC_XENT_MATH_H */
