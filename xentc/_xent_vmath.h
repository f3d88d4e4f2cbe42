/* Branch-free exp for the CPU kernels, written so that GCC and Clang vectorise the loops that
 * call it (libm's expf/exp are scalar calls, which is what keeps NumPy, PyTorch and scikit-learn
 * at 15-60x the copy time of their input).
 *
 * Method: Cody-Waite range reduction x = n ln2 + r with |r| <= ln2/2 (ln2 split so that n * ln2_hi
 * is exact), a polynomial for exp(r), and the scaling by 2^n done as two multiplications by
 * 2^(n/2)-ish powers so that results in the subnormal range are rounded once and overflow gives
 * inf. Inputs are clamped first (which also maps +-inf to the right limits); NaN is passed through
 * at the end. Measured accuracy (checked through the losses in tests/test_accuracy.py): float within 2 ulp of the
 * correctly rounded value over every float in [-104, 89]; double within 2 ulp on 10^7 points.
 *
 * No -ffast-math is needed or used: the round-to-nearest trick below relies on strict IEEE order.
 */
#ifndef XENTC_XENT_VMATH_H
#define XENTC_XENT_VMATH_H

#include <stdint.h>
#include <string.h>
#include <math.h>

/* Every function here is forced inline: a loop that calls one out of line cannot vectorise, and
 * GCC's inlining budget gave up on them inside the larger row kernels. */
#if defined(_MSC_VER)
#define XENT_ALWAYS_INLINE __forceinline
#else
#define XENT_ALWAYS_INLINE inline __attribute__((always_inline))
#endif

namespace xent {

static XENT_ALWAYS_INLINE float bits_to_float(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }
static XENT_ALWAYS_INLINE double bits_to_double(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }
static XENT_ALWAYS_INLINE uint64_t double_to_bits(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }

/* ln2 = LN2_HI + LN2_LO, LN2_HI with 32 significant bits (n LN2_HI is exact for |n| < 2^21) */
constexpr double LN2_HI = 6.93147180369123816490e-01, LN2_LO = 1.90821492927058770002e-10;

/* NONPOS: the caller guarantees x <= 0 (or NaN), so the upper clamp is left out */
template <bool NONPOS> static XENT_ALWAYS_INLINE float vexp_impl(float x) {
    const float xl = x < -104.0f ? -104.0f : x;
    const float xc = NONPOS ? xl : (xl > 89.0f ? 89.0f : xl);
    /* n = round(xc / ln2): adding and removing 1.5 * 2^23 rounds to nearest even */
    const float shifter = 12582912.0f;
    const float t = xc * 1.44269504088896341f + shifter;
    const float n = t - shifter;
    const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    /* Cephes expf polynomial: exp(r) = 1 + r + r^2 P(r) on |r| <= ln2/2, P evaluated in Estrin's
     * form (pairs c_k + c_(k+1) r combined with powers of r^2), not Horner's: the loops calling exp
     * are bound by the latency of their dependency chains, and this is 3 steps deep, not 5 */
    const float r2 = r * r;
    const float pa = 5.0000001201e-1f + 1.6666665459e-1f * r;
    const float pb = 4.1665795894e-2f + 8.3334519073e-3f * r;
    const float pc = 1.3981999507e-3f + 1.9875691500e-4f * r;
    float p = pa + r2 * (pb + r2 * pc);
    p = p * r2 + r + 1.0f;
    if (NONPOS) {
        /* n in [-150, 0]: p 2^n = (p 2^(n + 100)) 2^-100, the first product exact (normal), the
         * second rounded once, as the general case below (same bits). 2^(n + 100) from the bits of
         * t = n + 1.5 * 2^23, whose low 9 bits are n mod 512: shifted up by 23 they leave
         * (n + 227) << 23, the biased exponent of 2^(n + 100). Integer add and shift only (the
         * general case's conversion, halving and two exponents cost 5 more vector operations). */
        uint32_t tb; memcpy(&tb, &t, sizeof tb);
        const float res = (p * bits_to_float((tb + 227u) << 23)) * 0x1p-100f;
        return x != x ? x : res;
    }
    const int32_t ni = (int32_t)n;                   /* in [-150, 128] */
    const int32_t n1 = ni >> 1, n2 = ni - n1;         /* floor and ceiling of ni / 2: in [-75, 64] */
    const float res = p * bits_to_float((uint32_t)(n1 + 127) << 23) * bits_to_float((uint32_t)(n2 + 127) << 23);
    return x != x ? x : res;
}

template <bool NONPOS> static XENT_ALWAYS_INLINE double vexp_impl(double x) {
    const double xl = x < -746.0 ? -746.0 : x;
    const double xc = NONPOS ? xl : (xl > 710.0 ? 710.0 : xl);
    const double shifter = 6755399441055744.0;       /* 1.5 * 2^52 */
    const double t = xc * 1.4426950408889634074 + shifter;
    const double n = t - shifter;
    const double r = (xc - n * LN2_HI) - n * LN2_LO;   /* n LN2_HI exact */
    /* exp(r) = 1 + r + r^2 P(r), P of degree 9 fitted to (exp(r) - 1 - r) / r^2 on |r| <= ln2/2
     * (mpmath.chebyfit, 50 digits, then rounded to double): approximation error 2^-55.6 relative
     * to exp(r); evaluated in Estrin's form, like the float P (4 steps deep, not 10) */
    const double r2 = r * r, r4 = r2 * r2;
    const double q0 = 5.0000000000000011e-01 + 1.6666666666666669e-01 * r;
    const double q1 = 4.1666666666624164e-02 + 8.3333333333300650e-03 * r;
    const double q2 = 1.3888888917196719e-03 + 1.9841269863040545e-04 * r;
    const double q3 = 2.4801521322368692e-05 + 2.7557268480310024e-06 * r;
    const double q4 = 2.7620075879983367e-07 + 2.5100375832561234e-08 * r;
    double p = (q0 + r2 * q1) + r4 * ((q2 + r2 * q3) + r4 * q4);
    p = p * r2 + r + 1.0;
    if (NONPOS) {
        /* n in [-1077, 0]: p 2^n = (p 2^(n + 600)) 2^-600, exact then rounded once, as below (same
         * bits); the low 12 bits of t are n mod 4096, so (bits(t) + 1623) << 52 is 2^(n + 600) */
        const double res = (p * bits_to_double((double_to_bits(t) + 1623u) << 52)) * 0x1p-600;
        return x != x ? x : res;
    }
    /* n in [-1077, 1025] as an integer: t lies in [2^52, 2^53), where the ulp is 1, so the bits
     * of t minus those of the shifter are n (integer operations only; converting n cost more).
     * 2^n = 2^n1 2^n2 with n1 = floor(n / 2), n2 = n - n1 in [-539, 513], biased by 1023:
     * e1 = n1 + 1023 = (n + 1078) / 2 + 484 (n + 1078 > 0: a logical shift) */
    const uint64_t nb = double_to_bits(t) - double_to_bits(shifter) + 1078;
    const uint64_t e1 = (nb >> 1) + 484, e2 = nb + 968 - e1;
    const double res = p * bits_to_double(e1 << 52) * bits_to_double(e2 << 52);
    return x != x ? x : res;
}

static XENT_ALWAYS_INLINE float vexp(float x) { return vexp_impl<false>(x); }
static XENT_ALWAYS_INLINE double vexp(double x) { return vexp_impl<false>(x); }
static XENT_ALWAYS_INLINE float vexp_nonpos(float x) { return vexp_impl<true>(x); }
static XENT_ALWAYS_INLINE double vexp_nonpos(double x) { return vexp_impl<true>(x); }


/* log(2^e (1 + m)) for m in [sqrt(1/2) - 1, sqrt(2) - 1), fe = e as a float: Cephes' logf
 * polynomial, evaluated in Estrin's form (4 steps deep, not 9: see vexp). vlog and vlog_1to2
 * share it. */
static XENT_ALWAYS_INLINE float logf_reduced(float fe, float m) {
    const float z = m * m, z2 = z * z;
    const float a0 = 3.3333331174e-1f - 2.4999993993e-1f * m;
    const float a2 = 2.0000714765e-1f - 1.6668057665e-1f * m;
    const float a4 = 1.4249322787e-1f - 1.2420140846e-1f * m;
    const float a6 = 1.1676998740e-1f - 1.1514610310e-1f * m;
    float y = (a0 + z * a2) + z2 * ((a4 + z * a6) + z2 * 7.0376836292e-2f);
    y = y * m * z;
    y = y + fe * -2.12194440e-4f;
    y = y - 0.5f * z;
    return (m + y) + fe * 0.693359375f;
}

/* log of x > 0 (normal or subnormal); log(0) = -inf, log(x < 0) = NaN, log(inf) = inf. Float:
 * Cephes' logf polynomial on the mantissa in [sqrt(1/2), sqrt(2)); double: fdlibm's
 * log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f / (2 + f). */
static XENT_ALWAYS_INLINE float vlog(float x) {
    const bool sub = x < 1.17549435e-38f;
    const float xs = sub ? x * 8388608.0f : x;            /* 2^23 */
    uint32_t u; memcpy(&u, &xs, sizeof u);
    int32_t e = (int32_t)((u >> 23) & 0xff) - 126;
    float m = bits_to_float((u & 0x007fffffu) | 0x3f000000u);   /* in [0.5, 1) */
    if (sub) e -= 23;
    const bool small = m < 0.707106781186547524f;
    e = small ? e - 1 : e;
    m = small ? m + m - 1.0f : m - 1.0f;
    float r = logf_reduced((float)e, m);
    r = x == 0.0f ? -INFINITY : r;
    r = x < 0.0f ? NAN : r;
    r = (x == INFINITY || x != x) ? x : r;
    return r;
}

/* s (f^2/2 + R(s^2)), s = f / (2 + f): the part of fdlibm's log(1 + f) beyond f - f^2/2
 * (hfsq = f^2/2), for f in [sqrt(1/2) - 1, sqrt(2) - 1] */
static XENT_ALWAYS_INLINE double log1p_tail(double f, double hfsq) {
    const double s = f / (2.0 + f);
    const double z = s * s;
    const double w = z * z;
    const double t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01));
    const double t2 = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01 + w * (1.818357216161805012e-01
                          + w * 1.479819860511658591e-01)));
    const double R = t1 + t2;
    return s * (hfsq + R);
}
/* log(2^e (1 + f)) for f in [sqrt(1/2) - 1, sqrt(2) - 1], e an integer as a double: fdlibm's
 * log(1 + f) = f - f^2/2 + log1p_tail, plus e ln2 in two parts. The double vlog and vlog_1to2
 * share it. */
static XENT_ALWAYS_INLINE double log_reduced(double de, double f) {
    const double hfsq = 0.5 * f * f;
    return de * LN2_HI - ((hfsq - (log1p_tail(f, hfsq) + de * LN2_LO)) - f);
}

/* x > 0 (normal or subnormal) as 2^e (1 + f), f in [sqrt(1/2) - 1, sqrt(2) - 1), e as a double */
static XENT_ALWAYS_INLINE void log_reduce(double x, double& e, double& f) {
    const bool sub = x < 2.2250738585072014e-308;
    const double xs = sub ? x * 18014398509481984.0 : x;  /* 2^54 */
    uint64_t u; memcpy(&u, &xs, sizeof u);
    /* The exponent as a double, exactly: the biased exponent k is made the low bits of 2^52 + k,
     * from which 2^52 is subtracted. 64-bit integer operations only: an int32_t exponent made GCC
     * vectorise every double loop that takes a log at half width (AVX-512: 4 lanes, not 8), and a
     * packed int64 -> double conversion needs AVX-512DQ. The same values as before: same bits. */
    e = (bits_to_double(((u >> 52) & 0x7ff) | 0x4330000000000000ull) - 4503599627370496.0) - 1023.0;
    double m = bits_to_double((u & 0x000fffffffffffffull) | 0x3ff0000000000000ull);  /* in [1, 2) */
    e = sub ? e - 54.0 : e;
    const bool big = m > 1.41421356237309504880;
    e = big ? e + 1.0 : e;
    m = big ? m * 0.5 : m;
    f = m - 1.0;
}

static XENT_ALWAYS_INLINE double vlog(double x) {
    double e, f;
    log_reduce(x, e, f);
    double r = log_reduced(e, f);
    r = x == 0.0 ? -INFINITY : r;
    r = x < 0.0 ? NAN : r;
    r = (x == INFINITY || x != x) ? x : r;
    return r;
}

/* log(d) for d in [1, 2] (or NaN), the same bits as vlog(d), without the exponent and mantissa
 * taken from the bits: there the exponent e is 0 (d < sqrt 2, mantissa term f = d - 1) or 1
 * (f = d / 2 - 1), both subtractions exact. For log1p(e), e in [0, 1], through d = 1 + e. */
static XENT_ALWAYS_INLINE float vlog_1to2(float d) {
    /* vlog's test m < sqrt(1/2) with m = d / 2, doubled (exactly) */
    const bool hi = !(d < 2.0f * 0.707106781186547524f);
    return logf_reduced(hi ? 1.0f : 0.0f, hi ? d * 0.5f - 1.0f : d - 1.0f);
}

static XENT_ALWAYS_INLINE double vlog_1to2(double d) {
    const bool big = d > 1.41421356237309504880;
    const double f = big ? d * 0.5 - 1.0 : d - 1.0;
    const double de = big ? 1.0 : 0.0;
    return log_reduced(de, f);
}


/* log1p(x) for x >= -1 through log(1 + x) and the correction x / ((1 + x) - 1) for the rounding
 * of 1 + x (Goldberg's method); exact at x = 0 and for tiny x. */
template <typename T> static XENT_ALWAYS_INLINE T vlog1p(T x) {
    const T u = T(1) + x;
    const T d = u - T(1);
    const T r = vlog(u) * (x / (d == T(0) ? T(1) : d));
    return d == T(0) ? x : (u == T(INFINITY) ? u : r);
}

}  // namespace xent

#endif  /* XENTC_XENT_VMATH_H */
