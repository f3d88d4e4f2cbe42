/* Run-time choice of the CPU kernel variant (the one place that decides it). Wheels are built for
 * the baseline instruction set; the AVX2 variant is used where the processor has it, unless the
 * environment variable XENTC_ISA=baseline asks for the baseline one (used by the tests to check
 * that both give the same bits). */
#ifndef XENTC_XENT_DISPATCH_H
#define XENTC_XENT_DISPATCH_H

#include <stdlib.h>
#include <string.h>
#include "_xent_rows.h"

extern "C" const xent::block_fn xent_table_base[6];
#if defined(XENT_HAVE_AVX2)
extern "C" const xent::block_fn xent_table_avx2[6];
#endif

namespace xent {

enum { K_WEIGHT = 0, K_BINARY = 2, K_SOFTMAX = 4 };

static inline int use_avx2() {
#if defined(XENT_HAVE_AVX2)
    const char* force = getenv("XENTC_ISA");
    if (force && strcmp(force, "baseline") == 0) return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

static inline const block_fn* kernel_table() {
#if defined(XENT_HAVE_AVX2)
    if (use_avx2()) return xent_table_avx2;
#endif
    return xent_table_base;
}

static inline const char* kernel_isa() { return use_avx2() ? "avx2" : "baseline"; }

}  // namespace xent

#endif  /* XENTC_XENT_DISPATCH_H */
