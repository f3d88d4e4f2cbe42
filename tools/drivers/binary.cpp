/* Single-thread timing of the binary kernels, in ns per element, without Python in the way (best
 * of REPS calls over 2^20 elements). A development tool: not built by meson, not run by CI.
 *
 *   g++ -O3 -std=c++17 -fno-math-errno -fno-trapping-math -ffp-contract=off \
 *       -mavx512f -mavx512dq -mavx512vl -mavx512bw -I xentc tools/drivers/binary.cpp -o /tmp/binary
 *   /tmp/binary [REPS]
 *
 * Drop the -mavx512* flags (or use -mavx2 -mf16c) for the other variants. For instruction counts, build
 * with -mavx2 -mf16c -g (valgrind does not know AVX-512) and run under valgrind --tool=callgrind.
 */
#include "_xent_rows.h"
#include <chrono>
#include <vector>
#include <random>
#include <cstdio>
#include <cstring>
using namespace xent;
double sink = 0;
template <typename T, bool G, typename Pow>
double run(double gamma, int reps, int n, bool sw = false) {
    std::vector<T> y(n), x(n), g(n), w(n, T(1));
    std::mt19937 rng(1); std::normal_distribution<double> nd; std::uniform_real_distribution<double> u;
    for (int i = 0; i < n; ++i) { x[i] = T(3 * nd(rng)); y[i] = u(rng) < 0.3 ? 1 : 0; }
    BinaryArgs a; memset(&a, 0, sizeof a);
    a.y = y.data(); a.sy = 1; a.x = x.data(); a.sx = 1; a.w0 = 1; a.eps = 0; a.gamma = gamma; a.dscale = 1.0 / n;
    a.from_logits = 1; a.grad = G ? g.data() : nullptr; a.sw = sw ? w.data() : nullptr;
    double best = 1e9;
    for (int r = 0; r < reps; ++r) {
        BlockResult res; memset(&res, 0, sizeof res);
        auto t0 = std::chrono::steady_clock::now();
        binary_logit_block<T, G, false, Pow>(&a, 0, n, &res);
        auto t1 = std::chrono::steady_clock::now();
        sink += res.sum + (G ? g[r] : 0);
        double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / n;
        if (ns < best) best = ns;
    }
    return best;
}
int main(int argc, char** argv) {
    int n = 1 << 20, reps = argc > 1 ? atoi(argv[1]) : 7;
    printf("bce: f %.2f g_f %.2f g_d %.2f sw_g_f %.2f | bfoc2: f %.2f g_f %.2f g_d %.2f sw_g_f %.2f | int3 g_f %.2f | 2.5 g_f %.2f\n",
           run<float, false, PowNone>(0, reps, n), run<float, true, PowNone>(0, reps, n), run<double, true, PowNone>(0, reps, n),
           run<float, true, PowNone>(0, reps, n, true),
           run<float, false, PowSquare>(2, reps, n), run<float, true, PowSquare>(2, reps, n),
           run<double, true, PowSquare>(2, reps, n), run<float, true, PowSquare>(2, reps, n, true),
           run<float, true, PowInt>(3, reps, n), run<float, true, PowViaDouble>(2.5, reps, n));
    return sink == 12345.0;
}
