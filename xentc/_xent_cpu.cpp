/* One instruction-set variant of the CPU kernels. meson.build compiles this file once for the
 * baseline of the target (SSE2 on x86-64, NEON on aarch64) and, on x86-64, once more for AVX2
 * (with FMA and F16C) and for AVX-512; _xent_dispatch.h picks the table at run time. All variants
 * run the same IEEE operations in the same order (no FMA contraction; an explicit fused
 * multiply-add only where its result is exact, as in prod_err, whose baseline form computes the
 * same exact value without one), so they give the same bits; the wider variants only run more
 * lanes at once, and the ones with FMA take one instruction for a product's error. */
#include "_xent_rows.h"

#ifndef XENT_VARIANT
#error "XENT_VARIANT must name the instruction-set variant (base, avx2 or avx512)"
#endif
#define XENT_CAT2(a, b) a##b
#define XENT_CAT(a, b) XENT_CAT2(a, b)

extern "C" {
extern const xent::block_fn XENT_CAT(xent_table_, XENT_VARIANT)[9];
const xent::block_fn XENT_CAT(xent_table_, XENT_VARIANT)[9] = {
    xent::weight_block_f, xent::weight_block_d,
    xent::binary_block_f, xent::binary_block_d,
    xent::softmax_block_f, xent::softmax_block_d,
    xent::store16_block, xent::load16_block,
    xent::narrow_block_fd,
};
}
