/* Run-time choice of the CPU kernel variant (the one place that decides it). Wheels are built for
 * the baseline instruction set; on x86-64 the AVX-512 or AVX2 variant (AVX2 with FMA and F16C) is
 * used where the processor (and the operating system, which must save the wider registers) supports
 * it. The environment
 * variable XENTC_ISA=baseline|avx2|avx512 asks for one variant (the tests use it to check that all
 * give the same bits); a variant the machine cannot run is never chosen. */
#ifndef XENTC_XENT_DISPATCH_H
#define XENTC_XENT_DISPATCH_H

#include <stdlib.h>
#include <string.h>
#include "_xent_rows.h"

extern "C" const xent::block_fn xent_table_base[9];
#if defined(XENT_HAVE_AVX2)
extern "C" const xent::block_fn xent_table_avx2[9];
#endif
#if defined(XENT_HAVE_AVX512)
extern "C" const xent::block_fn xent_table_avx512[9];
#endif

namespace xent {

enum { K_WEIGHT = 0, K_BINARY = 2, K_SOFTMAX = 4, K_STORE16 = 6, K_LOAD16 = 7, K_NARROW = 8 };

struct Variant { const char* name; const block_fn* table; int usable; };

/* Best first. __builtin_cpu_supports checks the OS-enabled register state as well as CPUID. */
static inline int variants(Variant* out) {
    int n = 0;
#if defined(XENT_HAVE_AVX512) || defined(XENT_HAVE_AVX2)
    __builtin_cpu_init();
#endif
#if defined(XENT_HAVE_AVX512)
    out[n++] = Variant{"avx512", xent_table_avx512,
                       __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")};
#endif
#if defined(XENT_HAVE_AVX2)
    out[n++] = Variant{"avx2", xent_table_avx2,
                       __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") &&
                       __builtin_cpu_supports("fma")};
#endif
    out[n++] = Variant{"baseline", xent_table_base, 1};
    return n;
}

static inline const Variant chosen_variant() {
    Variant v[3];
    const int n = variants(v);
    const char* force = getenv("XENTC_ISA");
    if (force)
        for (int i = 0; i < n; ++i)
            if (v[i].usable && strcmp(force, v[i].name) == 0) return v[i];
    for (int i = 0; i < n; ++i)
        if (v[i].usable) return v[i];
    return v[n - 1];
}

static inline const block_fn* kernel_table() { return chosen_variant().table; }
static inline const char* kernel_isa() { return chosen_variant().name; }

}  // namespace xent

#endif  /* XENTC_XENT_DISPATCH_H */
