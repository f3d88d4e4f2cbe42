/* CPU array loops of xentc: one block of samples (binary) or rows (categorical) at a time.
 * The Cython layer (_kernels.pyx) splits the work into fixed-size blocks, runs the blocks on
 * OpenMP threads, and adds the per-block sums in block order, so results are the same bits for
 * any thread count. The per-element formulas live in _xent_math.h.
 *
 * Data checks happen here, as the data is read: the first bad element of a block is reported
 * with an error code and its index, and Python turns it into a message naming the argument.
 */
#ifndef XENTC_XENT_ROWS_H
#define XENTC_XENT_ROWS_H

#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <math.h>
#include "_xent_math.h"
#include <type_traits>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace xent {

enum ErrorCode {
    ERR_NONE = 0,
    ERR_LABEL_RANGE = 1,   /* integer label outside [0, C) and not ignore_index */
    ERR_LABEL_NAN = 2,     /* NaN label */
    ERR_LABEL_UNIT = 3,    /* float label outside [0, 1] */
    ERR_PROB = 4,          /* probability outside [0, 1] */
    ERR_WEIGHT = 5,        /* sample weight NaN, negative or infinite */
};

inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

inline int thread_num() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

inline int have_openmp() {
#ifdef _OPENMP
    return _OPENMP;
#else
    return 0;
#endif
}

/* A block's contribution: a compensated (Neumaier) sum, and its first error. */
struct BlockResult {
    double sum, comp;
    int err;
    int64_t err_i, err_j;
};

static inline void kahan_step(double& sum, double& comp, double v) {
    double t = sum + v;
    if (t - t == 0.0) {   /* finite: keep the rounding error; an inf or NaN sum needs none */
        if (fabs(sum) >= fabs(v)) comp += (sum - t) + v;
        else comp += (v - t) + sum;
    }
    sum = t;
}

static inline void kahan_add(BlockResult* r, double v) { kahan_step(r->sum, r->comp, v); }

/* The losses l[0, n) of one group of R (16) rows into a compensated sum. float losses: their total
 * in double first, by a fixed tree (its roundings at most 4 x 2^-53 of the group's magnitude, far
 * below float32's 2^-24), then one compensated step; a step per row was a chain of dependent
 * additions, 5-7% of a 10-class float32 CE call (Zen 3; perf). double losses: a step per row. */
template <typename T, int R>
static inline void add_group_losses(double& sum, double& comp, const T* l, int n) {
    if (sizeof(T) == sizeof(double)) {
        for (int r = 0; r < n; ++r) kahan_step(sum, comp, double(l[r]));
        return;
    }
    double v[R];
    for (int r = 0; r < R; ++r) v[r] = r < n ? double(l[r]) : 0.0;
    for (int w = R / 2; w >= 1; w /= 2)
        for (int r = 0; r < w; ++r) v[r] += v[r + w];
    kahan_step(sum, comp, v[0]);
}

static inline void set_error(BlockResult* r, int code, int64_t i, int64_t j) {
    if (r->err == ERR_NONE) { r->err = code; r->err_i = i; r->err_j = j; }
}

/* Loops that reduce (sums, maxima) keep lanes<T>() independent accumulators, combined in a fixed
 * order at the end: the compiler can then vectorise them without -ffast-math, and the result is
 * the same bits whatever vector width the machine has. 16 for float, so the float work fills a
 * whole 512-bit vector (with 8 double lanes GCC vectorised it at half width, the widest type
 * setting the vector factor; measured 20% slower), 8 for double. */
template <typename T> constexpr int lanes() { return sizeof(T) == sizeof(float) ? 16 : 8; }

/* The sum of NL (8 or 16) lane accumulators, as a fixed tree. */
template <int NL> static inline double lane_total(const double* acc) {
    double a = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    double b = (acc[4] + acc[5]) + (acc[6] + acc[7]);
    if (NL == 8) return a + b;
    double c = (acc[8] + acc[9]) + (acc[10] + acc[11]);
    double d = (acc[12] + acc[13]) + (acc[14] + acc[15]);
    return (a + b) + (c + d);
}

/* One term v into lane sum s with its error c (the sum is s - c): for double terms a Kahan step, the
 * rounding error of each addition kept (a row's 1000 terms in 8 lanes lost up to 26 ulp of a
 * gradient with plain sums, where one large coefficient met many small ones); float terms need
 * none (see binary_span), so c stays 0. Written for lanes-outermost loops, which GCC vectorises. */
template <typename T> static XENT_ALWAYS_INLINE void lane_add(double& s, double& c, double v) {
    if (sizeof(T) == sizeof(float)) {
        s += v;
    } else {
        const double d = v - c;
        const double t = s + d;
        const double e = (t - s) - d;
        c = (t - t == 0.0) ? e : 0.0;   /* an inf or NaN sum needs no compensation */
        s = t;
    }
}

/* The total of lane sums acc with their errors cmp (lane_add): for float the plain lane_total, for
 * double a compensated sum of both. */
template <typename T, int NL> static inline double lane_total_comp(const double* acc, const double* cmp) {
    if (sizeof(T) == sizeof(float)) return lane_total<NL>(acc);
    double sum = 0.0, comp = 0.0;
    for (int k = 0; k < NL; ++k) { kahan_step(sum, comp, acc[k]); kahan_step(sum, comp, -cmp[k]); }
    return sum - sum == 0.0 ? sum + comp : sum;
}

/* A Kahan step without selects, for loops that GCC if-converts only without them: an infinite
 * or NaN term makes s and c NaN, so a plain sum of the same terms kept beside says whether the
 * Kahan sum is to be trusted (lane_total_free). */
static XENT_ALWAYS_INLINE void kahan_free(double& s, double& c, double v) {
    const double d = v - c;
    const double t = s + d;
    c = (t - s) - d;
    s = t;
}

/* The total of lanes summed both ways: plain sums acc, Kahan sums ks with errors kc (kahan_free).
 * Float terms take the plain sums alone (see lane_add); double ones the Kahan sums where the
 * plain total is finite, else the plain total (inf, or NaN), which is then exact. */
template <typename T, int NL> static inline double lane_total_free(const double* acc, const double* ks,
                                                                  const double* kc) {
    const double plain = lane_total<NL>(acc);
    if (sizeof(T) == sizeof(float) || !(plain - plain == 0.0)) return plain;
    return lane_total_comp<T, NL>(ks, kc);
}

/* Whether a row's sums over classes of a chunk of terms are formed in fresh lane sums, the chunk's
 * CHUNK / NL terms per lane, and then added to the row's lanes with lane_add (which keeps each
 * addition's error): for double, where a row can mix one large term (a coefficient near 1) with
 * many small ones (1000 classes of 1e-7), and plain lane sums lost up to 26 ulp of the largest
 * class's gradient; the error is then that of the few additions within a chunk. A Kahan step per
 * term (lane_add in the loop) made soft-label rows 30% slower. Float terms need none (see
 * binary_span). The focal loops keep a Kahan step per term instead (kahan_free), which cost
 * them less. */
template <typename T> constexpr bool chunk_partials() { return sizeof(T) == sizeof(double); }

/* Check of a label that must lie in [0, 1]. */
template <typename T> static inline int unit_label_error(T y) {
    if (y != y) return ERR_LABEL_NAN;
    if constexpr (std::is_unsigned<T>::value) { if (y > T(1)) return ERR_LABEL_UNIT; }
    else if (y < T(0) || y > T(1)) return ERR_LABEL_UNIT;
    return ERR_NONE;
}

/* float32 bits, and the exact loads of float16 and bfloat16 (16-bit sample weights, and the
 * 16-bit arrays of xentc/_half_cpu.py: load16_block below). */
static inline uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* float16 -> float32, exact: exponent rebiased (inf and NaN keep their mantissa, as NumPy's),
 * subnormals m 2^-24 by one exact multiplication. */
static inline float from_float16(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    const uint32_t normal = ((e + 112u) << 23) | (m << 13);
    const uint32_t special = 0x7f800000u | (m << 13);
    const uint32_t sub = bits_of(float(m) * 5.9604644775390625e-08f);   /* 2^-24 */
    return float_of(sign | (e == 31u ? special : e == 0u ? sub : normal));
}

static inline float from_bfloat16(uint16_t h) { return float_of(uint32_t(h) << 16); }

#if defined(__F16C__)
/* The AVX2 variant's 16-bit conversions, 8 at a time by F16C (the AVX-512 variant, built without
 * it, vectorises the scalar functions). The bits of from_float16 and to_float16 (of the float16
 * part of convert16_block below), NaN too: vcvtph2ps quiets a signalling NaN, whose quiet bit is
 * cleared again; vcvtps2ph keeps a NaN's sign and top payload bits, where to_float16 gives 0x7e00
 * with the sign. Finite values and infinities: both round to nearest even, overflow to inf
 * included; vcvtps2ph ignores the MXCSR's flush-to-zero mode, and a float32 subnormal (which the
 * denormals-are-zero mode reads as 0 in both) rounds to a zero float16 anyway. With GCC's
 * vectorisation of the scalar loops the float16 y_pred of a binary CE from logits cost 1.6x
 * float32 y_pred on Zen 3 (conversions took a quarter of the call). */
static XENT_ALWAYS_INLINE void halves8_to_float(const uint16_t* __restrict h, float* __restrict out) {
    const __m128i hv = _mm_loadu_si128((const __m128i*)h);
    const __m256i f = _mm256_castps_si256(_mm256_cvtph_ps(hv));
    const __m256i mag = _mm256_and_si256(_mm256_cvtepu16_epi32(hv), _mm256_set1_epi32(0x7fff));
    /* a signalling NaN: 0x7c00 < |h| < 0x7e00 */
    const __m256i snan = _mm256_and_si256(_mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7c00)),
                                          _mm256_cmpgt_epi32(_mm256_set1_epi32(0x7e00), mag));
    const __m256i quiet_bit = _mm256_and_si256(snan, _mm256_set1_epi32(0x00400000));
    _mm256_storeu_si256((__m256i*)out, _mm256_andnot_si256(quiet_bit, f));
}

static XENT_ALWAYS_INLINE void float8_to_halves(const float* __restrict f, uint16_t* __restrict h) {
    const __m256 v = _mm256_loadu_ps(f);
    const __m128i r = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    const __m128i nan16 = _mm_packs_epi32(_mm256_castsi256_si128(nan), _mm256_extracti128_si256(nan, 1));
    const __m128i canon = _mm_or_si128(_mm_and_si128(r, _mm_set1_epi16(short(0x8000))), _mm_set1_epi16(0x7e00));
    _mm_storeu_si128((__m128i*)h, _mm_blendv_epi8(r, canon, nan16));
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* Sums of sample weights (the mean's denominator), with their checks.                          */
/* ------------------------------------------------------------------------------------------ */
/* Sample weights given once per stretch of elements (a weight per row of (N, L) binary labels, per
 * label, or one for all, broadcast by the caller): element i takes sw[(i / rep) % len]. rep = 1
 * and len = n (the number of elements) is one weight per element. Such weights are read in
 * pieces through stage_weights; broadcast to a full array first, a scalar weight made a binary
 * call 4.6x slower than none. */
static inline bool weights_repeat(const void* sw, int64_t rep, int64_t len, int64_t i1) {
    return sw && (rep != 1 || len < i1);
}

/* Binary sample weights of another float type than the compute type T (float64 weights beside
 * float32 y_pred, CuPy's and NumPy's default dtype for weights; float16 or bfloat16 ones beside
 * 16-bit y_pred, which xentc/_half_cpu.py computes in float32) are read as they are, WEIGHT_PIECE
 * at a time through the same staging as repeating weights, so that no converted copy of y_pred's
 * size is made. A weight is converted to T as it is staged (the bits of converting the weights
 * first: 16-bit ones exactly); a negative one becomes NaN there, so that the weight pass flags
 * -1e-300 in float64 (it would round to -0.0f, a valid weight) as it flags NaN and the infinity of
 * an overflow. */
enum WeightKind { WK_SAME = 0, WK_F32 = 1, WK_F64 = 2, WK_F16 = 3, WK_BF16 = 4 };

/* 16-bit weights, by their bits: one type each, so that the templates below tell them apart. */
struct Half16 { uint16_t bits; };
struct BHalf16 { uint16_t bits; };
static inline float weight_value(Half16 v) { return from_float16(v.bits); }
static inline float weight_value(BHalf16 v) { return from_bfloat16(v.bits); }
static inline float weight_value(float v) { return v; }
static inline double weight_value(double v) { return v; }

/* The rule for a weight of another type, by its value: kept if non-negative, else NaN. */
template <typename T, typename V> static XENT_ALWAYS_INLINE T weight_checked(V v) {
    return v >= 0 ? T(v) : T(NAN);
}

template <typename T, typename W> static inline T weight_cast(W w) {
    if constexpr (std::is_same<T, W>::value) return w;
    else return weight_checked<T>(weight_value(w));
}

/* n float16 weights as float32, exactly. The AVX-512 variant converts 16 at a time (vcvtph2ps, part
 * of AVX512F), the AVX2 variant 8 at a time (halves8_to_float); GCC ran from_float16's loop at half
 * width with the lanes moved between halves: float32 BCE from logits with float16 weights took 13.8
 * ms against 10.0 with float32 ones (AVX-512, one thread, 10^7). The AVX-512 vcvtph2ps leaves a
 * signalling NaN quiet, which from_float16 keeps: a NaN weight is refused whatever its bits, so
 * nothing depends on that. */
static inline void halves_to_float(const Half16* __restrict h, int64_t n, float* __restrict out) {
    int64_t k = 0;
#if defined(__AVX512F__)
    for (; k + 16 <= n; k += 16)
        _mm512_storeu_ps(out + k, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(h + k))));
#elif defined(__F16C__)
    for (; k + 8 <= n; k += 8) halves8_to_float(&h[k].bits, out + k);
#endif
    for (; k < n; ++k) out[k] = from_float16(h[k].bits);
}

/* Runs of at most this many elements take one weight each through a store of a whole vector of it
 * (the next run overwrites the rest), so staging buffers have WEIGHT_RUN entries past the piece. */
constexpr int WEIGHT_RUN = 16;

/* The weights of elements i .. i + n - 1 into out, in T; out has n + WEIGHT_RUN entries. */
template <typename W, typename T>
static void stage_weights(const void* swv, int64_t rep, int64_t len, int64_t i, int n, T* __restrict out) {
    const W* __restrict sw = (const W*)swv;
    const int64_t q = i / rep;
    int64_t r = i - q * rep, j = q % len;
    if (rep > 1 && rep <= WEIGHT_RUN) {
        /* short runs (a weight per row of (N, 10) labels): the rest of the first run, then whole
         * runs, each one fixed-length store, the last one past n into the spare entries. With the
         * general loop below, its bookkeeping per run took as long as the loss (float32 BCE from
         * logits, 10^7 as (10^6, 10): 8.0 ms with a weight per row against 5.5 per element) */
        for (int64_t k = -r; k < n;) {
            const T v = weight_cast<T>(sw[j]);
            const int64_t at = k < 0 ? 0 : k;
            for (int u = 0; u < WEIGHT_RUN; ++u) out[at + u] = v;
            k += rep;
            if (++j == len) j = 0;
        }
        return;
    }
    /* in runs: a stretch of one weight (rep > 1), or of consecutive weights (rep = 1); element by
     * element with a counter took half the time of the loss */
    for (int k = 0; k < n;) {
        if (rep == 1) {
            const int m = int((len - j) < (n - k) ? len - j : n - k);
            if constexpr (std::is_same<W, Half16>::value) {
                /* through float32 (exact), then weight_cast's rule */
                float f[WEIGHT_RUN * 4];
                for (int u0 = 0; u0 < m; u0 += WEIGHT_RUN * 4) {
                    const int mu = (m - u0) < WEIGHT_RUN * 4 ? m - u0 : WEIGHT_RUN * 4;
                    halves_to_float(sw + j + u0, mu, f);
                    for (int u = 0; u < mu; ++u) out[k + u0 + u] = weight_checked<T>(f[u]);
                }
            } else {
                for (int u = 0; u < m; ++u) out[k + u] = weight_cast<T>(sw[j + u]);
            }
            k += m;
            j = (j + m == len) ? 0 : j + m;
        } else {
            const int m = int((rep - r) < (n - k) ? rep - r : n - k);
            const T v = weight_cast<T>(sw[j]);
            for (int u = 0; u < m; ++u) out[k + u] = v;
            k += m;
            r += m;
            if (r == rep) { r = 0; if (++j == len) j = 0; }
        }
    }
}

template <typename T> using stage_weights_fn = void (*)(const void*, int64_t, int64_t, int64_t, int, T*);

template <typename T> static stage_weights_fn<T> weight_stager(int kind) {
    switch (kind) {
    case WK_F32: return stage_weights<float, T>;
    case WK_F64: return stage_weights<double, T>;
    case WK_F16: return stage_weights<Half16, T>;
    case WK_BF16: return stage_weights<BHalf16, T>;
    default: return stage_weights<T, T>;
    }
}

/* Whether weights are read through stage_weights: repeating ones, or ones of another type than T. */
static inline bool weights_staged(const void* sw, int kind, int64_t rep, int64_t len, int64_t i1) {
    return weights_repeat(sw, rep, len, i1) || (sw && kind != WK_SAME);
}

/* The weight of element i, in T (as stage_weights gives it). */
template <typename T> static inline T weight_at(const void* sw, int kind, int64_t rep, int64_t len, int64_t i) {
    const int64_t j = rep == 1 && i < len ? i : (i / rep) % len;
    switch (kind) {
    case WK_F32: return weight_cast<T>(((const float*)sw)[j]);
    case WK_F64: return weight_cast<T>(((const double*)sw)[j]);
    case WK_F16: return weight_cast<T>(((const Half16*)sw)[j]);
    case WK_BF16: return weight_cast<T>(((const BHalf16*)sw)[j]);
    default: return ((const T*)sw)[j];
    }
}

constexpr int WEIGHT_PIECE = 1024;   /* elements staged at a time (a multiple of every lane count) */

struct WeightArgs {
    const int64_t* labels;   /* integer labels, contiguous, or NULL */
    const void* sw;          /* sample weights, contiguous, or NULL (all 1) */
    int swkind;              /* WeightKind of sw (the categorical kernels: WK_SAME only) */
    int64_t sw_rep, sw_len;  /* element i takes sw[(i / sw_rep) % sw_len] (weights_repeat) */
    const void* cw;          /* class weights (length C), or NULL (all 1) */
    int64_t C;
    int64_t ignore_index;
    int has_ignore;
};

/* The class a row reads: its label if keep, else 0 (a class that exists, whose value the caller
 * zeroes), by a mask: GCC made `keep ? y : 0` a branch on keep, as random as the labels. */
static XENT_ALWAYS_INLINE int64_t class_or_zero(int64_t y, bool keep) { return y & -int64_t(keep); }

/* An integer label in the weight pass: counted if in [0, C) and not ignore_index, an error if
 * neither. Branch-free, for the loops of weight_block that vectorise. */
struct LabelRule {
    uint64_t C;
    int64_t ign;
    bool has_ign;
    LabelRule(int64_t C_, int64_t ign_, int has_ign_) : C(uint64_t(C_)), ign(ign_), has_ign(has_ign_ != 0) {}
    explicit LabelRule(const WeightArgs* a) : LabelRule(a->C, a->ignore_index, a->has_ignore) {}
    XENT_ALWAYS_INLINE bool ignored(int64_t y) const { return has_ign & (y == ign); }
    XENT_ALWAYS_INLINE bool kept(int64_t y) const { return (uint64_t(y) < C) & !ignored(y); }
    XENT_ALWAYS_INLINE bool bad(int64_t y) const { return !((uint64_t(y) < C) | ignored(y)); }
};

/* A weight added into its lane: float weights plainly, double ones by a Kahan step without the
 * select of lane_add, which GCC compiled into two branches per weight here (float64 weights,
 * 10^7, one thread: 8.6 ms); weight_lanes_finish then gives each lane lane_add's result. */
template <typename T> static XENT_ALWAYS_INLINE void weight_add(double& s, double& c, double v) {
    if (sizeof(T) == sizeof(float)) s += v;
    else kahan_free(s, c, v);
}

/* Weights w[0 .. n) (of type W, taken in T as stage_weights takes them) checked and added into
 * lanes<T>() lane sums (weight_add), lanes outermost, the form GCC vectorises; bad is set if any
 * is negative, NaN or infinite in T. The check is a loop of its own, which GCC vectorises: or-ed
 * into one flag in the loop of the sums it stayed scalar (vucomiss, setb and or per weight). */
template <typename T, typename W>
static XENT_ALWAYS_INLINE void weight_lanes(const W* __restrict w, int64_t n, double* sa, double* sc, int& bad) {
    constexpr int NL = lanes<T>();
    if constexpr (std::is_same<W, Half16>::value) {
        /* float16: through float32 (halves_to_float, exact) a stretch at a time; the stretches are
         * whole numbers of lanes, so every weight meets the lane and the order it met before.
         * float32 weights taken as T give what weight_cast gives a valid weight, and a bad one is
         * bad in either */
        constexpr int64_t S = 64 * NL;
        float f[S];
        for (int64_t q0 = 0; q0 < n; q0 += S) {
            const int64_t m = (n - q0) < S ? n - q0 : S;
            halves_to_float(w + q0, m, f);
            weight_lanes<T, float>(f, m, sa, sc, bad);
        }
        return;
    }
    const int64_t nfull = n - n % NL;
    for (int64_t q = 0; q < nfull; q += NL) {
#pragma GCC unroll 16
        for (int k = 0; k < NL; ++k) weight_add<T>(sa[k], sc[k], double(weight_cast<T>(w[q + k])));
    }
    for (int64_t q = nfull; q < n; ++q) weight_add<T>(sa[q - nfull], sc[q - nfull], double(weight_cast<T>(w[q])));
    int b = 0;
    for (int64_t q = 0; q < n; ++q) {
        const T v = weight_cast<T>(w[q]);
        b |= (v >= T(0) && v < T(INFINITY)) ? 0 : 1;
    }
    bad |= b;
}

/* The lanes of weight_lanes as lane_add leaves them: the same while finite; weights that are all
 * finite and non-negative (else the caller reports the bad one) make a non-finite Kahan lane only
 * by overflowing, where lane_add holds (inf, 0) and kahan_free NaN. */
template <typename T> static inline void weight_lanes_finish(double* sa, double* sc) {
    if (sizeof(T) == sizeof(float)) return;
    for (int k = 0; k < lanes<T>(); ++k)
        if (!(sa[k] - sa[k] == 0.0) || !(sc[k] - sc[k] == 0.0)) { sa[k] = INFINITY; sc[k] = 0.0; }
}

/* Integer labels lab[0 .. n) with sample weights w (SW; else 1) and class weights cw (CW; else 1):
 * w_i cw[y_i] over the labels kept (in [0, C), not ignore_index) added into lanes<T>() lane sums as
 * weight_lanes adds weights, the check in a loop of its own; bad is set if a label is outside
 * [0, C) and not ignored, or a sample weight is negative, NaN or infinite (ignored rows' weights
 * are checked too, as the element loop of weight_block checks them). Branch-free, so GCC
 * vectorises it (the class weight a gather): the element loop took 4 ns a label, a quarter of a
 * 1e6 x 4 float32 CE call with class weights. */
template <typename T, bool SW, bool CW>
static XENT_ALWAYS_INLINE void label_weight_lanes(const WeightArgs* a, const int64_t* __restrict lab, const T* __restrict w,
                                                  int64_t n, double* sa, double* sc, int& bad) {
    constexpr int NL = lanes<T>();
    const T* __restrict cw = (const T*)a->cw;
    const LabelRule rule(a);
    auto term = [&](int64_t q) -> T {
        const int64_t y = lab[q];
        const bool keep = rule.kept(y);
        T v = SW ? w[q] : T(1);
        if (CW) v = v * cw[class_or_zero(y, keep)];
        return keep ? v : T(0);
    };
    const int64_t nfull = n - n % NL;
    for (int64_t q = 0; q < nfull; q += NL) {
#pragma GCC unroll 16
        for (int k = 0; k < NL; ++k) weight_add<T>(sa[k], sc[k], double(term(q + k)));
    }
    for (int64_t q = nfull; q < n; ++q) weight_add<T>(sa[q - nfull], sc[q - nfull], double(term(q)));
    int b = 0;
    for (int64_t q = 0; q < n; ++q) {
        const T v = SW ? w[q] : T(1);
        b |= (!rule.bad(lab[q]) & (v >= T(0)) & (v < T(INFINITY))) ? 0 : 1;
    }
    bad |= b;
}

template <typename T>
static void weight_block(const void* vargs, int64_t i0, int64_t i1, BlockResult* res) {
    const WeightArgs* a = (const WeightArgs*)vargs;
    const T* sw = (const T*)a->sw;
    const T* cw = (const T*)a->cw;
    if (a->labels && !sw && !cw) {
        /* labels alone: the sum is the number of labels kept, an integer the Kahan sum of ones
         * below would give exactly; counted in a loop that vectorises (AVX-512, one thread:
         * 0.47 -> 0.12 ns per label). Bad labels: the loop below finds the first. */
        const int64_t* lab = a->labels;
        const LabelRule rule(a);
        int64_t kept = 0, bad = 0;
        for (int64_t i = i0; i < i1; ++i) {
            kept += int64_t(rule.kept(lab[i]));
            bad |= int64_t(rule.bad(lab[i]));
        }
        if (!bad) { kahan_add(res, double(kept)); return; }
    }
    if (a->labels && (sw || cw) && !weights_repeat(sw, a->sw_rep, a->sw_len, i1) && a->swkind == WK_SAME) {
        /* labels with sample and/or class weights (categorical losses): lanes, as below */
        constexpr int NL = lanes<T>();
        double sa[NL], sc[NL];
        int bad = 0;
        for (int k = 0; k < NL; ++k) { sa[k] = 0.0; sc[k] = 0.0; }
        const int64_t* lab = a->labels + i0;
        const T* w = sw ? sw + i0 : (const T*)0;
        if (sw && cw) label_weight_lanes<T, true, true>(a, lab, w, i1 - i0, sa, sc, bad);
        else if (sw) label_weight_lanes<T, true, false>(a, lab, w, i1 - i0, sa, sc, bad);
        else label_weight_lanes<T, false, true>(a, lab, w, i1 - i0, sa, sc, bad);
        if (!bad) {
            weight_lanes_finish<T>(sa, sc);
            for (int k = 0; k < NL; ++k) { kahan_add(res, sa[k]); kahan_add(res, -sc[k]); }
            return;
        }
    }
    if (!a->labels && sw) {
        /* sample weights alone (binary losses): checked and summed in lanes<T>() accumulators, lanes
         * outermost, the form GCC vectorises (the loop below took 5 ns per weight, more than the
         * loss itself). Float weights need no compensation (terms >= 0: see binary_span), double
         * ones take the Kahan step of binary_span (lane_add); the first bad weight is located by
         * the loop below, only when there is one. */
        constexpr int NL = lanes<T>();
        double sa[NL], sc[NL];   /* lane sums and the errors to take off them */
        int bad = 0;
        for (int k = 0; k < NL; ++k) { sa[k] = 0.0; sc[k] = 0.0; }
        if (!weights_repeat(sw, a->sw_rep, a->sw_len, i1) && a->swkind != WK_SAME) {
            /* a weight an element, of another type: read in place (BCE from logits, float32
             * y_pred, float64 weights, n = 10^7, out=, 1 thread: 22.0 ms staged here too, 17.3-18.1
             * read in place; 19.6-19.9 with the converted copy the API made before) */
            switch (a->swkind) {
            case WK_F64: weight_lanes<T>((const double*)a->sw + i0, i1 - i0, sa, sc, bad); break;
            case WK_F16: weight_lanes<T>((const Half16*)a->sw + i0, i1 - i0, sa, sc, bad); break;
            case WK_BF16: weight_lanes<T>((const BHalf16*)a->sw + i0, i1 - i0, sa, sc, bad); break;
            default: weight_lanes<T>((const float*)a->sw + i0, i1 - i0, sa, sc, bad); break;
            }
        } else {
            /* repeating weights a piece at a time through wb (pieces of whole lanes: the same sums) */
            const bool rep = weights_repeat(sw, a->sw_rep, a->sw_len, i1);
            const stage_weights_fn<T> stage = weight_stager<T>(a->swkind);
            T wb[WEIGHT_PIECE + WEIGHT_RUN];
            const int64_t piece = rep ? WEIGHT_PIECE : i1 - i0;
            for (int64_t i = i0; i < i1; i += piece) {
                const int64_t n = (i1 - i) < piece ? i1 - i : piece;
                if (rep) stage(sw, a->sw_rep, a->sw_len, i, int(n), wb);
                weight_lanes<T>(rep ? wb : sw + i, n, sa, sc, bad);
            }
        }
        if (!bad) {
            weight_lanes_finish<T>(sa, sc);
            for (int k = 0; k < NL; ++k) { kahan_add(res, sa[k]); kahan_add(res, -sc[k]); }
            return;
        }
    }
    for (int64_t i = i0; i < i1; ++i) {
        T w = T(1);
        if (sw) {
            w = weight_at<T>(sw, a->swkind, a->sw_rep, a->sw_len, i);
            if (!(w >= T(0)) || w == T(INFINITY)) { set_error(res, ERR_WEIGHT, i, 0); continue; }
        }
        if (a->labels) {
            int64_t y = a->labels[i];
            if (a->has_ignore && y == a->ignore_index) continue;
            if (y < 0 || y >= a->C) { set_error(res, ERR_LABEL_RANGE, i, y); continue; }
            if (cw) w *= cw[y];
        }
        kahan_add(res, double(w));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Binary losses over a flat array (binary CE and binary focal share it: gamma = 0 is CE).      */
/* ------------------------------------------------------------------------------------------ */
struct BinaryArgs {
    const void* y; int64_t sy;      /* labels: the compute type, or ykind's; any stride */
    int ykind;                      /* LabelKind of y */
    const void* x; int64_t sx;      /* probabilities or logits; any stride */
    const void* sw;                 /* sample weights, contiguous, or NULL */
    int swkind;                     /* WeightKind of sw */
    int64_t sw_rep, sw_len, sw_off;   /* element i takes sw[((i + sw_off) / sw_rep) % sw_len]: weights_repeat;
                                       sw_off places a chunk of elements in the pattern (_half_cpu.py) */
    const void* w1; int64_t nw1;    /* positive-side weight (pos_weight or alpha) indexed i % nw1 */
    double w0;                      /* negative-side weight (1, or 1 - alpha) */
    double eps, gamma, dscale;      /* label smoothing, focal gamma, 1/denominator (mean) or 1 */
    int from_logits;
    void* loss; void* grad; void* hess;   /* contiguous outputs, or NULL */
};

/* Binary losses over a contiguous span, from logits or (LOGITS false) probabilities, the common
 * case, written so that it vectorises: no branches that leave the loop (bad labels and
 * probabilities outside [0, 1] are flagged and located afterwards), lanes<T>() Kahan accumulators
 * for the loss. w1 is the per-label positive weight (element i takes w1[i mod L]; the span starts
 * at label `phase`) or NULL (then the scalar w1s). */
/* The span is processed in chunks staged through small local arrays: the inputs (labels turned
 * into side weights, optional weights resolved) are copied in, one branch-free loop of fixed
 * length computes, and the results are copied out. The compute loop then has no optional
 * pointers and no aliasing for the compiler to worry about, so it vectorises. */
constexpr int CHUNK = 64;

/* The compute loop is bound by latency, not by the number of operations: one element's exp, log
 * and the rest form a chain about 100 operations deep, and the core keeps too few operations in
 * flight to overlap enough elements of a plain loop. So a chunk is computed as vector_chains<T>()
 * independent strides (elements k, k + CHUNK / NC, ...) in one loop body, which the vectoriser
 * turns into NC independent vector chains per iteration (AVX-512: one vector each, 4 x 16 floats
 * or 8 x 8 doubles), and GCC is asked to schedule before register allocation (off by default on x86), which
 * interleaves those chains; unscheduled, GCC emits them one after the other and nothing is gained.
 * Only the order of operations changes, never the operations: same bits. Driver, one thread,
 * gradient, ns per element, unchained -> chained (with the Estrin polynomials of _xent_vmath.h):
 * AVX-512 binary CE float 0.95 -> 0.68, double 2.20 -> 1.81, focal (gamma 2) float 2.32 -> 1.66,
 * double 5.37 -> 3.78; AVX2 CE float 2.04 -> 1.73, double 4.56 -> 3.98, focal float 4.0 -> 2.9. */
/* A chunk of binary losses lb into the lane sums sa (errors sc): lane k takes elements k, k + NL,
 * ... (padding adds exact zeros). Lanes outermost: GCC vectorises this form across lanes, not the
 * one with lanes innermost (it unrolled that and left it scalar). Float losses need no
 * compensation: the terms are >= 0, so a lane's double sum of k of them is within k * 2^-53 of
 * the exact sum (relative), 2^-39 for the 16384 elements of a block in one lane, far below float's
 * 2^-24 (the blocks' sums are then added with Kahan); driver, AVX-512, one thread: binary CE 1.32
 * -> 1.21 ns per element without it. The contiguous and the strided loops both sum this way, so
 * a layout never changes a sum's bits. */
template <typename T>
static XENT_ALWAYS_INLINE void chunk_into_lanes(const T* __restrict lb, double* __restrict sa, double* __restrict sc) {
    constexpr int NL = lanes<T>();
    for (int k = 0; k < NL; ++k) {
        double a = sa[k], cc = sc[k];
        for (int k0 = 0; k0 < CHUNK; k0 += NL) lane_add<T>(a, cc, double(lb[k0 + k]));
        sa[k] = a;
        sc[k] = cc;
    }
}

template <typename T> constexpr int vector_chains() {
#if defined(__AVX512F__)
    return sizeof(T) == sizeof(float) ? 4 : 8;
#else
    /* 16 vector registers: more chains spill (AVX2, double focal gradient: 8 chains 10 ns per
     * element, 2 chains 6.8, unchained 9.7); 2 do best for both types */
    return 2;
#endif
}
/* Chains of binary_span. Cross entropy from logits (an exp, two divisions and a log polynomial
 * a term, no powers) leaves registers for 4 below AVX-512, the others do not: driver, AVX2 (Zen 3),
 * one thread, ns per element, loss / + gradient / + Hessian, 2 -> 4 chains: float 2.15 / 2.35 /
 * 2.55 -> 1.80 / 2.06 / 2.26, double 5.39 / 5.59 / 5.85 -> 4.55 / 4.85 / 5.22. 8 chains: no better
 * for the loss, worse with derivatives (double Hessian 7.0). Focal from logits and either loss
 * from probabilities: 4 chains no better or worse (focal loss float 4.1 -> 6.5; CE float from
 * probabilities, Hessian 3.3 -> 3.7). AVX-512 (32 registers) keeps its chains, not measured. */
template <typename T, typename Pow, bool LOGITS> constexpr int binary_chains() {
#if defined(__AVX512F__)
    return vector_chains<T>();
#else
    return (Pow::zero && LOGITS) ? 4 : vector_chains<T>();
#endif
}
#if defined(__GNUC__) && !defined(__clang__)
#define XENT_SCHEDULE __attribute__((optimize("schedule-insns", "sched-pressure")))
#else
#define XENT_SCHEDULE
#endif

/* binary_span's gradient pass over a chunk with unequal weights: prob_gradient_near_label's
 * choice as selects (wbb holds its choice of balanced_prob_gradient, w1b != w0 on a two-sided
 * label that of weighted_prob_gradient), so that the loop vectorises. A scalar pos_weight
 * (MIXED false) needs only the second; called with a constant eps = 0, the label's low part folds
 * away. Always inlined: out of line, the double loops stayed scalar. */
template <typename T, bool MIXED>
static XENT_ALWAYS_INLINE void uneven_gradient_pass(int m, const T* y, const T* xb, const T* gpb, const T* wdb,
                                                    const T* wbb, const T* w1b, T w0, T eps, T* gd) {
    for (int k = 0; k < m; ++k) {
        const T yk = y[k];
        const T gb = MIXED ? balanced_prob_gradient(xb[k], gpb[k], wdb[k], wbb[k], gd[k]) : gd[k];
        const T gw = weighted_prob_gradient(xb[k], yk, eps, w1b[k], w0, wdb[k], gd[k]);
        gd[k] = (two_sided(yk, eps) & (w1b[k] != w0)) ? gw : gb;
    }
}

/* The double policy for focal_prob_gradient_wide of a float loop's policy: the same powers, with
 * PowDD for PowViaDouble (float only). PowInt's double products round up to 9 times, some 2^-50 of
 * the terms: far below a float ulp. */
template <typename Pow> struct WidePow { typedef Pow type; };
template <> struct WidePow<PowViaDouble> { typedef PowDD type; };

/* binary_span's pass over a float chunk of focal loss (gamma != 0) from probabilities that holds a
 * two-sided label: focal_prob_gradient_wide where two_sided, as selects, so the loop can vectorise.
 * Always inlined, as uneven_gradient_pass. */
template <typename Pow>
static XENT_ALWAYS_INLINE void focal_wide_pass(int m, const float* y, const float* xb, const float* w1b, float w0,
                                               float eps, float g, const float* wdb, float* gd) {
    for (int k = 0; k < m; ++k) {
        const float gw = focal_prob_gradient_wide<typename WidePow<Pow>::type>(xb[k], y[k], eps, w1b[k], w0, g, wdb[k]);
        gd[k] = two_sided(y[k], eps) ? gw : gd[k];
    }
}

template <typename T, bool G, bool H, typename Pow, bool SW, bool LOGITS>
XENT_SCHEDULE
static inline void binary_span(const T* y, const T* x, const T* sw, const T* w1, int64_t L, int64_t phase, T w1s,
                                        T w0, T eps, T g, T dscale, T* lo, T* go, T* ho, int64_t n,
                                        double* acc, double* cmp, int* bad) {
    constexpr int NC = binary_chains<T, Pow, LOGITS>(), CH = CHUNK / NC;
    static_assert(CHUNK % NC == 0, "chains must split a chunk evenly");
    T xb[CHUNK], c1b[CHUNK], c0b[CHUNK], wlb[CHUNK], wdb[CHUNK], lb[CHUNK], gb[CHUNK], hb[CHUNK];
    /* cross entropy's gradient from probabilities: the weight of both sides where they weigh
     * alike (pos_weight 1; else 0) and label_gap, for balanced_prob_gradient; the positive
     * side's weight, for prob_gradient_near_label where they do not */
    constexpr bool GAP = G && !LOGITS && !Pow::nonzero;
    const bool gap = GAP && pow_is_ce<Pow>(g);
    /* float focal loss's gradient from probabilities (focal_wide_pass), which reads w1b too */
    constexpr bool WIDE = G && !LOGITS && !Pow::zero && std::is_same<T, float>::value;
    const bool wide = WIDE && !pow_is_ce<Pow>(g);   /* gamma != 0 */
    T wbb[GAP ? CHUNK : 1], gpb[GAP ? CHUNK : 1], w1b[(GAP || WIDE) ? CHUNK : 1];
    /* the lane sums live in locals for the span: through the caller's pointers GCC assumed they
     * might alias the staged arrays and kept the Kahan loop scalar */
    constexpr int NL = lanes<T>();
    double sa[NL], sc[NL];
    for (int k = 0; k < NL; ++k) { sa[k] = acc[k]; sc[k] = cmp[k]; }
    int any_bad = 0;
    /* Without sample weights the loss weight is the constant 1, but the derivative weight stays
     * an array of dscale: with a loop-invariant wd, GCC left the focal loops unvectorised
     * (mul0(wd, ...) tests an invariant; binary focal gradient 3.0 -> 27 ns per element) */
    if (!SW) for (int k = 0; k < CHUNK; ++k) wdb[k] = dscale;
    for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
        const int m = (n - i0) < CHUNK ? int(n - i0) : CHUNK;
        if (m < CHUNK)
            for (int k = 0; k < CHUNK; ++k) {
                xb[k] = T(0); c1b[k] = T(0); c0b[k] = T(0);   /* c = 0: padding gives exact zeros */
                if (GAP) { wbb[k] = T(0); gpb[k] = T(0); }
                if (SW) { wlb[k] = T(0); wdb[k] = T(0); }
            }
        for (int k = 0; k < m; ++k) {
            const T yi = y[i0 + k];
            const T xi = x[i0 + k];
            any_bad |= !(yi >= T(0) && yi <= T(1));
            if (!LOGITS) any_bad |= (xi < T(0)) | (xi > T(1));   /* NaN is data, not an error */
            xb[k] = xi;
            c1b[k] = smoothed_pair(yi, eps, true);
            c0b[k] = w0 * smoothed_pair(yi, eps, false);
        }
        if (w1) {
            /* the per-label weight of element i is w1[i mod L]: the span's first element is label
             * `phase`, and the index wraps as it goes (one span per block, not one per stretch of
             * L labels: with L = 10 each span filled 10 of a chunk's 64 places) */
            for (int k = 0; k < m; ++k) {
                if (GAP) wbb[k] = w1[phase] == w0 ? w0 : T(0);
                if (GAP || WIDE) w1b[k] = w1[phase];
                c1b[k] *= w1[phase];
                phase = phase + 1 == L ? 0 : phase + 1;
            }
        }
        else {
            if (GAP) for (int k = 0; k < m; ++k) wbb[k] = w1s == w0 ? w0 : T(0);
            if (GAP || WIDE) for (int k = 0; k < m; ++k) w1b[k] = w1s;
            if (w1s != T(1)) for (int k = 0; k < m; ++k) c1b[k] *= w1s;
        }
        /* a chunk of hard labels without smoothing has one term an element: nothing cancels, and
         * the pass after the elements is skipped. tools/drivers/binary.cpp, AVX2 (Zen 3), best of
         * 4, CE from probabilities, ns per element, loss + gradient / + Hessian, before -> after:
         * hard labels float 2.99 / 3.49 -> 3.25 / 3.67, double 7.55 / 7.98 -> 7.93 / 8.50; soft
         * labels float 3.02 / 3.48 -> 3.79 / 3.88, double 7.45 / 7.94 -> 9.10 / 10.05; smoothing
         * 0.1 (the double-double label, prod_err without FMA) float 3.20 / 3.58 -> 4.22 / 4.50,
         * double 7.61 / 8.38 -> 9.34 / 10.12 */
        int soft = 0, uneven = 0;   /* some element that can cancel: weighed alike / not */
        if (GAP && gap) {
            if (eps == T(0))   /* label_gap's smoothing steps drop out with a constant 0 */
                for (int k = 0; k < m; ++k) {
                    const T yk = y[i0 + k];
                    const bool two = two_sided(yk, T(0));
                    uneven |= int(two) & int(w1b[k] != w0);   /* not &&: its branch kept the loop scalar */
                    wbb[k] = two ? wbb[k] : T(0);
                    gpb[k] = label_gap(xb[k], yk, T(0));
                    soft |= int(wbb[k] != T(0));
                }
            else {
                /* a scalar pos_weight other than w0 leaves every element to the uneven pass's
                 * weighted form, which reads no label_gap: tools/drivers/binary.cpp 8 0.1 hard 2,
                 * (AVX2 with FMA, Zen 3, best of 4) float 4.96 -> 4.84, double 11.26 -> 10.86 ns
                 * per element, loss + gradient */
                if (w1 || w1s == w0)
                    for (int k = 0; k < m; ++k) gpb[k] = label_gap(xb[k], y[i0 + k], eps);
                for (int k = 0; k < m; ++k) uneven |= int(w1b[k] != w0);
                soft = 1;
            }
        }
        if (SW) for (int k = 0; k < m; ++k) { wlb[k] = sw[i0 + k]; wdb[k] = sw[i0 + k] * dscale; }
        /* a whole chunk writes its derivatives straight to the outputs; the last, partial one
         * goes through gb / hb */
        T* __restrict gd = (G && m == CHUNK) ? go + i0 : gb;
        T* __restrict hd = (H && m == CHUNK) ? ho + i0 : hb;
        for (int k0 = 0; k0 < CH; ++k0) {
            /* every chain's loads and arithmetic, then every chain's stores: with a chain's stores
             * between them, GCC kept the next chain's loads from the staged arrays after them (it
             * could not tell the arrays apart there) and so never interleaved the chains of a
             * loss-only call, which took longer than loss and gradient. Same operations, same
             * bits. tools/drivers/binary.cpp, AVX2 (Zen 3), 2 chains, loss alone, ns per element:
             * CE float 2.80 -> 2.15, double 6.44 -> 5.39, focal (gamma 2) 5.49 -> 4.13 and
             * 11.8 -> 8.75; with derivatives or from probabilities within the noise (3%) */
            LGH<T> o[NC];
#pragma GCC unroll 8
            for (int u = 0; u < NC; ++u) {
                const int k = k0 + u * CH;
                /* without sample weights: loss weight 1 (padding adds 0 to the sum either way: c = 0) */
                const T wl = SW ? wlb[k] : T(1), wd = wdb[k];
                o[u] = LOGITS ? binary_from_logit<T, Pow>(xb[k], c1b[k], c0b[k], g, G, H, wl, wd)
                              : binary_from_prob<T, Pow>(xb[k], c1b[k], c0b[k], g, G, H, wl, wd);
            }
#pragma GCC unroll 8
            for (int u = 0; u < NC; ++u) {
                const int k = k0 + u * CH;
                lb[k] = o[u].l;
                if (G) gd[k] = o[u].g;
                if (H) hd[k] = o[u].h;
            }
        }
        /* unequal weights somewhere in the chunk: the pass of prob_gradient_near_label's choice.
         * tools/drivers/binary.cpp, AVX2 (Zen 3), pos_weight 2, soft labels, ns per element, loss +
         * gradient, before -> after: float 3.13 -> 5.74, double 7.61 -> 12.46 (prod_err without
         * FMA); hard labels without smoothing skip it */
        if (GAP && uneven) {
            if (eps == T(0)) {
                if (w1) uneven_gradient_pass<T, true>(m, y + i0, xb, gpb, wdb, wbb, w1b, w0, T(0), gd);
                else uneven_gradient_pass<T, false>(m, y + i0, xb, gpb, wdb, wbb, w1b, w0, T(0), gd);
            }
            else if (w1) uneven_gradient_pass<T, true>(m, y + i0, xb, gpb, wdb, wbb, w1b, w0, eps, gd);
            else uneven_gradient_pass<T, false>(m, y + i0, xb, gpb, wdb, wbb, w1b, w0, eps, gd);
        }
        else if (GAP && soft)
            for (int k = 0; k < CHUNK; ++k) gd[k] = balanced_prob_gradient(xb[k], gpb[k], wdb[k], wbb[k], gd[k]);
        if constexpr (WIDE) {
            /* a chunk of hard labels without smoothing has one term an element: nothing to redo */
            int two = wide & (eps != T(0));
            if (wide && !two)
                for (int k = 0; k < m; ++k) two |= int(two_sided(y[i0 + k], T(0)));
            if (two) focal_wide_pass<Pow>(m, y + i0, xb, w1b, w0, eps, g, wdb, gd);
        }
        chunk_into_lanes<T>(lb, sa, sc);
        if (lo) for (int k = 0; k < m; ++k) lo[i0 + k] = lb[k];
        if (m < CHUNK) {
            if (G) for (int k = 0; k < m; ++k) go[i0 + k] = gb[k];
            if (H) for (int k = 0; k < m; ++k) ho[i0 + k] = hb[k];
        }
    }
    for (int k = 0; k < NL; ++k) { acc[k] = sa[k]; cmp[k] = sc[k]; }
    *bad |= any_bad;
}

/* Binary labels of another dtype than the compute type T (bool, integers, the other float type),
 * read as they are: a cast of the whole array (NumPy's astype) took longer than the loss itself
 * (float32, n = 1e7: bool labels 4 ms, float64 10 ms, beside a 4-6 ms call). They are turned into
 * T a piece (LABEL_PIECE elements) at a time on the stack, then go through the same span, so the
 * results are the bits of the cast labels. A value outside [0, 1] becomes NaN, so the span flags
 * it; its error is then taken from the original value (1 + 1e-10 in float64 would round to a
 * valid 1.0f). bool is read as NumPy reads it: any nonzero byte is true. Labels of any type whose
 * elements lie apart (a column of a matrix) are staged likewise, those of type T too (YK_SAME). */
enum LabelKind { YK_SAME = 0, YK_BOOL, YK_I8, YK_U8, YK_I16, YK_U16, YK_I32, YK_U32, YK_I64, YK_U64, YK_F32, YK_F64 };
constexpr int LABEL_PIECE = 16 * CHUNK;   /* a multiple of CHUNK: the span's chunks and lanes stay as they were */

template <typename Y, typename T>
static void stage_labels(const void* y, int64_t sy, int64_t i, int n, T* __restrict out) {
    const T nan = T(NAN);
    if constexpr (std::is_same<Y, bool>::value) {
        const uint8_t* __restrict b = (const uint8_t*)y + i * sy;
        if (sy == 1) for (int k = 0; k < n; ++k) out[k] = b[k] ? T(1) : T(0);
        else for (int k = 0; k < n; ++k) out[k] = b[k * sy] ? T(1) : T(0);
    } else {
        const Y* __restrict s = (const Y*)y + i * sy;
        if (sy == 1) for (int k = 0; k < n; ++k) out[k] = unit_label_error(s[k]) ? nan : T(s[k]);
        else for (int k = 0; k < n; ++k) out[k] = unit_label_error(s[k * sy]) ? nan : T(s[k * sy]);
    }
}

template <typename T> using stage_labels_fn = void (*)(const void*, int64_t, int64_t, int, T*);

template <typename T> static stage_labels_fn<T> label_stager(int ykind) {
    switch (ykind) {
    case YK_SAME: return stage_labels<T, T>;
    case YK_BOOL: return stage_labels<bool, T>;
    case YK_I8: return stage_labels<int8_t, T>;
    case YK_U8: return stage_labels<uint8_t, T>;
    case YK_I16: return stage_labels<int16_t, T>;
    case YK_U16: return stage_labels<uint16_t, T>;
    case YK_I32: return stage_labels<int32_t, T>;
    case YK_U32: return stage_labels<uint32_t, T>;
    case YK_I64: return stage_labels<int64_t, T>;
    case YK_U64: return stage_labels<uint64_t, T>;
    case YK_F32: return stage_labels<float, T>;
    case YK_F64: return stage_labels<double, T>;
    default: return 0;
    }
}

/* The error of label q (element q * sy), read in its own type. */
template <typename T> static int label_error_at(const BinaryArgs* a, int64_t q) {
    switch (a->ykind) {
    case YK_SAME: return unit_label_error(((const T*)a->y)[q * a->sy]);
    case YK_BOOL: return ERR_NONE;
    case YK_I8: return unit_label_error(((const int8_t*)a->y)[q * a->sy]);
    case YK_U8: return unit_label_error(((const uint8_t*)a->y)[q * a->sy]);
    case YK_I16: return unit_label_error(((const int16_t*)a->y)[q * a->sy]);
    case YK_U16: return unit_label_error(((const uint16_t*)a->y)[q * a->sy]);
    case YK_I32: return unit_label_error(((const int32_t*)a->y)[q * a->sy]);
    case YK_U32: return unit_label_error(((const uint32_t*)a->y)[q * a->sy]);
    case YK_I64: return unit_label_error(((const int64_t*)a->y)[q * a->sy]);
    case YK_U64: return unit_label_error(((const uint64_t*)a->y)[q * a->sy]);
    case YK_F32: return unit_label_error(((const float*)a->y)[q * a->sy]);
    default: return unit_label_error(((const double*)a->y)[q * a->sy]);
    }
}

/* A block of binary elements through binary_span. Inputs whose elements lie apart (a column of a
 * matrix, x[::-1]) are gathered a piece at a time, as are labels of another type: a scalar loop over
 * strided elements took 93 ms where the span took 3.8 (float32 logits, n = 1e7, grad). The outputs
 * are contiguous. */
template <typename T, bool G, bool H, typename Pow, bool LOGITS>
static void binary_in_spans(const BinaryArgs* a, int64_t i0, int64_t i1, BlockResult* res) {
    const T* y = (const T*)a->y;
    const T* x = (const T*)a->x;
    const T* sw = (const T*)a->sw;
    const T* w1 = (const T*)a->w1;
    T* lo = (T*)a->loss; T* go = (T*)a->grad; T* ho = (T*)a->hess;
    const T eps = T(a->eps), w0 = T(a->w0), dscale = T(a->dscale), g = T(a->gamma);
    const int64_t sx = a->sx;
    constexpr int NL = lanes<T>();
    double acc[NL], cmp[NL];
    int bad = 0;
    for (int k = 0; k < NL; ++k) { acc[k] = 0.0; cmp[k] = 0.0; }
    /* the positive weight: one scalar, or a per-label vector of L entries taken cyclically */
    const int64_t L = w1 ? a->nw1 : 1;
    const T* w1v = L > 1 ? w1 : (const T*)0;
    const T w1c = (w1 && L == 1) ? w1[0] : T(1);
    /* contiguous labels of type T are read in place, in one span; others a piece at a time through
     * yb; likewise strided y_pred through xb, and repeating sample weights, and weights of another
     * type, through wb */
    const bool ystage = a->ykind != YK_SAME || a->sy != 1;
    const stage_labels_fn<T> stage = ystage ? label_stager<T>(a->ykind) : (stage_labels_fn<T>)0;
    const int64_t off = a->sw_off;
    const bool wrep = weights_staged(sw, a->swkind, a->sw_rep, a->sw_len, i1 + off);
    const stage_weights_fn<T> wstage = weight_stager<T>(a->swkind);
    static_assert(LABEL_PIECE == WEIGHT_PIECE, "one piece size for labels and weights");
    T yb[LABEL_PIECE], xb[LABEL_PIECE], wb[WEIGHT_PIECE + WEIGHT_RUN];
    const int64_t piece = (stage || wrep || sx != 1) ? LABEL_PIECE : i1 - i0;
    for (int64_t i = i0; i < i1; i += piece) {
        const int64_t n = (i1 - i) < piece ? i1 - i : piece;
        if (stage) stage(a->y, a->sy, i, int(n), yb);
        if (sx != 1) for (int64_t k = 0; k < n; ++k) xb[k] = x[(i + k) * sx];
        if (wrep) wstage(sw, a->sw_rep, a->sw_len, i + off, int(n), wb);
        const T* yi = stage ? yb : y + i;
        const T* xi = sx != 1 ? xb : x + i;
        const T* wi = wrep ? wb : sw + off + i;
        const int64_t phase = L > 1 ? i % L : 0;
        if (sw)
            binary_span<T, G, H, Pow, true, LOGITS>(yi, xi, wi, w1v, L, phase, w1c, w0, eps, g, dscale,
                                                    lo ? lo + i : lo, go ? go + i : go, ho ? ho + i : ho, n, acc,
                                                    cmp, &bad);
        else
            binary_span<T, G, H, Pow, false, LOGITS>(yi, xi, sw, w1v, L, phase, w1c, w0, eps, g, dscale,
                                                     lo ? lo + i : lo, go ? go + i : go, ho ? ho + i : ho, n, acc,
                                                     cmp, &bad);
    }
    for (int k = 0; k < NL; ++k) { kahan_add(res, acc[k]); kahan_add(res, -cmp[k]); }
    if (bad) {   /* the first bad element, its label before its prediction */
        for (int64_t q = i0; q < i1; ++q) {
            int e = label_error_at<T>(a, q);
            if (!e && !LOGITS && (x[q * sx] < T(0) || x[q * sx] > T(1))) e = ERR_PROB;
            if (e) { set_error(res, e, q, 0); break; }
        }
    }
}

template <typename T, typename Pow, bool LOGITS>
static void binary_spans(const BinaryArgs* a, int64_t i0, int64_t i1, BlockResult* res) {
    if (a->grad && a->hess) binary_in_spans<T, true, true, Pow, LOGITS>(a, i0, i1, res);
    else if (a->grad) binary_in_spans<T, true, false, Pow, LOGITS>(a, i0, i1, res);
    else if (a->hess) binary_in_spans<T, false, true, Pow, LOGITS>(a, i0, i1, res);
    else binary_in_spans<T, false, false, Pow, LOGITS>(a, i0, i1, res);
}

template <typename T, typename Pow>
static void binary_with_pow(const void* vargs, int64_t i0, int64_t i1, BlockResult* res) {
    const BinaryArgs* a = (const BinaryArgs*)vargs;
    if (a->from_logits) binary_spans<T, Pow, true>(a, i0, i1, res);
    else binary_spans<T, Pow, false>(a, i0, i1, res);
}

/* Which power policy a loop runs with (the one place that decides it): cross entropy needs none;
 * integer gammas take products (double from 16 in double-double, where plain products lost the
 * bar), others exp(g log x), float in double and double in double-double (PowDD: a plain double
 * exp(g log x) would not reach the bar). All are branch-free, so the loops vectorise. Where a loop
 * stays scalar, PowDD costs more than the math library's pow it replaced (categorical rows with
 * integer labels take one power a row: float64 focal 65536 x 10, gamma 2.5, 1.30 -> 1.51 ms in
 * benchmarks/option_paths.py), but a policy chosen by label form would give integer labels and
 * their one-hot rows different bits. The GPU uses pow. */
enum PowKind { POW_NONE, POW_SQUARE, POW_INT, POW_INT_DD, POW_VIA_DOUBLE, POW_DD };

template <typename T> static inline PowKind pow_kind(double g) {
    if (g == 0.0) return POW_NONE;
    if (g == 2.0) return POW_SQUARE;
    if (g > 0.0 && g < 32.0 && g == double(int64_t(g)))
        return sizeof(T) == sizeof(double) && g >= 16.0 ? POW_INT_DD : POW_INT;
    return sizeof(T) == sizeof(float) ? POW_VIA_DOUBLE : POW_DD;
}

/* Instantiates Kernel<T, Pow> for the policy pow_kind picks; a double kernel never gets PowViaDouble,
 * a float one never PowIntDD or PowDD. */
#define XENT_POW_DISPATCH(KERNEL, T, G, ...)                                         \
    do {                                                                            \
        switch (pow_kind<T>(G)) {                                                   \
        case POW_NONE: KERNEL<T, PowNone>(__VA_ARGS__); break;                      \
        case POW_SQUARE: KERNEL<T, PowSquare>(__VA_ARGS__); break;                  \
        case POW_INT: KERNEL<T, PowInt>(__VA_ARGS__); break;                        \
        case POW_INT_DD:                                                            \
            if constexpr (sizeof(T) == sizeof(double)) { KERNEL<T, PowIntDD>(__VA_ARGS__); break; } \
            /* fall through */                                                      \
        case POW_VIA_DOUBLE:                                                        \
            if constexpr (sizeof(T) == sizeof(float)) { KERNEL<T, PowViaDouble>(__VA_ARGS__); break; } \
            /* fall through */                                                      \
        case POW_DD:                                                                \
            if constexpr (sizeof(T) == sizeof(double)) { KERNEL<T, PowDD>(__VA_ARGS__); break; } \
            /* fall through */                                                      \
        default: KERNEL<T, PowLibm>(__VA_ARGS__); break;                            \
        }                                                                           \
    } while (0)

template <typename T>
static void binary_block(const void* vargs, int64_t i0, int64_t i1, BlockResult* res) {
    XENT_POW_DISPATCH(binary_with_pow, T, ((const BinaryArgs*)vargs)->gamma, vargs, i0, i1, res);
}

/* ------------------------------------------------------------------------------------------ */
/* Categorical losses over rows: y_pred viewed as (outer, C, inner) with element strides; a row */
/* is (o, k) and its classes are C elements apart by sx_c. Outputs are C-order (outer, C, inner) */
/* and the per-row loss (outer, inner).                                                         */
/* ------------------------------------------------------------------------------------------ */
struct SoftmaxArgs {
    const void* x; int64_t sx_o, sx_c, sx_i;
    int64_t C, inner;
    int64_t rows;                                /* rows in all (outer * inner) */
    const int64_t* labels;                       /* integer labels (outer*inner), or NULL */
    const void* ysoft; int64_t sy_o, sy_c, sy_i; /* soft labels like x, when labels is NULL */
    const void* sw;                              /* per-row weights, contiguous, or NULL */
    const void* cwa;                             /* per-class coefficient (class_weight*alpha) or NULL */
    int64_t ignore_index; int has_ignore;
    double eps, gamma, dscale;
    int from_logits;
    void* loss; void* grad; void* hess;
    int64_t res_rows;                            /* rows per BlockResult: a block call covering more rows
                                                  * fills res[0], res[1], ... (_kernels.pyx's _run) */
    int64_t tile_rows;                           /* rows per tile in softmax_tiled_rows (softmax_tile_rows) */
    void* scratch;                               /* the tiles' scratch: softmax_scratch_elems elements per
                                                  * thread, thread t's at t * that; NULL: rows in place */
    int prob_pieces;                             /* rows of few classes from probabilities in pieces
                                                  * (softmax_prob_piece); 0: one at a time */
};

/* The summary of a logit row: maximum m, its first index jm, whether the row has a NaN, and
 * s_rest = sum_{j != jm} exp(x_j - m). Pass 1 finds m (NaN entries lose every comparison; a NaN
 * shows up in the sum instead) and, lane by lane, the first class where its lane saw its maximum;
 * jm is the least of those among the lanes whose maximum is m, the first class at m.
 * Pass 2 sums e_j over the classes below m and counts the classes at m (each further tie adds
 * exactly 1), with no index. (jm was found by a scan for m after pass 2, which stopped at a
 * branch as random as the data: 20% of the summary's time at 128 classes; the index costs pass 1
 * a select a vector. AVX2 driver, one thread, ns an element, float 128 classes 1.9 -> 1.6, 256
 * 1.5 -> 1.35, 1000 and 32000 within 3% either way; double 128: 2.8 -> 2.3, 32000: -5%.) With
 * STORE, pass 2 also writes
 * e_j = exp(x_j - m) (softmax_exp, 1 at ties) to eb, a contiguous row of the caller's gradient or
 * Hessian output, so the passes after it read e_j instead of computing the exp again.
 * `next` (contiguous rows, UNIT): the row after this one, or null. Pass 2 is bound by arithmetic
 * and the memory idles meanwhile, so it asks for the next row's cache lines as it goes, and pass
 * 1 of that row reads them from cache instead of waiting on memory; only the timing changes.
 * AVX2 (Zen 3), 1024 x 32000 from logits, loss and gradient, benchmarks/ab_builds.py, ms, one
 * thread | two: CE float32 52.4 -> 41.4 | 31.5 -> 25.7, float64 97.9 -> 85.7 | 61.4 -> 44.2;
 * focal float32 78.3 -> 60.7 | 40.6 -> 31.3; rows of 1000 and 128256 classes gained 4-28% in all but
 * two runs, whose reruns gained (benchmarks/RESULTS.md). */
template <typename T> struct RowSummary { T m; int64_t jm; bool nan; double s_rest; };

template <typename T, bool UNIT, bool STORE>
XENT_SCHEDULE
static inline RowSummary<T> softmax_summary(const T* xr, int64_t sc_, int64_t C, T* __restrict eb,
                                            const T* next) {
    const int64_t sc = UNIT ? 1 : sc_;
    constexpr int NL = lanes<T>();
    const T* pf = next ? next : xr;   /* no next row: lines of this one, already in cache */
    /* CHUNK at a time, lanes outermost (the form GCC vectorises; with lanes innermost it left the
     * loop scalar); the maximum does not depend on which lane saw which class. Each lane keeps the
     * first class of its maximum: it sees its classes in increasing order and takes a class only
     * when strictly greater. The index as an integer of T's width (int64 beside float lanes would
     * halve the vectors); a float row of more than 2^31 classes finds jm by a scan below. */
    using Idx = typename std::conditional<sizeof(T) == sizeof(float), int32_t, int64_t>::type;
    const bool wide_row = sizeof(Idx) < sizeof(int64_t) && C > int64_t(INT32_MAX);
    T mx[NL];
    Idx ix[NL];
    for (int k = 0; k < NL; ++k) { mx[k] = T(-INFINITY); ix[k] = Idx(k); }
    int64_t j0 = 0;
    for (; j0 + CHUNK <= C; j0 += CHUNK) {
        for (int k = 0; k < NL; ++k) {
            T a = mx[k];
            Idx ia = ix[k];
            for (int i = 0; i < CHUNK; i += NL) {
                const T v = xr[(j0 + i + k) * sc];
                const bool gt = v > a;
                a = gt ? v : a;
                ia = gt ? Idx(j0 + i + k) : ia;
            }
            mx[k] = a;
            ix[k] = ia;
        }
    }
    /* the rest NL at a time, and the last NL classes again where a part of them is left: neither
     * the maximum nor a lane's first index minds reading a class twice, the second time later in
     * the lane's order (a scalar rest, a chain of dependent compares, took 55% of a 127-class row) */
    for (; j0 + NL <= C; j0 += NL)
        for (int k = 0; k < NL; ++k) {
            const T v = xr[(j0 + k) * sc];
            const bool gt = v > mx[k];
            mx[k] = gt ? v : mx[k];
            ix[k] = gt ? Idx(j0 + k) : ix[k];
        }
    if (j0 < C && C >= NL) {
        for (int k = 0; k < NL; ++k) {
            const T v = xr[(C - NL + k) * sc];
            const bool gt = v > mx[k];
            mx[k] = gt ? v : mx[k];
            ix[k] = gt ? Idx(C - NL + k) : ix[k];
        }
    } else {
        for (; j0 < C; ++j0) {
            const T v = xr[j0 * sc];
            const bool gt = v > mx[0];
            mx[0] = gt ? v : mx[0];
            ix[0] = gt ? Idx(j0) : ix[0];
        }
    }
    RowSummary<T> r;
    r.m = mx[0];
    for (int k = 1; k < NL; ++k) r.m = mx[k] > r.m ? mx[k] : r.m;
    const T m = r.m;
    double acc[NL];
    /* tie counts as integers of T's width: with 32-bit counts beside double lanes GCC vectorised
     * this loop at half width (4 doubles) and spilled */
    typename std::conditional<sizeof(T) == sizeof(float), int32_t, int64_t>::type ties[NL];
    for (int k = 0; k < NL; ++k) { acc[k] = 0.0; ties[k] = 0; }
    constexpr int NC = vector_chains<T>();
    for (j0 = 0; j0 + NC * NL <= C; j0 += NC * NL) {
#pragma GCC unroll 8
        for (int u = 0; u < NC; ++u) {
            /* one 64-byte line of the next row per NL elements of this one (16 floats, 8 doubles) */
            if (UNIT) __builtin_prefetch(pf + j0 + u * NL, 0, 2);
            for (int k = 0; k < NL; ++k) {
                const T v = xr[(j0 + u * NL + k) * sc];
                const T e = softmax_exp(v, m);
                if (STORE) eb[j0 + u * NL + k] = e;
                acc[k] += (v == m) ? 0.0 : double(e);
                ties[k] += (v == m);
            }
        }
    }
    for (; j0 + NL <= C; j0 += NL) {
        for (int k = 0; k < NL; ++k) {
            const T v = xr[(j0 + k) * sc];
            const T e = softmax_exp(v, m);
            if (STORE) eb[j0 + k] = e;
            acc[k] += (v == m) ? 0.0 : double(e);
            ties[k] += (v == m);
        }
    }
    for (int k = 0; j0 + k < C; ++k) {
        const T v = xr[(j0 + k) * sc];
        const T e = softmax_exp(v, m);
        if (STORE) eb[j0 + k] = e;
        acc[k] += (v == m) ? 0.0 : double(e);
        ties[k] += (v == m);
    }
    int64_t nt = 0;
    for (int k = 0; k < NL; ++k) nt += ties[k];
    r.s_rest = lane_total<NL>(acc) + double(nt - 1);
    r.nan = r.s_rest != r.s_rest;   /* only a NaN entry makes the sum NaN (every e_j is in [0, 1]) */
    /* the first class at m (a row of -inf alone: every lane keeps its first class, so jm = 0) */
    int64_t jm = C;
    for (int k = 0; k < NL; ++k) jm = (mx[k] == m && int64_t(ix[k]) < jm) ? int64_t(ix[k]) : jm;
    if (wide_row) for (jm = 0; jm < C && !(xr[jm * sc] == m);) ++jm;
    r.jm = jm < C ? jm : 0;
    return r;
}

/* The smoothed integer label Y'_j: `on` at the label's class, `off` at the others. */
template <typename T> struct LabelCoefs { T on, off; };
template <typename T> static inline LabelCoefs<T> label_coefs(const SoftmaxArgs* a) {
    const T eps = T(a->eps), C = T(a->C);
    return LabelCoefs<T>{T(1) - eps + eps / C, eps / C};
}

/* Coefficient c_j = cwa_j * Y'_j of class j in a row (Y' the smoothed label). */
template <typename T>
static inline T class_coef(const SoftmaxArgs* a, const T* cwa, int64_t y, const T* ys, int64_t j) {
    T cw = cwa ? cwa[j] : T(1);
    T eps = T(a->eps), C = T(a->C);
    T Y;
    if (ys) {
        Y = ys[j * a->sy_c];
        if (eps != T(0)) Y = Y * (T(1) - eps) + eps / C;
    } else {
        const LabelCoefs<T> k = label_coefs<T>(a);
        Y = (j == y) ? k.on : k.off;
    }
    return mul0(cw, Y);
}

/* Coefficients c_j of classes [j0, j0 + n) of a row into cb (n <= CHUNK), so that the loops that
 * use them see one plain array whatever the label form and options. */
template <typename T>
static inline void stage_coefs(const SoftmaxArgs* a, int64_t y, const T* ys, int64_t j0, int n, T* __restrict cb) {
    const T* cwa = (const T*)a->cwa;
    if (!ys) {
        /* class_coef's values with its constants out of the loop: called per class, it read a->eps
         * and divided eps / C again for each, a scalar loop of 13% of a smoothed focal row (float32,
         * 32000 classes, AVX2; perf); a select on j == y per class was 13% again. mul0(1, Y) is Y,
         * so without weights Y is taken as it is. */
        const LabelCoefs<T> lc = label_coefs<T>(a);
        for (int k = 0; k < n; ++k) cb[k] = lc.off;
        if (y >= j0 && y < j0 + n) cb[y - j0] = lc.on;
        if (cwa) for (int k = 0; k < n; ++k) cb[k] = mul0(cwa[j0 + k], cb[k]);
        return;
    }
    /* soft labels: class_coef's steps, one plain loop each */
    const int64_t sy = a->sy_c;
    const T eps = T(a->eps), epsC = eps / T(a->C);
    for (int k = 0; k < n; ++k) cb[k] = ys[(j0 + k) * sy];
    if (eps != T(0)) for (int k = 0; k < n; ++k) cb[k] = cb[k] * (T(1) - eps) + epsC;
    if (cwa) for (int k = 0; k < n; ++k) cb[k] = mul0(cwa[j0 + k], cb[k]);
}

/* e_j = exp(x_j - m) of class j: with STORED, read back from eb, where softmax_summary put it;
 * otherwise computed again, the same way (so both give the same bits). */
template <typename T, bool STORED>
static XENT_ALWAYS_INLINE T row_exp(const T* eb, const T* xr, int64_t sc, T m, int64_t j) {
    return STORED ? eb[j] : softmax_exp(xr[j * sc], m);
}

/* One staged chunk of a row's coefficients cb and logits xb (padded with c = 0) into the lane sums
 * of sum_j c_j and sum_j c_j (m - x_j), lanes outermost: the form GCC vectorises. */
template <typename T, bool COMP>
static XENT_ALWAYS_INLINE void coef_gap_lanes(const T* __restrict cb, const T* __restrict xb, T m,
                                              double* __restrict accSR, double* __restrict accLD,
                                              double* __restrict cmpSR, double* __restrict cmpLD) {
    /* COMP (coefficients of any sizes: soft labels): see chunk_partials; the smoothing's equal
     * coefficients eps/C (the label's own part is added apart) need no compensation */
    constexpr int NL = lanes<T>();
    constexpr bool PART = COMP && chunk_partials<T>();
    double psr[NL], pld[NL];   /* the chunk's partial sums (PART) */
    for (int k = 0; k < NL; ++k) {
        double sr = PART ? 0.0 : accSR[k], ld = PART ? 0.0 : accLD[k];
        for (int i0 = 0; i0 < CHUNK; i0 += NL) {   /* a trip count free of k */
            const T c = cb[i0 + k];
            sr += double(c);
            ld += double(mul0(c, softmax_gap(xb[i0 + k], m)));
        }
        if (PART) { psr[k] = sr; pld[k] = ld; }
        else { accSR[k] = sr; accLD[k] = ld; }
    }
    if (PART)
        for (int k = 0; k < NL; ++k) {
            lane_add<T>(accSR[k], cmpSR[k], psr[k]);
            lane_add<T>(accLD[k], cmpLD[k], pld[k]);
        }
}

/* Cross entropy of one softmax row, given the row summary (m, jm, s_rest): the loss
 * sum_j c_j (d_j + L) and, on request, gradient S P_j - c_j and Hessian S P_j (1 - P_j), with
 * S = sum_j c_j. At j = jm, S P - c is ce_grad_at_max (_xent_math.h).
 * STORED: the summary left e_j in the gradient row (or, without one, the Hessian row); each
 * loop reads e_j there before it writes that element. */
template <typename T, bool UNIT, bool STORED>
static inline void softmax_ce_finish(const SoftmaxArgs* a, const T* __restrict xr, int64_t y, const T* ys,
                                     T* __restrict gr, T* __restrict hr, T wi, T m, int64_t jm, double s,
                                     double s_rest, T L, T* loss_out) {
    const int64_t C = a->C, sc = UNIT ? 1 : a->sx_c, inner = UNIT ? 1 : a->inner;
    const T* cwa = (const T*)a->cwa;
    const T eps = T(a->eps), epsC = T(a->eps) / T(C);
    const bool want_g = gr != 0, want_h = hr != 0;
    double S = 0.0, S_rest = 0.0, LD = 0.0, c_jm = 0.0;   /* c_jm: jm's own coefficient */
    constexpr int NL = lanes<T>();
    if (ys) {
        /* soft labels: coefficients and logits staged CHUNK at a time (padded with c = 0), the
         * maximum's coefficient set aside (its gap is 0, so it adds nothing to LD), sums in NL
         * accumulators with lanes outermost, the form GCC vectorises */
        T cb[CHUNK], xb[CHUNK], cjm;
        stage_coefs(a, y, ys, jm, 1, &cjm);
        c_jm = double(cjm);
        double accSR[NL], accLD[NL], cmpSR[NL], cmpLD[NL];
        for (int k = 0; k < NL; ++k) { accSR[k] = 0.0; accLD[k] = 0.0; cmpSR[k] = 0.0; cmpLD[k] = 0.0; }
        for (int64_t j0 = 0; j0 < C; j0 += CHUNK) {
            const int n = (C - j0) < CHUNK ? int(C - j0) : CHUNK;
            stage_coefs(a, y, ys, j0, n, cb);
            for (int k = 0; k < n; ++k) xb[k] = xr[(j0 + k) * sc];
            for (int k = n; k < CHUNK; ++k) { cb[k] = T(0); xb[k] = m; }
            if (jm >= j0 && jm < j0 + n) cb[jm - j0] = T(0);
            coef_gap_lanes<T, true>(cb, xb, m, accSR, accLD, cmpSR, cmpLD);
        }
        S_rest = lane_total_comp<T, NL>(accSR, cmpSR);
        S = S_rest + double(cjm);
        LD = lane_total_comp<T, NL>(accLD, cmpLD);
    } else {
        /* integer label y: c_j = eps/C cw_j, plus (1 - eps) cw_y at j = y */
        const T cy = (T(1) - eps) * (cwa ? cwa[y] : T(1));
        if (eps != T(0)) {
            /* the smoothing's eps/C cw_j on every class: staged and summed in lanes as the soft
             * labels are above (a plain loop over j kept three dependent double sums, and label
             * smoothing cost 3x the plain call) */
            T cb[CHUNK], xb[CHUNK];
            double accSR[NL], accLD[NL], cmpSR[NL], cmpLD[NL];
            for (int k = 0; k < NL; ++k) { accSR[k] = 0.0; accLD[k] = 0.0; cmpSR[k] = 0.0; cmpLD[k] = 0.0; }
            for (int64_t j0 = 0; j0 < C; j0 += CHUNK) {
                const int n = (C - j0) < CHUNK ? int(C - j0) : CHUNK;
                if (cwa) for (int k = 0; k < n; ++k) cb[k] = epsC * cwa[j0 + k];
                else for (int k = 0; k < n; ++k) cb[k] = epsC;
                for (int k = 0; k < n; ++k) xb[k] = xr[(j0 + k) * sc];
                for (int k = n; k < CHUNK; ++k) { cb[k] = T(0); xb[k] = m; }
                if (jm >= j0 && jm < j0 + n) cb[jm - j0] = T(0);
                coef_gap_lanes<T, false>(cb, xb, m, accSR, accLD, cmpSR, cmpLD);
            }
            S_rest = lane_total_comp<T, NL>(accSR, cmpSR);
            c_jm = double(epsC * (cwa ? cwa[jm] : T(1)));
            S = S_rest + c_jm;
            LD = lane_total_comp<T, NL>(accLD, cmpLD);
        }
        S += double(cy);
        if (y != jm) S_rest += double(cy);
        else c_jm += double(cy);
        LD += double(mul0(cy, softmax_gap(xr[y * sc], m)));
    }
    *loss_out = mul0(wi, T(LD + S * double(L)));
    if (!(want_g || want_h)) return;
    const T ds = wi * T(a->dscale);
    const T inv_s = T(1.0 / s), ST = T(S);
    const T* eb = want_g ? gr : hr;
    /* the label's e_y, read before the loops below overwrite it */
    const T ey = (!ys && y != jm) ? row_exp<T, STORED>(eb, xr, sc, m, y) : T(0);
    if (ys) {
        T cb[CHUNK], gb[CHUNK], hb[CHUNK];
        for (int64_t j0 = 0; j0 < C; j0 += CHUNK) {
            const int n = (C - j0) < CHUNK ? int(C - j0) : CHUNK;
            stage_coefs(a, y, ys, j0, n, cb);
            if (want_h) {
                for (int k = 0; k < n; ++k) {
                    const T P = row_exp<T, STORED>(eb, xr, sc, m, j0 + k) * inv_s;
                    gb[k] = mul0(ds, ST * P - cb[k]);
                    hb[k] = mul0(ds, ST * P * (T(1) - P));
                }
            } else {
                for (int k = 0; k < n; ++k) {
                    const T P = row_exp<T, STORED>(eb, xr, sc, m, j0 + k) * inv_s;
                    gb[k] = mul0(ds, ST * P - cb[k]);
                }
            }
            if (want_g) for (int k = 0; k < n; ++k) gr[(j0 + k) * inner] = gb[k];
            if (want_h) for (int k = 0; k < n; ++k) hr[(j0 + k) * inner] = hb[k];
        }
    } else {
        /* integer labels: c_j = eps/C cw_j; the loops below run with restrict pointers and a
         * per-class weight that is either an array or one constant, so they vectorise */
        const T* __restrict cw = cwa;
        if (want_g && want_h) {
            for (int64_t j = 0; j < C; ++j) {
                T P = row_exp<T, STORED>(gr, xr, sc, m, j) * inv_s;
                gr[j * inner] = mul0(ds, ST * P - epsC * (cw ? cw[j] : T(1)));
                hr[j * inner] = mul0(ds, ST * P * (T(1) - P));
            }
        } else if (want_g && cw) {
            for (int64_t j = 0; j < C; ++j) {
                T P = row_exp<T, STORED>(gr, xr, sc, m, j) * inv_s;
                gr[j * inner] = mul0(ds, ST * P - epsC * cw[j]);
            }
        } else if (want_g) {
            for (int64_t j = 0; j < C; ++j) {
                T P = row_exp<T, STORED>(gr, xr, sc, m, j) * inv_s;
                gr[j * inner] = mul0(ds, ST * P - epsC);
            }
        } else {
            for (int64_t j = 0; j < C; ++j) {
                T P = row_exp<T, STORED>(hr, xr, sc, m, j) * inv_s;
                hr[j * inner] = mul0(ds, ST * P * (T(1) - P));
            }
        }
    }
    const T Qjm = T(s_rest / s);
    if (want_g) {
        if (!ys && y != jm) {
            T P = ey * inv_s;
            T c = epsC * (cwa ? cwa[y] : T(1)) + (T(1) - eps) * (cwa ? cwa[y] : T(1));
            gr[y * inner] = mul0(ds, ST * P - c);
        }
        gr[jm * inner] = mul0(ds, ce_grad_at_max<T>(S_rest, c_jm, s_rest, s));
    }
    if (want_h) hr[jm * inner] = mul0(ds, ST * inv_s * Qjm);
}

/* s_rest of a focal row in double-double (softmax_exp_wide), for the accuracy of Q^g: (hi, lo) lanes
 * over the classes below m, and the classes at m counted, all but jm adding 1 at the end; returned
 * with |lo| <= ulp(hi) / 2. Independent of the summary's sum, which it replaces in focal rows.
 * Not inlined: inlined into the row loop of 0b673cf (through softmax_one_row) GCC left its lanes
 * in memory and the loop scalar, float32 1024 x 32000 at gamma 20 33 -> 160 ms (one call a row,
 * so the call costs nothing). */
template <typename T, bool UNIT>
__attribute__((noinline)) static DD softmax_rest_dd(const T* xr, int64_t sc_, int64_t C, T m) {
    const int64_t sc = UNIT ? 1 : sc_;
    constexpr int NL = lanes<T>();
    double hi[NL], lo[NL], ties[NL];
    for (int k = 0; k < NL; ++k) hi[k] = lo[k] = ties[k] = 0.0;
    int64_t j0 = 0;
    for (; j0 + NL <= C; j0 += NL) {
        for (int k = 0; k < NL; ++k) {
            const T v = xr[(j0 + k) * sc];
            wide_add<T>(hi[k], lo[k], softmax_exp_wide(v, m));
            ties[k] += v == m ? 1.0 : 0.0;
        }
    }
    for (int k = 0; j0 + k < C; ++k) {
        const T v = xr[(j0 + k) * sc];
        wide_add<T>(hi[k], lo[k], softmax_exp_wide(v, m));
        ties[k] += v == m ? 1.0 : 0.0;
    }
    double th = 0.0, tl = 0.0, nt = 0.0;
    for (int k = 0; k < NL; ++k) {
        dd_add(th, tl, hi[k]);
        tl += lo[k];
        nt += ties[k];
    }
    return rest_total(th, tl, nt - 1.0);   /* every class at m but jm */
}

/* Focal loss of one softmax row, given its summary: pass 3 sums the loss and the gradient/Hessian
 * sums of the row (FocalRowSums), pass 4 writes the derivatives. Classes are taken CHUNK at a time
 * with their coefficients, logits and e_j staged (padded to whole lanes with c = 0, x = m, e = 1,
 * which add exact zeros), every class as if it were not the maximum (jm), with lanes<T>() accumulators,
 * so both loops vectorise; jm's own terms are computed once, apart, and enter the sums as
 * focal_row_add would put them.
 * SPARSE (integer labels, no smoothing): only the label y has a coefficient, so pass 3 is class y
 * alone and pass 4 gives every class the c = 0 form (G = Kt = 0) without evaluating focal terms;
 * y is then written again with its own terms. The bits are those of the general loops, which add
 * the same single nonzero term to zeros.
 * STORED: e_j is read from the row the summary wrote it to (see softmax_ce_finish). */
template <typename T, bool UNIT, typename Pow, bool STORED, bool SPARSE>
static inline void softmax_focal_finish(const SoftmaxArgs* a, const T* __restrict xr, int64_t y, const T* ys,
                                        T* __restrict gr, T* __restrict hr, T wi, T ds, T m, int64_t jm,
                                        double s, double s_rest, T L, const SoftmaxRowErr& re, T* loss_out) {
    const int64_t C = a->C, sc = UNIT ? 1 : a->sx_c, inner = UNIT ? 1 : a->inner;
    const T g = T(a->gamma);
    const bool want_g = gr != 0, want_h = hr != 0, want_d = want_g || want_h;
    const bool exact = re.on;
    const T* eb = want_g ? gr : hr;
    /* KEEP: pass 3 leaves each class's G and Kt in the output rows for pass 4, which otherwise
     * computes them again. Where a power costs a log and an exp or a chain of products, that saves
     * a third or more (tools/drivers/group_ab, 32000 classes, smoothing 0.1, AVX2, gradient, ns an
     * element): float32 gamma 0.5 19.5 -> 11.8, gamma 3 9.4 -> 7.2; float64 gamma 0.5 23.5 -> 15.9.
     * The rows then no longer hold e_j, which pass 4 computes again: for gamma 2 (one product)
     * that cost more than the terms it saved, 3.9 -> 4.0 (float32) and 5.7 -> 6.9 (float64), and
     * with the Hessian too (6.6 -> 6.9, 8.9 -> 9.6), so there pass 4 redoes the terms. Stored as
     * T, the kept terms come back with the bits pass 4 would have computed. */
    constexpr bool KEEP = !SPARSE && !std::is_same<Pow, PowSquare>::value && !std::is_same<Pow, PowNone>::value;
    constexpr int NL = lanes<T>();
    T cb[CHUNK], xb[CHUNK], ebuf[CHUNK], rb[CHUNK], gb[CHUNK], hb[CHUNK];
    /* lane sums: plain, and for double also Kahan sums with their errors (see pass 3) */
    double accL[NL], accT[NL], accU[NL], kL[NL], kT[NL], kU[NL], cmpL[NL], cmpT[NL], cmpU[NL];
    for (int k = 0; k < NL; ++k) {
        accL[k] = accT[k] = accU[k] = 0.0;
        kL[k] = kT[k] = kU[k] = 0.0;
        cmpL[k] = cmpT[k] = cmpU[k] = 0.0;
    }
    /* CHUNK classes from j0: n of them, staged and padded to nr */
    auto stage = [&](int64_t j0, int n, int nr) {
        if (!SPARSE) {
            stage_coefs(a, y, ys, j0, n, cb);
            for (int k = n; k < nr; ++k) cb[k] = T(0);
        }
        for (int k = 0; k < n; ++k) xb[k] = xr[(j0 + k) * sc];
        for (int k = 0; k < n; ++k) ebuf[k] = row_exp<T, STORED>(eb, xr, sc, m, j0 + k);
        for (int k = n; k < nr; ++k) { xb[k] = m; ebuf[k] = T(1); }
        /* the exps' errors, for the classes' focal terms (none in SPARSE form; focal_row_exact) */
        if (!SPARSE && exact) for (int k = 0; k < nr; ++k) rb[k] = softmax_exp_rel(xb[k], m, ebuf[k]);
    };
    /* pass 3; in SPARSE form only the label's terms (kept for its derivatives below) */
    const FocalSoftmax<T> f0 = {T(0), T(0), T(0)};   /* the terms of a class with c = 0 */
    T cy = T(0), ey = T(0);
    SoftmaxElem<T> ely = softmax_elem(T(0), T(1), false, s, s_rest, L, T(0), re);
    FocalSoftmax<T> fy = f0;
    if (SPARSE) {
        if (y != jm) {
            stage_coefs(a, y, ys, y, 1, &cy);
            ey = row_exp<T, STORED>(eb, xr, sc, m, y);
            ely = softmax_elem(softmax_gap(xr[y * sc], m), ey, false, s, s_rest, L,
                               exact ? softmax_exp_rel(xr[y * sc], m, ey) : T(0), re);
            fy = focal_softmax_elem<T, Pow>(cy, ely, g, want_d, want_h);
            kL[0] = accL[0] = double(fy.loss);
            kT[0] = accT[0] = double(fy.G);
            kU[0] = accU[0] = focal_k(fy.Kt, ely.Q);
        }
    } else {
        for (int64_t j0 = 0; j0 < C; j0 += CHUNK) {
            const int n = (C - j0) < CHUNK ? int(C - j0) : CHUNK;
            stage(j0, n, CHUNK);
            if (jm >= j0 && jm < j0 + n) cb[jm - j0] = T(0);   /* jm is added apart, below (its Q = 1 - P
                                                                   may be 0 here: zero Kt adds nothing) */
            /* lanes outermost: the form GCC vectorises. For double the terms also go into Kahan
             * sums (kL.., cmpL..), in the select-free form (kahan_free): the plain sums (accL..)
             * then say whether the total is finite, and if not, are it (lane_total_free). This
             * cost 5% more (float64, 1024 x 32000, smoothing); partial sums of each chunk added
             * with lane_add, as coef_gap_lanes does, cost 13% here. */
            /* written four times: with and without the corrections of Q (softmax_elem_inv's CORR),
             * and with and without the Hessian's sum U (Kt is 0 without it, but its Kt / Q^2, a
             * double division, was computed for each class all the same: a quarter of a smoothed
             * focal row's gradient, float32, AVX2; perf) */
            auto pass3 = [&](auto with_h, auto corr) {
                for (int k = 0; k < NL; ++k) {
                    double sl = accL[k], st = accT[k], su = accU[k];
                    double kl = kL[k], kt = kT[k], ku = kU[k], cl = cmpL[k], ct = cmpT[k], cu = cmpU[k];
                    for (int i0 = 0; i0 < CHUNK; i0 += NL) {   /* a trip count free of k */
                        const int i = i0 + k;
                        const SoftmaxElem<T> el = softmax_elem<T, decltype(corr)::value>(
                            softmax_gap(xb[i], m), ebuf[i], false, s, s_rest, L,
                            decltype(corr)::value ? rb[i] : T(0), re);
                        const FocalSoftmax<T> f = focal_softmax_elem<T, Pow>(cb[i], el, g, want_d, want_h);
                        if (KEEP) {   /* for pass 4 (see KEEP) */
                            gb[i] = f.G;
                            if (decltype(with_h)::value) hb[i] = f.Kt;
                        }
                        const double vl = double(f.loss), vg = double(f.G);
                        const double vu = decltype(with_h)::value ? focal_k(f.Kt, el.Q) : 0.0;
                        sl += vl;
                        st += vg;
                        su += vu;
                        if (sizeof(T) == sizeof(double)) {
                            kahan_free(kl, cl, vl);
                            kahan_free(kt, ct, vg);
                            kahan_free(ku, cu, vu);
                        }
                    }
                    accL[k] = sl; accT[k] = st; accU[k] = su;
                    kL[k] = kl; kT[k] = kt; kU[k] = ku;
                    cmpL[k] = cl; cmpT[k] = ct; cmpU[k] = cu;
                }
            };
            const std::integral_constant<int, 1> on;
            const std::integral_constant<int, 0> off;
            if (want_h) {
                if (exact) pass3(std::true_type(), on); else pass3(std::true_type(), off);
            } else {
                if (exact) pass3(std::false_type(), on); else pass3(std::false_type(), off);
            }
            if (KEEP) {
                if (want_g) for (int k = 0; k < n; ++k) gr[(j0 + k) * inner] = gb[k];
                if (want_h) for (int k = 0; k < n; ++k) hr[(j0 + k) * inner] = hb[k];
            }
        }
    }
    /* the maximum's own terms (Q_jm = s_rest / s exactly) */
    T cjm;
    stage_coefs(a, y, ys, jm, 1, &cjm);
    const T djm = softmax_gap(xr[jm * sc], m);
    const SoftmaxElem<T> eljm = softmax_elem(djm, T(1), true, s, s_rest, L, T(0), re);
    const FocalSoftmax<T> fjm = focal_softmax_elem<T, Pow>(cjm, eljm, g, want_d, want_h);
    FocalRowSums<T> sums = focal_row_sums_init<T>();
    sums.loss = lane_total_free<T, NL>(accL, kL, cmpL) + double(fjm.loss);
    sums.T_rest = lane_total_free<T, NL>(accT, kT, cmpT);
    sums.Tt = sums.T_rest + double(fjm.G);
    sums.U_rest = lane_total_free<T, NL>(accU, kU, cmpU);
    sums.G_jm = fjm.G;
    sums.Kt_jm = fjm.Kt;
    *loss_out = mul0(wi, T(sums.loss));
    if (!want_d) return;
    const RestRecip rr = rest_recip(s_rest);
    /* pass 4. The weight ds read from an array: as a loop-invariant operand of mul0 GCC left the
     * gradient-only float64 loop scalar (see binary_span) */
    T dsb[CHUNK];
    for (int k = 0; k < CHUNK; ++k) dsb[k] = ds;
    for (int64_t j0 = 0; j0 < C; j0 += CHUNK) {
        const int n = (C - j0) < CHUNK ? int(C - j0) : CHUNK;
        const int nr = (n + NL - 1) / NL * NL;   /* n rounded up to whole NL */
        if constexpr (KEEP) {
            /* the logits, e_j again (pass 3 wrote over the copy the summary left in the output
             * row: the same softmax_exp, the same bits) and pass 3's G and Kt, padded with zeros */
            for (int k = 0; k < n; ++k) xb[k] = xr[(j0 + k) * sc];
            for (int k = 0; k < n; ++k) ebuf[k] = row_exp<T, false>(eb, xr, sc, m, j0 + k);
            for (int k = n; k < nr; ++k) { xb[k] = m; ebuf[k] = T(1); }
            for (int k = 0; k < nr; ++k) gb[k] = hb[k] = T(0);
            if (want_g) for (int k = 0; k < n; ++k) gb[k] = gr[(j0 + k) * inner];
            if (want_h) for (int k = 0; k < n; ++k) hb[k] = hr[(j0 + k) * inner];
        } else {
            stage(j0, n, nr);
        }
        /* NL at a time: GCC then vectorises the float-to-double steps (with a free trip count
         * it gives up on them). The Hessian's terms only where it is asked for: a loop that
         * computed them for a scratch row took 40% of the gradient-only instructions. The
         * derivatives take P and Q, not Q's correction, which only the class's terms use: with
         * them kept, one form (CORR 0); without, the terms again, with and without it. */
        auto derivs = [&](auto with_h, auto corr) {
            for (int k0 = 0; k0 < nr; k0 += NL) {
                for (int k = k0; k < k0 + NL; ++k) {
                    const SoftmaxElem<T> el = softmax_elem<T, decltype(corr)::value>(
                        softmax_gap(xb[k], m), ebuf[k], false, s, s_rest, L,
                        decltype(corr)::value ? rb[k] : T(0), re);
                    FocalSoftmax<T> f = f0;
                    if (KEEP) {
                        f.G = gb[k];
                        f.Kt = decltype(with_h)::value ? hb[k] : T(0);
                    } else if (!SPARSE) {
                        f = focal_softmax_elem<T, Pow>(cb[k], el, g, want_d, want_h);
                    }
                    const FocalDerivs dv = focal_softmax_derivs(el, f, ebuf[k], false, sums, rr);
                    gb[k] = mul0(dsb[k], T(dv.g));
                    if (decltype(with_h)::value) hb[k] = mul0(dsb[k], T(dv.h));
                }
            }
        };
        const std::integral_constant<int, 1> on;
        const std::integral_constant<int, 0> off;
        const bool with_corr = exact && !SPARSE && !KEEP;
        if (want_h) {
            if (with_corr) derivs(std::true_type(), on); else derivs(std::true_type(), off);
        } else {
            if (with_corr) derivs(std::false_type(), on); else derivs(std::false_type(), off);
        }
        if (want_g) for (int k = 0; k < n; ++k) gr[(j0 + k) * inner] = gb[k];
        if (want_h) for (int k = 0; k < n; ++k) hr[(j0 + k) * inner] = hb[k];
    }
    if (SPARSE && y != jm) {
        const FocalDerivs dv = focal_softmax_derivs(ely, fy, ey, false, sums, rr);
        if (want_g) gr[y * inner] = mul0(ds, T(dv.g));
        if (want_h) hr[y * inner] = mul0(ds, T(dv.h));
    }
    const FocalDerivs dv = focal_softmax_derivs(eljm, fjm, T(1), true, sums, rr);
    if (want_g) gr[jm * inner] = mul0(ds, T(dv.g));
    if (want_h) hr[jm * inner] = mul0(ds, T(dv.h));
}

template <typename T, bool UNIT, typename Pow>
static inline void softmax_row_from_logits(const SoftmaxArgs* a, int64_t r, const T* xr, int64_t y,
                                           const T* ys, T* gr, T* hr, T wi, BlockResult* res, T* loss_out,
                                           const T* next) {
    const int64_t C = a->C, sc = a->sx_c, inner = a->inner;
    const T g = T(a->gamma);
    const bool want_g = gr != 0, want_h = hr != 0;
    const T ds = wi * T(a->dscale);
    /* soft labels must lie in [0, 1] */
    if (ys) {
        /* one branch-free scan; the first bad label is located only when there is one */
        int bad = 0;
        for (int64_t j = 0; j < C; ++j) {
            const T v = ys[j * a->sy_c];
            bad |= !(v >= T(0) && v <= T(1));
        }
        if (bad) {
            for (int64_t j = 0; j < C; ++j) {
                int e = unit_label_error(ys[j * a->sy_c]);
                if (e) { set_error(res, e, r, j); return; }
            }
        }
    }
    /* contiguous rows with derivatives wanted: the summary leaves e_j in an output row */
    const bool store = UNIT && (want_g || want_h);
    RowSummary<T> sum = store ? softmax_summary<T, UNIT, UNIT>(xr, sc, C, want_g ? gr : hr, next)
                              : softmax_summary<T, UNIT, false>(xr, sc, C, (T*)0, next);
    if (sum.nan) {
        T q = T(NAN);
        *loss_out = q;
        for (int64_t j = 0; j < C; ++j) {
            if (want_g) gr[j * inner] = q;
            if (want_h) hr[j * inner] = q;
        }
        return;
    }
    const T m = sum.m;
    const int64_t jm = sum.jm;
    const double s_rest = sum.s_rest;
    const double s = 1.0 + s_rest;
    const T L = T(log1p(s_rest));
    if (pow_is_ce<Pow>(g)) {
        if (store) softmax_ce_finish<T, UNIT, UNIT>(a, xr, y, ys, gr, hr, wi, m, jm, s, s_rest, L, loss_out);
        else softmax_ce_finish<T, UNIT, false>(a, xr, y, ys, gr, hr, wi, m, jm, s, s_rest, L, loss_out);
        return;
    }
    const bool sparse = !ys && a->eps == 0.0;
    /* focal: s_rest again in double-double where it pays (focal_row_exact), and the summary's
     * roundings (see softmax_elem_inv) */
    const bool exact = focal_row_exact(a->gamma);
    DD rest;
    rest.hi = s_rest;
    rest.lo = 0.0;
    if (exact) rest = softmax_rest_dd<T, UNIT>(xr, sc, C, m);
    const double fs = 1.0 + rest.hi;
    const T fL = T(log1p(rest.hi) + rest.lo / fs);
    const SoftmaxRowErr re = softmax_row_err(exact, rest.hi, rest.lo, fs, 1.0 / fs);
#define XENT_FOCAL_FINISH(STORED, SPARSE) \
    softmax_focal_finish<T, UNIT, Pow, STORED, SPARSE>(a, xr, y, ys, gr, hr, wi, ds, m, jm, fs, rest.hi, fL, re, \
                                                       loss_out)
    if (store && sparse) XENT_FOCAL_FINISH(UNIT, true);
    else if (store) XENT_FOCAL_FINISH(UNIT, false);
    else if (sparse) XENT_FOCAL_FINISH(false, true);
    else XENT_FOCAL_FINISH(false, false);
#undef XENT_FOCAL_FINISH
}

/* One chunk of a row from probabilities, with the outputs wanted known at compile time: with
 * them as runtime flags the loop's merges had too many inputs for GCC to if-convert it, and it ran
 * scalar (focal 4096 x 1000 soft labels, gamma 3, benchmarks/option_paths.py: float64 26.9 -> 5.8
 * ms, float32 26.0 -> 3.8). */
template <typename T, typename Pow, bool G, bool H, int N = CHUNK>
static XENT_ALWAYS_INLINE void prob_chunk(const T* __restrict xb, const T* __restrict cb, T g, T wi, T ds,
                                          T* __restrict lb, T* __restrict gb, T* __restrict hb) {
    for (int k = 0; k < N; ++k) {
        const LGH<T> o = categorical_from_prob<T, Pow>(xb[k], cb[k], g, G, H, wi, ds);
        lb[k] = o.l;
        gb[k] = o.g;
        hb[k] = o.h;
    }
}

/* Classes [j0, j0 + n) of a row from probabilities, n <= N: coefficients staged, the chunk padded
 * to N entries (c = 0, p = 1: exact zeros), computed in one loop of fixed length, the losses added
 * into the lanes<T>() lane sums acc / cmp, the derivatives written out. Rows of fewer than CHUNK
 * classes take one chunk of the least of NL, 2 NL and 4 NL that holds them (C = 10 float: 16
 * entries computed, not 64; one vector at a time left a log's chain latency-bound: float64
 * 16384 x 40 took 1.47 ms in NL steps, 1.27 padded to 64). The padding adds exact zeros to the
 * lane sums, so the bits do not depend on N. */
template <typename T, typename Pow, int N>
static XENT_ALWAYS_INLINE void prob_chunk_at(const SoftmaxArgs* a, const T* xr, int64_t y, const T* ys, int64_t j0,
                                             int n, T* gr, T* hr, T g, T wi, T ds, double* acc, double* cmp) {
    constexpr int NL = lanes<T>();
    const int64_t sc = a->sx_c, inner = a->inner;
    T cb[N], xb[N], lb[N], gb[N], hb[N];
    stage_coefs(a, y, ys, j0, n, cb);
    for (int k = 0; k < n; ++k) xb[k] = xr[(j0 + k) * sc];
    for (int k = n; k < N; ++k) { cb[k] = T(0); xb[k] = T(1); }
    if (gr && hr) prob_chunk<T, Pow, true, true, N>(xb, cb, g, wi, ds, lb, gb, hb);
    else if (gr) prob_chunk<T, Pow, true, false, N>(xb, cb, g, wi, ds, lb, gb, hb);
    else if (hr) prob_chunk<T, Pow, false, true, N>(xb, cb, g, wi, ds, lb, gb, hb);
    else prob_chunk<T, Pow, false, false, N>(xb, cb, g, wi, ds, lb, gb, hb);
    for (int k = 0; k < NL; ++k) {
        double v = acc[k], c = cmp[k];
        for (int i0 = 0; i0 < N; i0 += NL) lane_add<T>(v, c, double(lb[i0 + k]));
        acc[k] = v;
        cmp[k] = c;
    }
    if (gr) for (int k = 0; k < n; ++k) gr[(j0 + k) * inner] = gb[k];
    if (hr) for (int k = 0; k < n; ++k) hr[(j0 + k) * inner] = hb[k];
}

/* The chunk length prob_chunk_at pads a row of C <= CHUNK classes to (softmax_row_from_probs and
 * the pieces of softmax_prob_piece). */
template <typename T> static inline int prob_chunk_len(int64_t C) {
    constexpr int NL = lanes<T>();
    constexpr int N4 = 4 * NL < CHUNK ? 4 * NL : CHUNK;
    return C <= NL ? NL : C <= 2 * NL ? 2 * NL : (C <= N4 && N4 < CHUNK) ? N4 : CHUNK;
}

/* A categorical row from probabilities: each entry is its own input (categorical_from_prob).
 * One branch-free scan checks the row (probabilities in [0, 1], soft labels in [0, 1]) and notes
 * a NaN; the first bad entry is located only when there is one. Then either
 *   - sparse (integer label, no smoothing, no NaN in the row): only the label's class has a
 *     coefficient, so every other class gets the zeros categorical_from_prob gives at c = 0 and
 *     the label's class is computed alone. The row loss is that class's loss, as the sum of the
 *     general loop gives it (its other terms are +0);
 *   - otherwise classes are taken CHUNK at a time with their coefficients staged (padding c = 0,
 *     p = 1: exact zeros), computed in one loop of fixed length and summed in lanes<T>() lane
 *     sums, so the loop vectorises. Every layout runs this same code (strides only change how the
 *     chunk is gathered and scattered), so the bits do not depend on the layout. */
template <typename T, typename Pow>
static inline void softmax_row_from_probs(const SoftmaxArgs* a, int64_t r, const T* xr, int64_t y,
                                          const T* ys, T* gr, T* hr, T wi, BlockResult* res, T* loss_out) {
    const int64_t C = a->C, sc = a->sx_c, sy = a->sy_c, inner = a->inner;
    const T* cwa = (const T*)a->cwa;
    const T g = T(a->gamma);
    const bool want_g = gr != 0, want_h = hr != 0;
    const T ds = wi * T(a->dscale);
    int bad = 0, nan = 0;
    for (int64_t j = 0; j < C; ++j) {
        const T p = xr[j * sc];
        bad |= (p < T(0)) | (p > T(1));
        nan |= p != p;
    }
    if (ys)
        for (int64_t j = 0; j < C; ++j) {
            const T v = ys[j * sy];
            bad |= !(v >= T(0) && v <= T(1));
        }
    if (bad) {
        for (int64_t j = 0; j < C; ++j) {
            const T p = xr[j * sc];
            if (p < T(0) || p > T(1)) { set_error(res, ERR_PROB, r, j); return; }
            if (ys) {
                int e = unit_label_error(ys[j * sy]);
                if (e) { set_error(res, e, r, j); return; }
            }
        }
    }
    if (!ys && a->eps == 0.0 && !nan) {
        for (int64_t j = 0; j < C; ++j) {
            if (want_g) gr[j * inner] = T(0);
            if (want_h) hr[j * inner] = T(0);
        }
        const LGH<T> o = categorical_from_prob<T, Pow>(xr[y * sc], class_coef(a, cwa, y, ys, y), g, want_g, want_h,
                                                       wi, ds);
        if (want_g) gr[y * inner] = o.g;
        if (want_h) hr[y * inner] = o.h;
        *loss_out = o.l;
        return;
    }
    constexpr int NL = lanes<T>();
    static_assert(4 * lanes<double>() < CHUNK && 2 * lanes<float>() < CHUNK, "chunks shorter than CHUNK");
    constexpr int N4 = 4 * NL < CHUNK ? 4 * NL : CHUNK;
    double acc[NL], cmp[NL];
    for (int k = 0; k < NL; ++k) acc[k] = cmp[k] = 0.0;
    if (C > CHUNK)
        for (int64_t j0 = 0; j0 < C; j0 += CHUNK) {
            const int n = (C - j0) < CHUNK ? int(C - j0) : CHUNK;
            prob_chunk_at<T, Pow, CHUNK>(a, xr, y, ys, j0, n, gr, hr, g, wi, ds, acc, cmp);
        }
    else
        switch (prob_chunk_len<T>(C)) {
        case NL: prob_chunk_at<T, Pow, NL>(a, xr, y, ys, 0, int(C), gr, hr, g, wi, ds, acc, cmp); break;
        case 2 * NL: prob_chunk_at<T, Pow, 2 * NL>(a, xr, y, ys, 0, int(C), gr, hr, g, wi, ds, acc, cmp); break;
        case N4: prob_chunk_at<T, Pow, N4>(a, xr, y, ys, 0, int(C), gr, hr, g, wi, ds, acc, cmp); break;
        default: prob_chunk_at<T, Pow, CHUNK>(a, xr, y, ys, 0, int(C), gr, hr, g, wi, ds, acc, cmp);
        }
    *loss_out = T(lane_total_comp<T, NL>(acc, cmp));
}

/* ------------------------------------------------------------------------------------------ */
/* Rows with few classes, from logits. Taken one at a time, a row of a handful of classes pays   */
/* the fixed cost of the row loops above (tails, lane reductions, a log1p call) for a handful of */
/* elements. Here a group of up to GROUP rows is staged class-major, element (r, j) at           */
/* [j * GROUP + r], and every step is a loop over the classes around a loop over the group's    */
/* rows: the inner loop has a fixed length and no branches, so it vectorises with one row per    */
/* lane, and each row's sums still run over its own classes in order, so a row's bits do not    */
/* depend on which rows share its group or where a block starts. Ignored rows get zeros, as in  */
/* softmax_with_pow; rows with a NaN logit or a soft label outside [0, 1] are computed along     */
/* (harmlessly) and then redone by softmax_row_from_logits, which owns those decisions. The     */
/* staging gathers through the strides, so every layout takes this path and gives the bits of   */
/* the contiguous call. The bits are not those of the per-row path (sums in class order,        */
/* vlog1p for L, P from softmax_exp): the accuracy is the same, measured against the reference.  */
/* ------------------------------------------------------------------------------------------ */
/* Measured (AVX-512, one thread, ns per element, float32 grad): at C = 24..64 the group path took
 * 3.5-5 ns for CE and 6-8 for focal, the per-row path 9-10 and 40-50. 16 rows per group matched 32
 * in speed and halves the stack scratch (SmallGroup<double> is 80 KiB at C = 64, SmallGroup<float>
 * 71 KiB at 127: a call from a thread with a 96 KiB stack works, 80 KiB does not; the test
 * test_calls_fit_a_small_thread_stack holds 128 KiB, musl's default for a thread). */
#if defined(__AVX512F__)
/* Moves of a float group between row-major rows and the class-major staging, 16 classes at a
 * time through a 16x16 transpose in registers (pure data movement: the bits are those of the
 * scalar copies, which GCC could not vectorise; they took 14% of a 10-class CE call). */
static inline void transpose16(__m512* v) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    /* u[4q + c] holds, in 128-bit lane L, elements 4q..4q+3 of column 4L + c */
    for (int c = 0; c < 4; ++c) {
        const __m512 a0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), a1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);
        const __m512 b0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88), b1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
        v[c] = _mm512_shuffle_f32x4(a0, b0, 0x88);
        v[c + 8] = _mm512_shuffle_f32x4(a0, b0, 0xdd);
        v[c + 4] = _mm512_shuffle_f32x4(a1, b1, 0x88);
        v[c + 12] = _mm512_shuffle_f32x4(a1, b1, 0xdd);
    }
}

/* The same for a double group of 16 rows, as two blocks of 8 rows, 8 classes at a time through an
 * 8x8 transpose (the scalar copies took 20% of a 10-class float64 CE call; perf). */
static inline void transpose8(__m512d* v) {
    __m512d t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_pd(v[i], v[i + 1]);       /* elements 0, 2, 4, 6 of rows i, i + 1 */
        t[i + 1] = _mm512_unpackhi_pd(v[i], v[i + 1]);   /* elements 1, 3, 5, 7 */
    }
    /* u[4q + c]: 128-bit lanes (c + 2L) of rows 4q..4q+3 in order: c = 0 lanes 0, 4; 1: 2, 6; 2: 1, 5; 3: 3, 7 */
    for (int q = 0; q < 8; q += 4) {
        u[q] = _mm512_shuffle_f64x2(t[q], t[q + 2], 0x88);
        u[q + 1] = _mm512_shuffle_f64x2(t[q], t[q + 2], 0xdd);
        u[q + 2] = _mm512_shuffle_f64x2(t[q + 1], t[q + 3], 0x88);
        u[q + 3] = _mm512_shuffle_f64x2(t[q + 1], t[q + 3], 0xdd);
    }
    v[0] = _mm512_shuffle_f64x2(u[0], u[4], 0x88);
    v[4] = _mm512_shuffle_f64x2(u[0], u[4], 0xdd);
    v[2] = _mm512_shuffle_f64x2(u[1], u[5], 0x88);
    v[6] = _mm512_shuffle_f64x2(u[1], u[5], 0xdd);
    v[1] = _mm512_shuffle_f64x2(u[2], u[6], 0x88);
    v[5] = _mm512_shuffle_f64x2(u[2], u[6], 0xdd);
    v[3] = _mm512_shuffle_f64x2(u[3], u[7], 0x88);
    v[7] = _mm512_shuffle_f64x2(u[3], u[7], 0xdd);
}

/* One square block of transpose_copy (below) through the registers: na x nb elements (na, nb <= K),
 * src contiguous along b, dst along a. FULL: na == nb == K, no masks (the group path's case). */
template <bool FULL>
static XENT_ALWAYS_INLINE void transpose_block(const float* src, int64_t sa, float* dst, int64_t db, int na, int nb) {
    const __mmask16 mb = (__mmask16)((1u << nb) - 1u), ma = (__mmask16)((1u << na) - 1u);
    __m512 v[16];
    for (int i = 0; i < 16; ++i)
        v[i] = FULL ? _mm512_loadu_ps(src + i * sa)
                    : (i < na ? _mm512_maskz_loadu_ps(mb, src + i * sa) : _mm512_setzero_ps());
    transpose16(v);
    for (int k = 0; k < (FULL ? 16 : nb); ++k) {
        if (FULL) _mm512_storeu_ps(dst + k * db, v[k]);
        else _mm512_mask_storeu_ps(dst + k * db, ma, v[k]);
    }
}

template <bool FULL>
static XENT_ALWAYS_INLINE void transpose_block(const double* src, int64_t sa, double* dst, int64_t db, int na, int nb) {
    const __mmask8 mb = (__mmask8)((1u << nb) - 1u), ma = (__mmask8)((1u << na) - 1u);
    __m512d v[8];
    for (int i = 0; i < 8; ++i)
        v[i] = FULL ? _mm512_loadu_pd(src + i * sa)
                    : (i < na ? _mm512_maskz_loadu_pd(mb, src + i * sa) : _mm512_setzero_pd());
    transpose8(v);
    for (int k = 0; k < (FULL ? 8 : nb); ++k) {
        if (FULL) _mm512_storeu_pd(dst + k * db, v[k]);
        else _mm512_mask_storeu_pd(dst + k * db, ma, v[k]);
    }
}
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
/* The first n lanes of v to p (0 < n < lanes): whole halves, then pairs, then one. AVX2's masked
 * store (vmaskmovps) is slow on AMD processors, and the edge's n is the same for a whole block,
 * so the branches below are predicted. */
static XENT_ALWAYS_INLINE void store_first(float* p, __m256 v, int n) {
    __m128 h = _mm256_castps256_ps128(v);
    if (n >= 4) { _mm_storeu_ps(p, h); h = _mm256_extractf128_ps(v, 1); p += 4; n -= 4; }
    if (n >= 2) { _mm_storel_pi((__m64*)p, h); h = _mm_movehl_ps(h, h); p += 2; n -= 2; }
    if (n) _mm_store_ss(p, h);
}

static XENT_ALWAYS_INLINE void store_first(double* p, __m256d v, int n) {
    __m128d h = _mm256_castpd256_pd128(v);
    if (n >= 2) { _mm_storeu_pd(p, h); h = _mm256_extractf128_pd(v, 1); p += 2; n -= 2; }
    if (n) _mm_store_sd(p, h);
}

/* The AVX2 variant's square blocks: 8x8 floats, 4x4 doubles; an edge block (na or nb below the
 * width) loads its rows' first nb elements masked (vmaskmovps loads are fast, and read nothing
 * past the mask), zeros for rows past na, and stores the first na lanes of its first nb rows. */
template <bool FULL>
static XENT_ALWAYS_INLINE void transpose_block_avx2(const float* src, int64_t sa, float* dst, int64_t db, int na,
                                                    int nb) {
    const __m256i mb = _mm256_cmpgt_epi32(_mm256_set1_epi32(nb), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; ++i)
        r[i] = FULL ? _mm256_loadu_ps(src + i * sa)
                    : (i < na ? _mm256_maskload_ps(src + i * sa, mb) : _mm256_setzero_ps());
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    __m256 o[8];
    for (int c = 0; c < 4; ++c) {
        o[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        o[c + 4] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
    for (int c = 0; c < 8; ++c) {
        if (FULL) _mm256_storeu_ps(dst + c * db, o[c]);
        else if (c < nb) {
            if (na == 8) _mm256_storeu_ps(dst + c * db, o[c]);
            else store_first(dst + c * db, o[c], na);
        }
    }
}

template <bool FULL>
static XENT_ALWAYS_INLINE void transpose_block_avx2(const double* src, int64_t sa, double* dst, int64_t db, int na,
                                                    int nb) {
    const __m256i mb = _mm256_cmpgt_epi64(_mm256_set1_epi64x(nb), _mm256_setr_epi64x(0, 1, 2, 3));
    __m256d r[4];
    for (int i = 0; i < 4; ++i)
        r[i] = FULL ? _mm256_loadu_pd(src + i * sa)
                    : (i < na ? _mm256_maskload_pd(src + i * sa, mb) : _mm256_setzero_pd());
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    const __m256d o[4] = {_mm256_permute2f128_pd(t0, t2, 0x20), _mm256_permute2f128_pd(t1, t3, 0x20),
                          _mm256_permute2f128_pd(t0, t2, 0x31), _mm256_permute2f128_pd(t1, t3, 0x31)};
    for (int c = 0; c < 4; ++c) {
        if (FULL) _mm256_storeu_pd(dst + c * db, o[c]);
        else if (c < nb) {
            if (na == 4) _mm256_storeu_pd(dst + c * db, o[c]);
            else store_first(dst + c * db, o[c], na);
        }
    }
}
#endif

/* dst[a * da + b * db] = src[a * sa + b * sb] for a < NA, b < NB: the one copy between row-major
 * and class-major forms (the group path's staging, the row tiles of softmax_tiled_rows). Square
 * blocks at a time, so both sides stay within a few cache lines; where src is contiguous along b
 * and dst along a, the vector variants move a block through a transpose in registers (AVX-512:
 * 16x16 floats or 8x8 doubles; AVX2: 8x8 floats or 4x4 doubles; edges masked in both). The scalar
 * copies took 14% of a 10-class float32 CE call and 20% of a float64 one (AVX-512), and GCC does
 * not vectorise them; the AVX2 edges alone, element by element, 8% of the float32 call (Zen 3).
 * Pure data movement: every variant gives the same bits. */
template <typename T>
static inline void transpose_copy(const T* __restrict src, int64_t sa, int64_t sb, T* __restrict dst, int64_t da,
                                  int64_t db, int64_t NA, int64_t NB) {
#if defined(__AVX512F__)
    constexpr int K = 64 / int(sizeof(T));
#elif defined(__AVX2__)
    constexpr int K = 32 / int(sizeof(T));
#else
    constexpr int K = 16;
#endif
    const bool vec = sb == 1 && da == 1;
    for (int64_t a0 = 0; a0 < NA; a0 += K) {
        const int na = (NA - a0) < K ? int(NA - a0) : K;
        for (int64_t b0 = 0; b0 < NB; b0 += K) {
            const int nb = (NB - b0) < K ? int(NB - b0) : K;
#if defined(__AVX512F__)
            if (vec) {
                if (na == K && nb == K) transpose_block<true>(src + a0 * sa + b0, sa, dst + a0 + b0 * db, db, K, K);
                else transpose_block<false>(src + a0 * sa + b0, sa, dst + a0 + b0 * db, db, na, nb);
                continue;
            }
#elif defined(__AVX2__)
            if (vec) {
                if (na == K && nb == K) transpose_block_avx2<true>(src + a0 * sa + b0, sa, dst + a0 + b0 * db, db, K, K);
                else transpose_block_avx2<false>(src + a0 * sa + b0, sa, dst + a0 + b0 * db, db, na, nb);
                continue;
            }
#endif
            (void)vec;
            for (int64_t b = b0; b < b0 + nb; ++b)
                for (int64_t a = a0; a < a0 + na; ++a) dst[a * da + b * db] = src[a * sa + b * sb];
        }
    }
}

/* The largest number of classes that takes the group path, by type. float32: up to 127 it is the
 * faster path (one thread, 655360 logits, loss and gradient: 1.0-1.3 -> 0.7 ms for 65-127
 * classes); from 128 on the row path is as fast. float64: 64, for accuracy: the group adds each
 * row's exponentials in class order in one double chain, and its error grows with C (focal
 * gamma 2 at classes 20-70 below the maximum, tests/test_cuda.py's small-probabilities rows:
 * 8 ulp at C = 64, 13.8 at 100, 17 at 127, over the bar; the row path's 16 lanes: 4.7 at 100;
 * tests/test_small_classes.py's test_tiny_probabilities_every_element holds it). */
template <typename T> constexpr int small_c() { return sizeof(T) == sizeof(float) ? 127 : 64; }
constexpr int GROUP = 16;     /* rows per group */

/* The staged arrays of one group, class-major. */
template <typename T> struct SmallGroup {
    static constexpr int N = small_c<T>() * GROUP;
    T x[N], e[N], c[N], gd[N], hd[N], P[N], Q[N], G[N], Kt[N];
    /* float64 focal with the Hessian: Kt / Q^2 of each class, from pass 3 to the derivatives
     * (KEEP_K); a single element for float32, where it saved 1-3% for 16 KiB more stack */
    static constexpr bool KEEP_K = sizeof(T) == sizeof(double);
    double K[KEEP_K ? N : 1];
};

/* The staged derivatives of a planar group's n rows (class-major, R a class) to its output rows,
 * side by side, class j inner apart; only the group's own rows (the others belong to another
 * block). */
template <typename T, int R>
static XENT_ALWAYS_INLINE void planar_store(const T* __restrict src, T* __restrict dst, int C, int64_t inner, int n) {
    if (n == R)
        for (int j = 0; j < C; ++j)
            for (int r = 0; r < R; ++r) dst[j * inner + r] = src[j * R + r];
    else
        for (int j = 0; j < C; ++j)
            for (int r = 0; r < n; ++r) dst[j * inner + r] = src[j * R + r];
}

/* Rows [r0, r0 + n) of the block, n <= GROUP. UNIT: contiguous rows (sx_c == 1, inner == 1);
 * H: the Hessian is asked for (without it, its terms are left out of the loops at compile time). */
template <typename T, typename Pow, bool UNIT, bool H>
XENT_SCHEDULE
static inline void softmax_small_group(const SoftmaxArgs* a, int64_t r0, int n, SmallGroup<T>& b, BlockResult* res) {
    constexpr int R = GROUP;
    const int C = int(a->C);
    const int64_t inner = UNIT ? 1 : a->inner, sc = UNIT ? 1 : a->sx_c;
    const T* x = (const T*)a->x;
    const T* ysoft = (const T*)a->ysoft;
    const T* sw = (const T*)a->sw;
    const T* cwa = (const T*)a->cwa;
    T* lo = (T*)a->loss; T* go = (T*)a->grad; T* ho = (T*)a->hess;
    const bool want_g = go != 0, want_h = H, want_d = want_g || want_h;
    const T g = T(a->gamma), dscale = T(a->dscale);
    T* __restrict xb = b.x;
    T* __restrict eb = b.e;
    T* __restrict cb = b.c;
    T* __restrict gb = b.gd;
    T* __restrict hb = b.hd;

    /* per row: where its data lies, its label, weights, and whether the per-row code takes it */
    int64_t xo[R], yo[R], oo[R], yl[R];
    T wl[R], wd[R], flag[R];
    bool ignored[R];
    for (int r = 0; r < R; ++r) {
        const int64_t row = r0 + (r < n ? r : 0);
        const int64_t o = UNIT ? row : row / a->inner, k = UNIT ? 0 : row % a->inner;
        xo[r] = o * a->sx_o + k * a->sx_i;
        yo[r] = o * a->sy_o + k * a->sy_i;
        oo[r] = o * a->C * inner + k;
        yl[r] = a->labels ? a->labels[row] : -1;
        ignored[r] = a->labels && a->has_ignore && yl[r] == a->ignore_index;
        if (ignored[r]) yl[r] = -1;   /* an ignored label may lie outside [0, C) */
        /* an ignored row weighs 0: every output of the loops below is a product with its weight
         * (mul0), so the row comes out as zeros without a branch on the label (a NaN row is
         * redone below). A branch per row on ignored[r], as random as the labels, took 12 ns a row
         * (1e6 x 4 float32 CE, a quarter of the rows ignored, one thread: 28 ms against 16 with
         * none ignored or with sorted labels). */
        const T w = sw ? sw[row] : T(1);   /* row is one of the group's, also for r >= n */
        wl[r] = (r < n && !ignored[r]) ? w : T(0);
        wd[r] = wl[r] * dscale;
        flag[r] = T(0);
    }
    /* Planar: the R rows are pixels side by side of one outer index, as in the (N, C, H, W) layout
     * with axis 1 (unit stride along the inner axis, the group inside one outer index), so class j
     * of the group is R consecutive elements of y_pred and of the outputs: one vector load or
     * store, not R scalar ones (8x21x256x256 float32 CE: 28 -> 15 ms; the same data, so the
     * same bits). A part group (the last of a block: blocks of 16384 / 3C rows, 54 at C = 100)
     * is planar too, its rows r >= n zeros (through the per-row gathers and scatters of the
     * general branch, such groups took half of 4x100x128x128 float32 CE with axis 1) */
    const bool planar = !UNIT && a->sx_i == 1 && (r0 % a->inner) + n <= a->inner;
    if (UNIT && n == R) {
        /* a full group of contiguous rows: one transpose (AVX2 variant 10-class float32 CE 2.43 ->
         * 2.13 ns an element against the row-by-row copy below; baseline unchanged) */
        transpose_copy(x + xo[0], a->sx_o, int64_t(1), xb, int64_t(1), int64_t(R), int64_t(R), int64_t(C));
    } else if (UNIT) {
        /* contiguous rows: row by row, a contiguous read (GCC's gather of the class-major form
         * cost three times the instructions) */
        for (int r = 0; r < n; ++r) {
            const T* __restrict src = x + xo[r];
            for (int j = 0; j < C; ++j) xb[j * R + r] = src[j];
        }
        for (int j = 0; j < C; ++j)
            for (int r = n; r < R; ++r) xb[j * R + r] = T(0);
    } else if (planar && n == R) {
        const T* __restrict src = x + xo[0];
        for (int j = 0; j < C; ++j)
            for (int r = 0; r < R; ++r) xb[j * R + r] = src[j * sc + r];
    } else if (planar) {
        const T* __restrict src = x + xo[0];
        for (int j = 0; j < C; ++j) {
            for (int r = 0; r < n; ++r) xb[j * R + r] = src[j * sc + r];
            for (int r = n; r < R; ++r) xb[j * R + r] = T(0);
        }
    } else {
        for (int j = 0; j < C; ++j) {
            T* __restrict xj = xb + j * R;
            for (int r = 0; r < n; ++r) xj[r] = x[xo[r] + j * sc];
            for (int r = n; r < R; ++r) xj[r] = T(0);
        }
    }

    /* the row summary: maximum m, its first index jm (held as a T so that it shares the lanes of
     * the data), NaN flag, s_rest = sum over j != jm of exp(x_j - m), and L = log1p(s_rest) */
    T m[R], jm[R], L[R];
    double s_rest[R], s[R];
    for (int r = 0; r < R; ++r) {
        m[r] = xb[r];
        jm[r] = T(0);
    }
    /* Class j updates the running (m, jm) from one pair of arrays into the other, two classes a
     * round. In place (m[r] = gt ? v : m[r]) GCC dropped the store where it rewrote the old value,
     * made the rest masked stores behind a test of the mask (a branch on the data) and reloaded
     * them: 20% of the time of a 10-class CE call (AVX-512, float64; perf). */
    T m2[R], jm2[R];
    auto max_step = [&](int j, const T* __restrict mi, const T* __restrict ji, T* __restrict mn, T* __restrict jn) {
        for (int r = 0; r < R; ++r) {
            const T v = xb[j * R + r];
            const bool gt = v > mi[r];
            mn[r] = gt ? v : mi[r];
            jn[r] = gt ? T(j) : ji[r];
        }
    };
    int j1 = 1;
    for (; j1 + 1 < C; j1 += 2) {
        max_step(j1, m, jm, m2, jm2);
        max_step(j1 + 1, m2, jm2, m, jm);
    }
    if (j1 < C) {
        max_step(j1, m, jm, m2, jm2);
        for (int r = 0; r < R; ++r) { m[r] = m2[r]; jm[r] = jm2[r]; }
    }
    /* e_j, two classes a round: each class is a chain of about 30 dependent operations per vector
     * of rows, and two side by side, interleaved by XENT_SCHEDULE, keep more of them in flight.
     * e_j is kept (eb) only where a later loop reads it: not for the loss alone of cross entropy.
     * Same operations, same bits. AVX2 driver, one thread, 16-64 float32 classes: the loss alone
     * 10-15% less time with the NaN test below, loss and gradient 5-10% (Zen 3, noisy). */
    for (int r = 0; r < R; ++r) s_rest[r] = 0.0;
    auto exp_pass = [&](auto keep) {
        auto exp_step = [&](int j) {
            for (int r = 0; r < R; ++r) {
                const T e = softmax_exp(xb[j * R + r], m[r]);
                if (decltype(keep)::value) eb[j * R + r] = e;
                s_rest[r] += T(j) == jm[r] ? 0.0 : double(e);
            }
        };
        int j = 0;
        for (; j + 1 < C; j += 2) { exp_step(j); exp_step(j + 1); }
        if (j < C) exp_step(j);
    };
    if (want_d || !pow_is_ce<Pow>(g)) exp_pass(std::true_type());
    else exp_pass(std::false_type());
    /* a NaN logit: every comparison with it fails, so it becomes m only as class 0 (then m is
     * NaN), and any other lies below m and makes s_rest NaN; so no test of every element */
    for (int r = 0; r < R; ++r) {
        flag[r] = (s_rest[r] != s_rest[r]) | (m[r] != m[r]) ? T(1) : flag[r];
        s[r] = 1.0 + s_rest[r];
        L[r] = T(vlog1p(s_rest[r]));
    }

    /* class coefficients c_j (class_coef), soft labels checked on the way */
    if (ysoft) {
        const int64_t sy = a->sy_c;
        for (int j = 0; j < C; ++j) {
            T* __restrict yj = gb + j * R;   /* gb is free until the derivatives */
            if (planar && a->sy_i == 1 && n == R) {
                for (int r = 0; r < R; ++r) yj[r] = ysoft[yo[0] + j * sy + r];
            } else if (planar && a->sy_i == 1) {
                for (int r = 0; r < n; ++r) yj[r] = ysoft[yo[0] + j * sy + r];
                for (int r = n; r < R; ++r) yj[r] = T(0);
            } else {
                for (int r = 0; r < n; ++r) yj[r] = ysoft[yo[r] + j * sy];
                for (int r = n; r < R; ++r) yj[r] = T(0);
            }
            for (int r = 0; r < R; ++r) flag[r] = (yj[r] >= T(0) && yj[r] <= T(1)) ? flag[r] : T(1);
        }
        SoftmaxArgs ag = *a;
        ag.sy_c = R;   /* class_coef reads the staged labels */
        for (int j = 0; j < C; ++j)
            for (int r = 0; r < R; ++r) cb[j * R + r] = class_coef(&ag, cwa, -1, gb + r, j);
    }
    /* Cross entropy with integer labels and no smoothing (SPARSE): only the label has a
     * coefficient, c_y = cw_y, so the sums over classes are that one term and the gradient takes
     * c_j = 0 elsewhere. Same bits as the general loops, which add exact zeros to it. */
    const bool cross_entropy = pow_is_ce<Pow>(g);
    const bool label_only = !ysoft && T(a->eps) == T(0);   /* only the label has a coefficient */
    const bool sparse = cross_entropy && label_only;
    T cy[R], ylT[R];
    if (label_only) {
        for (int r = 0; r < R; ++r) {
            /* an ignored row (yl = -1) reads class 0 and takes c = 0, by a product (the coefficient
             * is finite): a select of class_coef's value was a branch on the label */
            const int64_t yc = class_or_zero(yl[r], yl[r] >= 0);
            cy[r] = class_coef(a, cwa, yc, (const T*)0, yc) * T(yl[r] >= 0);
            ylT[r] = yl[r] < 0 ? T(-1) : T(yl[r]);
        }
    } else if (!ysoft) {
        /* class_coef's values with its constants out of the loop: called per element, it read
         * a->eps again and divided after every store to cb (which may alias it), and float64
         * calls with label smoothing took twice the time of those without */
        const LabelCoefs<T> k = label_coefs<T>(a);
        for (int j = 0; j < C; ++j) {
            const T cw = cwa ? cwa[j] : T(1);
            for (int r = 0; r < R; ++r) cb[j * R + r] = mul0(cw, yl[r] == j ? k.on : k.off);
        }
    }

    T lossb[R], gjm[R], hjm[R];
    if (cross_entropy) {
        /* cross entropy: as softmax_ce_finish, with S = sum_j c_j, S_rest = sum_{j != jm} c_j */
        double S[R], S_rest[R], LD[R], c_jm[R];
        if (sparse) {
            for (int r = 0; r < R; ++r) {
                const int q = (yl[r] < 0 ? 0 : int(yl[r])) * R + r;
                S[r] = double(cy[r]);
                S_rest[r] = ylT[r] == jm[r] ? 0.0 : double(cy[r]);
                c_jm[r] = ylT[r] == jm[r] ? double(cy[r]) : 0.0;
                LD[r] = double(mul0(cy[r], softmax_gap(xb[q], m[r])));
            }
        } else {
            /* float64: Kahan sums beside the plain ones (kahan_free; the plain sums say whether a
             * total is finite): one coefficient near 1 among 63 small ones lost 28 ulp of the loss */
            constexpr bool KS = sizeof(T) == sizeof(double);
            double kS[R], cS[R], kR[R], cR[R], kL[R], cL[R];
            for (int r = 0; r < R; ++r) {
                S[r] = S_rest[r] = LD[r] = c_jm[r] = 0.0;
                kS[r] = cS[r] = kR[r] = cR[r] = kL[r] = cL[r] = 0.0;
            }
            for (int j = 0; j < C; ++j) {
                for (int r = 0; r < R; ++r) {
                    const T c = cb[j * R + r];
                    const double cr = T(j) == jm[r] ? 0.0 : double(c);
                    const double ld = double(mul0(c, softmax_gap(xb[j * R + r], m[r])));
                    S[r] += double(c);
                    S_rest[r] += cr;
                    c_jm[r] += T(j) == jm[r] ? double(c) : 0.0;
                    LD[r] += ld;
                    if (KS) {
                        kahan_free(kS[r], cS[r], double(c));
                        kahan_free(kR[r], cR[r], cr);
                        kahan_free(kL[r], cL[r], ld);
                    }
                }
            }
            if (KS)
                for (int r = 0; r < R; ++r) {
                    if (S[r] - S[r] == 0.0) S[r] = kS[r] - cS[r];
                    if (S_rest[r] - S_rest[r] == 0.0) S_rest[r] = kR[r] - cR[r];
                    if (LD[r] - LD[r] == 0.0) LD[r] = kL[r] - cL[r];
                }
        }
        for (int r = 0; r < R; ++r) lossb[r] = mul0(wl[r], T(LD[r] + S[r] * double(L[r])));
        if (want_d) {
            T inv_s[R], ST[R];
            for (int r = 0; r < R; ++r) {
                inv_s[r] = T(1.0 / s[r]);
                ST[r] = T(S[r]);
                const T Qjm = T(s_rest[r] / s[r]);
                gjm[r] = mul0(wd[r], ce_grad_at_max<T>(S_rest[r], c_jm[r], s_rest[r], s[r]));
                hjm[r] = mul0(wd[r], ST[r] * inv_s[r] * Qjm);
            }
            /* the same loop twice, taking c_j from the label (sparse) or from the staged row */
            for (int j = 0; j < C; ++j) {
                if (sparse) {
                    for (int r = 0; r < R; ++r) {
                        const T P = eb[j * R + r] * inv_s[r];
                        const bool is_jm = T(j) == jm[r];
                        const T c = T(j) == ylT[r] ? cy[r] : T(0);
                        gb[j * R + r] = is_jm ? gjm[r] : mul0(wd[r], ST[r] * P - c);
                        if (H) hb[j * R + r] = is_jm ? hjm[r] : mul0(wd[r], ST[r] * P * (T(1) - P));
                    }
                } else {
                    for (int r = 0; r < R; ++r) {
                        const T P = eb[j * R + r] * inv_s[r];
                        const bool is_jm = T(j) == jm[r];
                        gb[j * R + r] = is_jm ? gjm[r] : mul0(wd[r], ST[r] * P - cb[j * R + r]);
                        if (H) hb[j * R + r] = is_jm ? hjm[r] : mul0(wd[r], ST[r] * P * (T(1) - P));
                    }
                }
            }
        }
    } else {
        /* focal: as softmax_focal_finish. Every class is first taken as if it were not the
         * maximum, with jm's coefficient zeroed (it then adds nothing), so that no element pays
         * for jm's Q = s_rest / s, a double division; jm's own terms follow, one row per lane, and
         * enter the row sums as focal_row_add puts them. */
        T* __restrict Pb = b.P;
        T* __restrict Qb = b.Q;
        T* __restrict Gb = b.G;
        T* __restrict Kb = b.Kt;
        double* __restrict Kjb = b.K;
        double FL[R], Tt[R], T_rest[R], U_rest[R], inv_s[R];
        T G_jm[R], Kt_jm[R], P_jm[R], Q_jm[R];
        /* where it pays (focal_row_exact), s_rest again in double-double (softmax_rest_dd, row by
         * row across the lanes) and the exps' errors (staged in gb, free until the derivatives);
         * the summary's roundings in any case, for the accuracy of Q^g (see softmax_elem_inv) */
        const bool exact = focal_row_exact(a->gamma);
        double rlo[R], re_s[R], re_inv[R];   /* SoftmaxRowErr by field: lanes of rows */
        for (int r = 0; r < R; ++r) rlo[r] = 0.0;
        if (exact) {
            double rhi[R], ties[R];
            for (int r = 0; r < R; ++r) rhi[r] = ties[r] = 0.0;
            for (int j = 0; j < C; ++j) {
                for (int r = 0; r < R; ++r) {
                    wide_add<T>(rhi[r], rlo[r], softmax_exp_wide(xb[j * R + r], m[r]));
                    ties[r] += xb[j * R + r] == m[r] ? 1.0 : 0.0;
                }
            }
            for (int r = 0; r < R; ++r) {
                const DD t = rest_total(rhi[r], rlo[r], ties[r] - 1.0);   /* every class at m but jm */
                s_rest[r] = t.hi;
                rlo[r] = t.lo;
                s[r] = 1.0 + t.hi;
                L[r] = T(vlog1p(t.hi) + t.lo / s[r]);
            }
        }
        T* __restrict erb = gb;   /* the exps' errors, when not label_only */
        if (!label_only && exact)
            for (int j = 0; j < C; ++j)
                for (int r = 0; r < R; ++r) erb[j * R + r] = softmax_exp_rel(xb[j * R + r], m[r], eb[j * R + r]);
        for (int r = 0; r < R; ++r) {
            inv_s[r] = 1.0 / s[r];
            const SoftmaxRowErr e = softmax_row_err(exact, s_rest[r], rlo[r], s[r], inv_s[r]);
            re_s[r] = e.s; re_inv[r] = e.inv;
        }
        auto row_err = [&](int r) {
            SoftmaxRowErr e;
            e.on = exact; e.lo = rlo[r]; e.s = re_s[r]; e.inv = re_inv[r];
            return e;
        };
        for (int r = 0; r < R; ++r) { FL[r] = 0.0; T_rest[r] = 0.0; U_rest[r] = 0.0; }
        /* the label's and the maximum's entries, staged per row so that the loops below have
         * no indexed loads and vectorise */
        T x_y[R], e_y[R], x_jm[R], e_jm[R], c_jm[R], P_y[R], Q_y[R], G_y[R], Kt_y[R];
        for (int r = 0; r < R; ++r) {
            const int qy = (yl[r] < 0 ? 0 : int(yl[r])) * R + r, qm = int(jm[r]) * R + r;
            x_y[r] = xb[qy]; e_y[r] = eb[qy];
            x_jm[r] = xb[qm]; e_jm[r] = eb[qm];
            c_jm[r] = label_only ? (ylT[r] == jm[r] ? cy[r] : T(0)) : cb[qm];
        }
        if (label_only) {
            /* the label's terms alone are the row sums (softmax_focal_finish's SPARSE form); the
             * general loop adds the same single term to zeros: same bits. A label at jm (added
             * apart, below) or an ignored row (ylT = -1) takes c = 0 here and adds nothing.
             * Written twice, with and without the corrections of Q, and skip as a | of two tests
             * of the label held as a T: with a test of exact inside, or with ||, GCC left the loop
             * scalar (12% of a 10-class float32 focal call, AVX2 on Zen 3; perf). */
            auto label_terms = [&](auto corr) {
                constexpr int CORR = decltype(corr)::value;
                for (int r = 0; r < R; ++r) {
                    const bool skip = (ylT[r] < T(0)) | (ylT[r] == jm[r]);
                    const SoftmaxElem<T> el = softmax_elem_inv<T, CORR>(
                        softmax_gap(x_y[r], m[r]), e_y[r], false, s[r], inv_s[r], s_rest[r], L[r],
                        CORR ? softmax_exp_rel(x_y[r], m[r], e_y[r]) : T(0), row_err(r));
                    const FocalSoftmax<T> f = focal_softmax_elem<T, Pow>(skip ? T(0) : cy[r], el, g, want_d, want_h);
                    FL[r] += double(f.loss);
                    T_rest[r] += double(f.G);
                    if (H) U_rest[r] += skip ? 0.0 : double(f.Kt) / (double(el.Q) * double(el.Q));
                    P_y[r] = el.P; Q_y[r] = el.Q; G_y[r] = f.G; Kt_y[r] = f.Kt;
                }
            };
            if (exact) label_terms(std::integral_constant<int, 1>());
            else label_terms(std::integral_constant<int, 0>());
        } else {
            /* written twice, with and without the corrections of Q (softmax_elem_inv's CORR) */
            auto pass3 = [&](auto corr) {
                for (int j = 0; j < C; ++j) {
                    for (int r = 0; r < R; ++r) {
                        const int q = j * R + r;
                        const bool is_jm = T(j) == jm[r];
                        const T d = softmax_gap(xb[q], m[r]);
                        const SoftmaxElem<T> el = softmax_elem_inv<T, decltype(corr)::value>(
                            d, eb[q], false, s[r], inv_s[r], s_rest[r], L[r], decltype(corr)::value ? erb[q] : T(0),
                            row_err(r));
                        const FocalSoftmax<T> f = focal_softmax_elem<T, Pow>(is_jm ? T(0) : cb[q], el, g, want_d,
                                                                             want_h);
                        FL[r] += double(f.loss);
                        T_rest[r] += double(f.G);
                        if (H) {
                            const double k = double(f.Kt) / (double(el.Q) * double(el.Q));
                            U_rest[r] += is_jm ? 0.0 : k;
                            if (SmallGroup<T>::KEEP_K) Kjb[q] = focal_k(f.Kt, el.Q);   /* the same division */
                        }
                        Pb[q] = el.P; Qb[q] = el.Q; Gb[q] = f.G; Kb[q] = f.Kt;
                    }
                }
            };
            if (exact) pass3(std::integral_constant<int, 1>());
            else pass3(std::integral_constant<int, 0>());
        }
        auto jm_terms = [&](auto corr) {
            for (int r = 0; r < R; ++r) {
                const T d = softmax_gap(x_jm[r], m[r]);
                const SoftmaxElem<T> el = softmax_elem_inv<T, decltype(corr)::value>(d, e_jm[r], true, s[r], inv_s[r],
                                                                                     s_rest[r], L[r], T(0), row_err(r));
                const FocalSoftmax<T> f = focal_softmax_elem<T, Pow>(c_jm[r], el, g, want_d, want_h);
                FL[r] += double(f.loss);
                Tt[r] = T_rest[r] + double(f.G);
                G_jm[r] = f.G; Kt_jm[r] = f.Kt; P_jm[r] = el.P; Q_jm[r] = el.Q;
            }
        };
        if (exact) jm_terms(std::integral_constant<int, 1>());
        else jm_terms(std::integral_constant<int, 0>());
        for (int r = 0; r < R; ++r) lossb[r] = mul0(wl[r], T(FL[r]));
        if (want_d) {
            /* a row's sums and 1 / s_rest by field, lanes of rows, put together where they are
             * read: an array of FocalRowSums (40-byte steps) left the loops below scalar */
            double rsc[R], rinv[R];
            for (int r = 0; r < R; ++r) {
                const RestRecip rr = H ? rest_recip(s_rest[r]) : RestRecip{1.0, 0.0};   /* only the Hessian reads it */
                rsc[r] = rr.sc; rinv[r] = rr.inv;
            }
            auto row_sums = [&](int r) {
                FocalRowSums<T> o;
                o.loss = FL[r]; o.Tt = Tt[r]; o.T_rest = T_rest[r]; o.U_rest = U_rest[r];
                o.G_jm = G_jm[r]; o.Kt_jm = Kt_jm[r];
                return o;
            };
            auto rest_of = [&](int r) { RestRecip o; o.sc = rsc[r]; o.inv = rinv[r]; return o; };
            for (int r = 0; r < R; ++r) {
                SoftmaxElem<T> el; el.P = P_jm[r]; el.Q = Q_jm[r]; el.nlogP = el.Qrel = T(0);
                FocalSoftmax<T> f; f.loss = T(0); f.G = G_jm[r]; f.Kt = Kt_jm[r];
                const FocalDerivs dv = focal_softmax_derivs(el, f, T(1), true, row_sums(r), rest_of(r));
                gjm[r] = mul0(wd[r], T(dv.g));
                hjm[r] = mul0(wd[r], T(dv.h));
            }
            const FocalSoftmax<T> f0 = {T(0), T(0), T(0)};   /* the terms of a class with c = 0 */
            /* written twice: with label_only known at compile time, f = f0 folds (the Hessian's
             * Kt / Q^2 is a double division per element otherwise); with soft or smoothed labels
             * float64 reads it back from pass 3 (KEEP_K; tools/drivers/group_ab shd, ns an element,
             * AVX2: 10.4 -> 9.3 at 10 classes, 8.6 -> 7.4 at 64) */
            auto derivs = [&](auto only_label) {
                for (int j = 0; j < C; ++j) {
                    for (int r = 0; r < R; ++r) {
                        const int q = j * R + r;
                        SoftmaxElem<T> el;
                        FocalSoftmax<T> f = f0;
                        double kj = 0.0;
                        if (decltype(only_label)::value) {
                            el = softmax_elem_inv<T, 0>(T(0), eb[q], false, s[r], inv_s[r], s_rest[r], L[r], T(0),
                                                        row_err(r));
                        } else {
                            el.P = Pb[q]; el.Q = Qb[q]; el.nlogP = el.Qrel = T(0);
                            f.G = Gb[q]; f.Kt = Kb[q];
                            if (H) kj = SmallGroup<T>::KEEP_K ? Kjb[q] : focal_k(f.Kt, el.Q);
                        }
                        const FocalDerivs dv = focal_softmax_derivs_k(el, f, kj, eb[q], false, row_sums(r), rest_of(r));
                        const bool is_jm = T(j) == jm[r];
                        gb[q] = is_jm ? gjm[r] : mul0(wd[r], T(dv.g));
                        if (H) hb[q] = is_jm ? hjm[r] : mul0(wd[r], T(dv.h));
                    }
                }
            };
            if (label_only) derivs(std::true_type());
            else derivs(std::false_type());
            if (label_only) {
                /* the label's own terms over the c = 0 form written above */
                for (int r = 0; r < R; ++r) {
                    if (yl[r] < 0 || ylT[r] == jm[r]) continue;
                    const int q = int(yl[r]) * R + r;
                    SoftmaxElem<T> el; el.P = P_y[r]; el.Q = Q_y[r]; el.nlogP = el.Qrel = T(0);
                    FocalSoftmax<T> f; f.loss = T(0); f.G = G_y[r]; f.Kt = Kt_y[r];
                    const FocalDerivs dv = focal_softmax_derivs(el, f, e_y[r], false, row_sums(r), rest_of(r));
                    gb[q] = mul0(wd[r], T(dv.g));
                    if (H) hb[q] = mul0(wd[r], T(dv.h));
                }
            }
        }
    }

    /* out: derivatives of every row, then row by row (in order, for the sum and the first error)
     * the loss, with the flagged rows redone by the per-row code */
    if (UNIT && n == R) {
        if (want_g) transpose_copy(gb, int64_t(R), int64_t(1), go + oo[0], int64_t(1), int64_t(C), int64_t(C), int64_t(R));
        if (want_h) transpose_copy(hb, int64_t(R), int64_t(1), ho + oo[0], int64_t(1), int64_t(C), int64_t(C), int64_t(R));
    } else if (planar) {
        if (want_g) planar_store<T, R>(gb, go + oo[0], C, inner, n);
        if (want_h) planar_store<T, R>(hb, ho + oo[0], C, inner, n);
    } else {
        if (want_g)
            for (int r = 0; r < n; ++r)
                for (int j = 0; j < C; ++j) go[oo[r] + j * inner] = gb[j * R + r];
        if (want_h)
            for (int r = 0; r < n; ++r)
                for (int j = 0; j < C; ++j) ho[oo[r] + j * inner] = hb[j * R + r];
    }
    /* which rows the per-row code redoes, found without a branch per row: a branch on ignored[r]
     * here, as random as the labels, took 12 ns a row (1e6 x 4 float32 CE with a quarter of the
     * rows ignored, one thread: 28 ms against 16 with none ignored, or with sorted labels) */
    int any_flag = 0;
    for (int r = 0; r < R; ++r) any_flag |= int(flag[r] != T(0));
    for (int r = 0; any_flag && r < n; ++r) {
        if (flag[r] == T(0)) continue;
        const int64_t row = r0 + r;
        T l = T(0);
        T* gr = go ? go + oo[r] : (T*)0;
        T* hr = ho ? ho + oo[r] : (T*)0;
        if (ignored[r]) {   /* (a NaN in an ignored row: its weight 0 keeps the NaN) */
            for (int j = 0; j < C; ++j) {
                if (gr) gr[j * inner] = T(0);
                if (hr) hr[j * inner] = T(0);
            }
        } else {
            softmax_row_from_logits<T, false, Pow>(a, row, x + xo[r], a->labels ? a->labels[row] : -1,
                                                   ysoft ? ysoft + yo[r] : (const T*)0, gr, hr, wl[r], res, &l,
                                                   (const T*)0);
        }
        lossb[r] = l;
    }
    /* the sum in locals, not through res: with the stores to lo (which may alias it, as far as
     * the compiler knows) in between, each row's step waited for the last one's store (9% of a
     * 10-class float64 CE call, AVX-512; perf) */
    if (lo)
        for (int r = 0; r < n; ++r) lo[r0 + r] = lossb[r];
    double sum = res->sum, comp = res->comp;
    add_group_losses<T, R>(sum, comp, lossb, n);
    res->sum = sum;
    res->comp = comp;
}

template <typename T, typename Pow>
static void softmax_small_rows(const SoftmaxArgs* a, int64_t r0, int64_t r1, BlockResult* res) {
    SmallGroup<T> b;
    const bool unit = a->sx_c == 1 && a->inner == 1, hess = a->hess != 0;
    for (int64_t i = r0; i < r1; i += GROUP) {
        const int n = (r1 - i) < GROUP ? int(r1 - i) : GROUP;
        if (unit && hess) softmax_small_group<T, Pow, true, true>(a, i, n, b, res);
        else if (unit) softmax_small_group<T, Pow, true, false>(a, i, n, b, res);
        else if (hess) softmax_small_group<T, Pow, false, true>(a, i, n, b, res);
        else softmax_small_group<T, Pow, false, false>(a, i, n, b, res);
    }
}

/* One row, in place or in a tile: an ignored row gets zeros, the others the row code of their kind. */
template <typename T, typename Pow>
static inline T softmax_one_row(const SoftmaxArgs* a, int64_t r, const T* xr, const T* ys, T* gr, T* hr,
                                BlockResult* res, const T* next) {
    const int64_t C = a->C, inner = a->inner;
    const int64_t y = a->labels ? a->labels[r] : -1;
    T l = T(0);
    if (a->labels && a->has_ignore && y == a->ignore_index) {
        for (int64_t j = 0; j < C; ++j) {
            if (gr) gr[j * inner] = T(0);
            if (hr) hr[j * inner] = T(0);
        }
        return l;
    }
    const T wi = a->sw ? ((const T*)a->sw)[r] : T(1);
    if (a->from_logits && a->sx_c == 1 && inner == 1)   /* contiguous rows: the vectorised path */
        softmax_row_from_logits<T, true, Pow>(a, r, xr, y, ys, gr, hr, wi, res, &l, next);
    else if (a->from_logits)
        softmax_row_from_logits<T, false, Pow>(a, r, xr, y, ys, gr, hr, wi, res, &l, (const T*)0);
    else
        softmax_row_from_probs<T, Pow>(a, r, xr, y, ys, gr, hr, wi, res, &l);
    return l;
}

/* ------------------------------------------------------------------------------------------ */
/* Rows of at most CHUNK classes from probabilities, classes contiguous (an (N, C) array's rows,  */
/* any row stride; soft labels likewise). Taken one at a time (softmax_row_from_probs), a row of */
/* ten classes paid its scan, staging, a vector of padding and a serial lane total for ten       */
/* elements: 65536 x 10 soft-label CE took 2.0 ms (float32) and 2.9 (float64), three times its   */
/* logits. Here PROB_PIECE elements' worth of rows at a time: staged side by side, checked in    */
/* one scan, their coefficients staged, every element computed in one loop (the derivatives     */
/* straight into the output rows, which lie side by side), and each row's loss formed as        */
/* prob_chunk_at forms it (lane k takes classes k, k + NL, ... of the padded chunk, lane_add,    */
/* then lane_total_comp), rows across the vector lanes. The elements are categorical_from_prob's */
/* and the sums take the same steps in the same order: the bits of the per-row path. A piece     */
/* with a bad entry, or a NaN where the label's class alone would be computed, goes through the  */
/* per-row path, which owns those decisions.                                                     */
/* ------------------------------------------------------------------------------------------ */
constexpr int PROB_PIECE = 1024;   /* elements per piece */
constexpr int PROB_RB = 32;        /* rows whose lane sums are formed together */

/* Every element of a piece, n of them: the loop of prob_chunk without the fixed length. */
template <typename T, typename Pow, bool G, bool H>
static XENT_ALWAYS_INLINE void prob_flat(const T* __restrict xb, const T* __restrict cb, const T* __restrict wb,
                                         const T* __restrict db, T g, int n, T* __restrict lb, T* __restrict go,
                                         T* __restrict ho) {
    for (int k = 0; k < n; ++k) {
        const LGH<T> o = categorical_from_prob<T, Pow>(xb[k], cb[k], g, G, H, wb[k], db[k]);
        lb[k] = o.l;
        if (G) go[k] = o.g;
        if (H) ho[k] = o.h;
    }
}

/* The losses of K rows of C classes from their element losses, class-major in lt (class j of row
 * r at lt[j * K + r]): prob_chunk_at's lane sums over a chunk of N entries (the padding +0),
 * then lane_total_comp, PROB_RB rows at a time across the vector lanes. */
template <typename T, int N>
static void prob_rows_total(const T* __restrict lt, int C, int K, T* __restrict out) {
    constexpr int NL = lanes<T>();
    constexpr int RB = PROB_RB;
    static const T zeros[RB] = {};
    for (int q0 = 0; q0 < K; q0 += RB) {
        const int nr = (K - q0) < RB ? K - q0 : RB;
        double acc[NL][RB], cmp[NL][RB];
        /* the first entry of each lane from the lane's zero state (no separate clearing) */
        for (int k = 0; k < NL; ++k) {
            const T* __restrict src = k < C ? lt + int64_t(k) * K + q0 : zeros;
            for (int r = 0; r < nr; ++r) {
                double v = 0.0, c = 0.0;
                lane_add<T>(v, c, double(src[r]));
                acc[k][r] = v;
                cmp[k][r] = c;
            }
        }
        for (int i0 = NL; i0 < N; i0 += NL)
            for (int k = 0; k < NL; ++k) {
                const int j = i0 + k;
                /* float: a lane sum is never -0, so +0 leaves it as it is; double: a Kahan step of
                 * +0 still moves the error into the sum, taken as the row path takes it */
                if (j >= C && sizeof(T) == sizeof(float)) continue;
                const T* __restrict src = j < C ? lt + int64_t(j) * K + q0 : zeros;
                for (int r = 0; r < nr; ++r) lane_add<T>(acc[k][r], cmp[k][r], double(src[r]));
            }
        double col[NL], cc[NL];
        for (int r = 0; r < nr; ++r) {
            for (int k = 0; k < NL; ++k) { col[k] = acc[k][r]; cc[k] = cmp[k][r]; }
            out[q0 + r] = T(lane_total_comp<T, NL>(col, cc));
        }
    }
}

/* Rows p0 .. p0 + K - 1 (K C <= PROB_PIECE) of a block that starts at row r0: row t of the piece
 * at x + t sx (soft labels ysoft + t sy), its outputs at gp + t C and hp + t C (each NULL when not
 * wanted). a says the rest (labels, weights, options; classes contiguous: sx_c == sy_c == 1,
 * inner == 1, as in a tile's SoftmaxArgs). */
template <typename T, typename Pow>
static void softmax_prob_piece(const SoftmaxArgs* a, int64_t r0, int64_t p0, int K, const T* x, int64_t sx,
                               const T* ysoft, int64_t sy, T* gp, T* hp, BlockResult* res) {
    const int C = int(a->C);
    const int n = K * C;
    const T* sw = (const T*)a->sw;
    const T* cwa = (const T*)a->cwa;
    T* lo = (T*)a->loss;
    const T g = T(a->gamma), dscale = T(a->dscale);
    alignas(64) T xs[PROB_PIECE], cb[PROB_PIECE], lb[PROB_PIECE];
    T lossb[PROB_PIECE];
    int64_t yl[PROB_PIECE], yc[PROB_PIECE];
    bool ignored[PROB_PIECE];
    int bad = 0, nan = 0;
    for (int r = 0; r < K; ++r) {
        yl[r] = a->labels ? a->labels[p0 + r] : -1;
        ignored[r] = a->labels && a->has_ignore && yl[r] == a->ignore_index;
        /* the class a row reads and writes: its label, 0 for an ignored row (with a branch, 1e6 x 4
         * float32 probabilities, a quarter of the rows ignored, one thread, took 11.2 ms against
         * 7.2 with the same labels sorted) */
        yc[r] = class_or_zero(yl[r], !ignored[r]);
    }
    /* rows side by side (sx_o == C) are read in place; others staged, a row at a time */
    const T* __restrict xb = xs;
    if (sx == C) xb = x;
    else
        for (int r = 0; r < K; ++r) {
            const T* __restrict src = x + r * sx;
            for (int j = 0; j < C; ++j) xs[r * C + j] = src[j];
        }
    for (int k = 0; k < n; ++k) {
        const T p = xb[k];
        bad |= (p < T(0)) | (p > T(1));
        nan |= p != p;
    }
    if (ysoft) {
        if (sy == C) {
            const T* __restrict src = ysoft;
            for (int k = 0; k < n; ++k) cb[k] = src[k];
        } else
            for (int r = 0; r < K; ++r) {
                const T* __restrict src = ysoft + r * sy;
                for (int j = 0; j < C; ++j) cb[r * C + j] = src[j];
            }
        for (int k = 0; k < n; ++k) bad |= !(cb[k] >= T(0) && cb[k] <= T(1));
    }
    const bool sparse = !ysoft && a->eps == 0.0;
    if (bad || (sparse && nan)) {
        /* the per-row path finds the first bad entry (and skips ignored rows, as it does) */
        for (int r = 0; r < K; ++r) {
            const int64_t row = p0 + r;
            BlockResult* rr = res + (row - r0) / a->res_rows;
            const T* ys = ysoft ? ysoft + r * sy : (const T*)0;
            const T l = softmax_one_row<T, Pow>(a, row, x + r * sx, ys, gp ? gp + r * C : (T*)0,
                                                hp ? hp + r * C : (T*)0, rr, (const T*)0);
            if (lo) lo[row] = l;
            kahan_add(rr, double(l));
        }
        return;
    }
    if (sparse) {
        /* only the label's class has a coefficient: the others get zeros, the label's class is
         * computed alone and its loss is the row's (as in softmax_row_from_probs) */
        T xy[PROB_PIECE], cy[PROB_PIECE], wl[PROB_PIECE], wd[PROB_PIECE], gy[PROB_PIECE], hy[PROB_PIECE];
        for (int r = 0; r < K; ++r) {
            /* an ignored row reads its class 0 and takes c = 0, by a product (the coefficient is
             * finite; a select of class_coef's value was a branch again) */
            const int64_t y = yc[r];
            xy[r] = xb[r * C + y];
            cy[r] = class_coef(a, cwa, y, (const T*)0, y) * T(!ignored[r]);
            wl[r] = sw ? sw[p0 + r] : T(1);
            wd[r] = wl[r] * dscale;
        }
        if (gp && hp) prob_flat<T, Pow, true, true>(xy, cy, wl, wd, g, K, lossb, gy, hy);
        else if (gp) prob_flat<T, Pow, true, false>(xy, cy, wl, wd, g, K, lossb, gy, hy);
        else if (hp) prob_flat<T, Pow, false, true>(xy, cy, wl, wd, g, K, lossb, gy, hy);
        else prob_flat<T, Pow, false, false>(xy, cy, wl, wd, g, K, lossb, gy, hy);
        if (gp) for (int k = 0; k < n; ++k) gp[k] = T(0);
        if (hp) for (int k = 0; k < n; ++k) hp[k] = T(0);
        /* an ignored row (c = 0, and no NaN here: those rows went to the per-row path) has +0 for
         * its loss and derivatives, and writes them over its class 0 */
        for (int r = 0; r < K; ++r) {
            if (gp) gp[r * C + yc[r]] = gy[r];
            if (hp) hp[r * C + yc[r]] = hy[r];
        }
    } else {
        /* coefficients as stage_coefs stages them, ignored rows none */
        if (ysoft) {
            const T eps = T(a->eps), epsC = eps / T(a->C);
            if (eps != T(0)) for (int k = 0; k < n; ++k) cb[k] = cb[k] * (T(1) - eps) + epsC;
            if (cwa)
                for (int r = 0; r < K; ++r)
                    for (int j = 0; j < C; ++j) cb[r * C + j] = mul0(cwa[j], cb[r * C + j]);
        } else {
            /* every entry off, then each row's label on, an ignored row's entries 0, then the class
             * weights: mul0(cw_j, Y'_j) as class_coef forms it. Each step a
             * plain loop: `mul0(cwa[j], yl[r] == j ? on : off)` and `ignored[r] ? 0 : ...` were
             * branches on the labels (1e6 x 4 float32 probabilities, class weights and smoothing,
             * one thread: 26 ms, 19 with the same labels sorted), and a loop over a row's few
             * classes per row took 40% of a 2-class call */
            const LabelCoefs<T> kc = label_coefs<T>(a);
            for (int k = 0; k < n; ++k) cb[k] = kc.off;
            for (int r = 0; r < K; ++r) cb[r * C + yc[r]] = kc.on;
            if (a->has_ignore) {   /* the ignored rows listed without a branch, then zeroed */
                int gone[PROB_PIECE], ng = 0;
                for (int r = 0; r < K; ++r) { gone[ng] = r; ng += int(ignored[r]); }
                for (int q = 0; q < ng; ++q)
                    for (int j = 0; j < C; ++j) cb[gone[q] * C + j] = T(0);
            }
            if (cwa)
                for (int r = 0; r < K; ++r)
                    for (int j = 0; j < C; ++j) cb[r * C + j] = mul0(cwa[j], cb[r * C + j]);
        }
        /* the weights of each element's row (without sample weights, one value for all) */
        alignas(64) T wb[PROB_PIECE], db[PROB_PIECE];
        if (sw)
            for (int r = 0; r < K; ++r) {
                const T wi = sw[p0 + r], ds = wi * dscale;
                for (int j = 0; j < C; ++j) { wb[r * C + j] = wi; db[r * C + j] = ds; }
            }
        else
            for (int k = 0; k < n; ++k) { wb[k] = T(1); db[k] = dscale; }
        if (gp && hp) prob_flat<T, Pow, true, true>(xb, cb, wb, db, g, n, lb, gp, hp);
        else if (gp) prob_flat<T, Pow, true, false>(xb, cb, wb, db, g, n, lb, gp, hp);
        else if (hp) prob_flat<T, Pow, false, true>(xb, cb, wb, db, g, n, lb, gp, hp);
        else prob_flat<T, Pow, false, false>(xb, cb, wb, db, g, n, lb, gp, hp);
        /* the row sums read the losses class-major (xs is free now) */
        transpose_copy(lb, int64_t(C), int64_t(1), xs, int64_t(1), int64_t(K), int64_t(K), int64_t(C));
        switch (prob_chunk_len<T>(C)) {
        case 8: prob_rows_total<T, 8>(xs, C, K, lossb); break;
        case 16: prob_rows_total<T, 16>(xs, C, K, lossb); break;
        case 32: prob_rows_total<T, 32>(xs, C, K, lossb); break;
        default: prob_rows_total<T, CHUNK>(xs, C, K, lossb); break;
        }
        /* ignored rows have c = 0 throughout, which gives +0 but for a NaN probability: only then
         * are they zeroed row by row */
        for (int r = 0; nan && r < K; ++r) {
            if (!ignored[r]) continue;
            lossb[r] = T(0);
            if (gp) for (int j = 0; j < C; ++j) gp[r * C + j] = T(0);
            if (hp) for (int j = 0; j < C; ++j) hp[r * C + j] = T(0);
        }
    }
    if (lo) for (int r = 0; r < K; ++r) lo[p0 + r] = lossb[r];
    /* the sum in locals where the piece's rows share one BlockResult (always, outside tiles): through
     * res, each step waited for the last one's store (as in softmax_small_group) */
    BlockResult* rr = res + (p0 - r0) / a->res_rows;
    if (res + (p0 + K - 1 - r0) / a->res_rows == rr) {
        double sum = rr->sum, comp = rr->comp;
        for (int r = 0; r < K; ++r) kahan_step(sum, comp, double(lossb[r]));
        rr->sum = sum;
        rr->comp = comp;
    } else
        for (int r = 0; r < K; ++r) kahan_add(res + (p0 + r - r0) / a->res_rows, double(lossb[r]));
}

template <typename T, typename Pow>
static void softmax_prob_rows(const SoftmaxArgs* a, int64_t r0, int64_t r1, BlockResult* res) {
    const int64_t K = PROB_PIECE / a->C, C = a->C;
    const T* x = (const T*)a->x;
    const T* ysoft = (const T*)a->ysoft;
    T* go = (T*)a->grad; T* ho = (T*)a->hess;
    for (int64_t p0 = r0; p0 < r1; p0 += K)
        softmax_prob_piece<T, Pow>(a, r0, p0, int((r1 - p0) < K ? r1 - p0 : K), x + p0 * a->sx_o, a->sx_o,
                                   ysoft ? ysoft + p0 * a->sy_o : (const T*)0, a->sy_o, go ? go + p0 * C : (T*)0,
                                   ho ? ho + p0 * C : (T*)0, res);
}

/* Rows whose classes lie apart in memory: classes along an axis other than the last ((N, C, H, W)
 * with axis 1, (C, N) with axis 0), a Fortran-order (N, C) array, soft labels in such a layout.
 * Read in place, each class of a row is a cache line of its own, and the row code walks a row two
 * to four times: 4x150x256x256 float32 with axis 1 took 143 ms for the loss from logits where the
 * same values with the classes last took 28, 4096x32000 Fortran order 518 ms against 26. Here
 * tile_rows neighbouring rows are moved at a time into a contiguous tile (one transpose_copy: class j
 * of the tile's rows is one run of memory in these layouts), computed by the contiguous row code,
 * and their derivatives moved back the same way when the output rows lie apart too (inner > 1).
 * The contiguous code, so the bits of the contiguous call. */
constexpr int64_t TILE_BYTES = int64_t(8) << 20;   /* the tile's scratch at most (per thread) */
constexpr int64_t TILE_MAX = 64;                   /* rows: 256 bytes of float32 per class, 512 of float64 */

static inline int64_t softmax_tile_arrays(const SoftmaxArgs* a) {
    return 1 + (a->ysoft != 0) + (a->inner > 1 ? (a->grad != 0) + (a->hess != 0) : 0);
}

/* Elements of scratch one thread's tiles take (the caller allocates them once a call per thread:
 * a malloc and free a block of rows cost 4096x32000 float32 in Fortran order 45 ms in 160, the
 * pages of each new allocation faulted in again) */
static inline int64_t softmax_scratch_elems(const SoftmaxArgs* a) {
    return softmax_tile_arrays(a) * a->tile_rows * a->C;
}

/* Rows per tile for this call (capped so the scratch stays within TILE_BYTES), or 0 where rows are
 * read in place: contiguous ones, and logit rows of the group path, which gathers its own. */
static inline int64_t softmax_tile_rows(const SoftmaxArgs* a, int64_t elem_size) {
    if (a->from_logits && a->C <= (elem_size == 4 ? small_c<float>() : small_c<double>())) return 0;
    const bool apart = !(a->sx_c == 1 && a->inner == 1) || (a->ysoft && a->sy_c != 1);
    if (!apart) return 0;
    const int64_t t = TILE_BYTES / (softmax_tile_arrays(a) * (a->C > 0 ? a->C : 1) * elem_size);
    return t < 1 ? 1 : (t > TILE_MAX ? TILE_MAX : t);
}

template <typename T, typename Pow>
static void softmax_tiled_rows(const SoftmaxArgs* a, int64_t r0, int64_t r1, T* scratch, BlockResult* res) {
    const int64_t C = a->C, inner = a->inner, TR = a->tile_rows;
    const T* x = (const T*)a->x;
    const T* ysoft = (const T*)a->ysoft;
    T* lo = (T*)a->loss; T* go = (T*)a->grad; T* ho = (T*)a->hess;
    T* p = scratch;
    T* xs = p; p += TR * C;
    T* ys = ysoft ? p : (T*)0; if (ysoft) p += TR * C;
    T* gs = (inner > 1 && go) ? p : (T*)0; if (gs) p += TR * C;
    T* hs = (inner > 1 && ho) ? p : (T*)0;
    SoftmaxArgs at = *a;   /* the tile's rows: contiguous, and so are their outputs */
    at.sx_c = at.sy_c = 1;
    at.inner = 1;
    for (int64_t t0 = r0; t0 < r1;) {
        const int64_t o = t0 / inner, k = t0 % inner;
        int64_t n = (r1 - t0) < TR ? r1 - t0 : TR;
        if (inner > 1 && n > inner - k) n = inner - k;   /* one outer index: rows equally spaced */
        /* neighbouring rows lie sx_i apart (inner > 1) or sx_o (inner == 1, rows of an (N, C) array) */
        const int64_t sx = inner > 1 ? a->sx_i : a->sx_o, sy = inner > 1 ? a->sy_i : a->sy_o;
        transpose_copy(x + o * a->sx_o + k * a->sx_i, a->sx_c, sx, xs, int64_t(1), C, C, n);
        if (ys) transpose_copy(ysoft + o * a->sy_o + k * a->sy_i, a->sy_c, sy, ys, int64_t(1), C, C, n);
        if (a->prob_pieces && !a->from_logits && C <= CHUNK) {
            /* few classes from probabilities: the tile's rows as pieces (softmax_prob_piece); output
             * row r is contiguous at r * C when inner == 1 */
            const int64_t K = PROB_PIECE / C;
            for (int64_t q = 0; q < n; q += K)
                softmax_prob_piece<T, Pow>(&at, r0, t0 + q, int((n - q) < K ? n - q : K), xs + q * C, C,
                                           ys ? ys + q * C : (const T*)0, C,
                                           go ? (gs ? gs + q * C : go + (t0 + q) * C) : (T*)0,
                                           ho ? (hs ? hs + q * C : ho + (t0 + q) * C) : (T*)0, res);
        } else {
            for (int64_t t = 0; t < n; ++t) {
                const int64_t r = t0 + t;
                BlockResult* rr = res + (r - r0) / a->res_rows;
                /* inner == 1: output row r is contiguous at r * C */
                T* gr = go ? (gs ? gs + t * C : go + r * C) : (T*)0;
                T* hr = ho ? (hs ? hs + t * C : ho + r * C) : (T*)0;
                const T l = softmax_one_row<T, Pow>(&at, r, xs + t * C, ys ? ys + t * C : (const T*)0, gr, hr, rr,
                                                    (const T*)0);
                if (lo) lo[r] = l;
                kahan_add(rr, double(l));
            }
        }
        if (gs) transpose_copy(gs, C, int64_t(1), go + o * C * inner + k, int64_t(1), inner, n, C);
        if (hs) transpose_copy(hs, C, int64_t(1), ho + o * C * inner + k, int64_t(1), inner, n, C);
        t0 += n;
    }
}

template <typename T, typename Pow>
static void softmax_with_pow(const void* vargs, int64_t r0, int64_t r1, BlockResult* res) {
    const SoftmaxArgs* a = (const SoftmaxArgs*)vargs;
    const int64_t C = a->C, inner = a->inner;
    const T* x = (const T*)a->x;
    const T* ysoft = (const T*)a->ysoft;
    T* lo = (T*)a->loss; T* go = (T*)a->grad; T* ho = (T*)a->hess;
    if (a->from_logits && C <= small_c<T>()) { softmax_small_rows<T, Pow>(a, r0, r1, res); return; }
    if (a->prob_pieces && !a->from_logits && C >= 1 && C <= CHUNK && a->sx_c == 1 && inner == 1 && (!ysoft || a->sy_c == 1)) {
        softmax_prob_rows<T, Pow>(a, r0, r1, res);
        return;
    }
    if (a->tile_rows > 0 && a->scratch) {
        softmax_tiled_rows<T, Pow>(a, r0, r1, (T*)a->scratch + int64_t(thread_num()) * softmax_scratch_elems(a), res);
        return;
    }
    /* contiguous rows, or no scratch to be had for the tiles (the same bits) */
    for (int64_t r = r0; r < r1; ++r) {
        BlockResult* rr = res + (r - r0) / a->res_rows;
        const int64_t o = r / inner, k = r % inner;
        const T* xr = x + o * a->sx_o + k * a->sx_i;
        const T* ys = ysoft ? ysoft + o * a->sy_o + k * a->sy_i : (const T*)0;
        T* gr = go ? go + o * C * inner + k : (T*)0;
        T* hr = ho ? ho + o * C * inner + k : (T*)0;
        /* the next row where rows are contiguous, for softmax_summary to read ahead: also past the
         * block (a block of 32000 classes is one row), the row that this thread takes next under
         * the static schedule unless the block is its last */
        const T* next = (inner == 1 && r + 1 < a->rows) ? x + (r + 1) * a->sx_o : (const T*)0;
        const T l = softmax_one_row<T, Pow>(a, r, xr, ys, gr, hr, rr, next);
        if (lo) lo[r] = l;
        kahan_add(rr, double(l));
    }
}

/* Whether the integer labels of rows [r0, r1) are all in [0, C) or ignore_index; if not, the first
 * that is neither is reported in its row's result. The labels reach the softmax kernels unchecked
 * from logits when nothing else needs the weight pass (the API's LABELS_CHECKED_IN_KERNEL: no
 * sample or class weights, no ignore_index, where that pass only checked them and counted rows);
 * a block checks its own before it reads any through them, in a loop that vectorises. */
static inline bool softmax_labels_ok(const SoftmaxArgs* a, int64_t r0, int64_t r1, BlockResult* res) {
    const int64_t* lab = a->labels;
    const LabelRule rule(a->C, a->ignore_index, a->has_ignore);   /* the weight pass's rule */
    int64_t bad = 0;
    for (int64_t r = r0; r < r1; ++r)
        bad |= int64_t(rule.bad(lab[r]));
    if (!bad) return true;
    for (int64_t r = r0; r < r1; ++r)
        if (rule.bad(lab[r])) {
            set_error(res + (r - r0) / a->res_rows, ERR_LABEL_RANGE, r, lab[r]);
            break;
        }
    return false;
}

/* A block of rows; one with a label outside [0, C) computes nothing (its outputs are unspecified:
 * the call fails with the first such label). */
template <typename T>
static void softmax_block(const void* vargs, int64_t r0, int64_t r1, BlockResult* res) {
    const SoftmaxArgs* a = (const SoftmaxArgs*)vargs;
    if (a->labels && !softmax_labels_ok(a, r0, r1, res)) return;
    XENT_POW_DISPATCH(softmax_with_pow, T, a->gamma, vargs, r0, r1, res);
}

/* ------------------------------------------------------------------------------------------ */
/* float16 / bfloat16 <-> float32 for the CPU path's 16-bit arrays (xentc/_half_cpu.py, which   */
/* computes in float32 a chunk at a time): loads exact, stores rounded to nearest (ties to      */
/* even). Integer operations and one float operation, no branches that leave the loop, so each  */
/* variant vectorises them (float16 in the AVX2 variant: F16C, halves8_to_float and             */
/* float8_to_halves); NumPy's own cast of float16 subnormals (mean gradients are small) costs    */
/* tens of nanoseconds an element.                                                              */
/* ------------------------------------------------------------------------------------------ */
struct Convert16Args {
    const void* src;     /* contiguous: float32 (store) or 16-bit (load) */
    void* dst;           /* contiguous: 16-bit (store) or float32 (load) */
    int bfloat;          /* 1: bfloat16, 0: float16 */
};

/* float16: |f| >= 65520 (or inf) -> inf, NaN -> the quiet NaN 0x7e00 (sign kept), as NumPy gives
 * for the NaN the kernels make; below 2^-14 the result is subnormal, and adding 0.5 (exponent -1,
 * whose ulp is 2^-24, float16's smallest subnormal) rounds |f| to a multiple of 2^-24 in the FPU's
 * round-to-nearest-even, leaving that multiple in the low mantissa bits; otherwise the exponent is
 * rebiased and the 13 dropped bits rounded to even by adding 0xfff plus the kept last bit. */
static inline uint16_t to_float16(float f) {
    const uint32_t b = bits_of(f), sign = (b >> 16) & 0x8000u, a = b & 0x7fffffffu;
    const uint32_t normal = (a - (112u << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
    const uint32_t sub = bits_of(float_of(a) + 0.5f) - bits_of(0.5f);
    const uint32_t mag = a > 0x7f800000u ? 0x7e00u : a >= 0x477ff000u ? 0x7c00u : a < (113u << 23) ? sub : normal;
    return uint16_t(sign | mag);
}

/* bfloat16: bfloat16_bits of _xent_math.h, shared with the CUDA kernels' bfloat16 storage. */
static inline uint16_t to_bfloat16(float f) { return bfloat16_bits(bits_of(f)); }

/* One conversion loop for both directions: TO_F16 / TO_BF16 turn a From into a To. */
template <typename From, typename To, To (*TO_F16)(From), To (*TO_BF16)(From)>
static void convert16_block(const void* vargs, int64_t i0, int64_t i1, BlockResult*) {
    const Convert16Args* a = (const Convert16Args*)vargs;
    const From* __restrict src = (const From*)a->src;
    To* __restrict dst = (To*)a->dst;
    if (a->bfloat) {
        for (int64_t i = i0; i < i1; ++i) dst[i] = TO_BF16(src[i]);
        return;
    }
    int64_t i = i0;
#if defined(__F16C__)
    for (; i + 8 <= i1; i += 8) {
        if constexpr (std::is_same<From, float>::value) float8_to_halves(src + i, dst + i);
        else halves8_to_float(src + i, dst + i);
    }
#endif
    for (; i < i1; ++i) dst[i] = TO_F16(src[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* float64 -> float32 with the check the narrowing needs (labels or weights beside float32       */
/* y_pred): each value converted, and the first outside [0, top] (NaN included) reported as      */
/* given, before rounding could hide it (1 + 1e-10 rounds to 1, -1e-50 to -0, 1e300 to inf). One  */
/* pass on the kernels' threads: NumPy's min, max and cast took three.                          */
/* ------------------------------------------------------------------------------------------ */
struct NarrowArgs {
    const double* src;   /* contiguous */
    float* dst;          /* contiguous, as many elements */
    double top;          /* the largest value allowed */
};

static void narrow_block(const void* vargs, int64_t i0, int64_t i1, BlockResult* res) {
    const NarrowArgs* a = (const NarrowArgs*)vargs;
    const double* __restrict src = a->src;
    float* __restrict dst = a->dst;
    const double top = a->top;
    int bad = 0;
    for (int64_t i = i0; i < i1; ++i) {
        const double v = src[i];
        dst[i] = float(v);
        bad |= !(v >= 0.0) | (v > top);
    }
    if (bad)
        for (int64_t i = i0; i < i1; ++i)
            if (!(src[i] >= 0.0 && src[i] <= top)) { set_error(res, ERR_WEIGHT, i, 0); return; }
}

/* Non-template entry points for Cython. */
typedef void (*block_fn)(const void*, int64_t, int64_t, BlockResult*);
static const block_fn weight_block_f = weight_block<float>;
static const block_fn weight_block_d = weight_block<double>;
static const block_fn binary_block_f = binary_block<float>;
static const block_fn binary_block_d = binary_block<double>;
static const block_fn softmax_block_f = softmax_block<float>;
static const block_fn softmax_block_d = softmax_block<double>;
static const block_fn store16_block = convert16_block<float, uint16_t, to_float16, to_bfloat16>;
static const block_fn load16_block = convert16_block<uint16_t, float, from_float16, from_bfloat16>;
static const block_fn narrow_block_fd = narrow_block;

}  // namespace xent

#endif  /* XENTC_XENT_ROWS_H */
