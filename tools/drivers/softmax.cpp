/* Single-thread timing of the softmax kernels, in ns per element, without Python in the way
 * (best of REPS calls; integer labels, gradient only). A development tool: not built by meson,
 * not run by CI.
 *
 *   g++ -O3 -std=c++17 -fno-math-errno -fno-trapping-math -ffp-contract=off \
 *       -mavx512f -mavx512dq -mavx512vl -mavx512bw -I xentc tools/drivers/softmax.cpp -o /tmp/softmax
 *   /tmp/softmax [FILTER] [REPS]      e.g. /tmp/softmax fo10 9   (cases: ce10, fo10, ce32k, fo32k; _f / _d)
 *
 * For instruction counts, build with -mavx2 -mf16c -mfma -g (the AVX2 variant's flags) and run under valgrind --tool=callgrind.
 */
#include "_xent_rows.h"
#include <chrono>
#include <vector>
#include <random>
#include <cstdio>
#include <cstring>
#include <string>
using namespace xent;
double sink = 0;
template <typename T, typename Pow>
double run(int n, int C, double gamma, int reps, bool G = true) {
    std::vector<T> x((size_t)n * C), g((size_t)n * C);
    std::vector<int64_t> lab(n);
    std::mt19937 rng(1); std::normal_distribution<double> nd;
    for (auto& v : x) v = T(2 * nd(rng));
    for (int i = 0; i < n; ++i) lab[i] = rng() % C;
    SoftmaxArgs a; memset(&a, 0, sizeof a);
    a.x = x.data(); a.sx_o = C; a.sx_c = 1; a.sx_i = 0; a.C = C; a.inner = 1; a.labels = lab.data();
    a.gamma = gamma; a.dscale = 1.0 / n; a.from_logits = 1; a.grad = G ? g.data() : nullptr;
    a.res_rows = n;   /* one BlockResult for the whole call */
    a.prob_pieces = 1;   /* as the package (from logits it is not read) */
    double best = 1e9;
    for (int r = 0; r < reps; ++r) {
        BlockResult res; memset(&res, 0, sizeof res);
        auto t0 = std::chrono::steady_clock::now();
        softmax_with_pow<T, Pow>(&a, 0, n, &res);
        auto t1 = std::chrono::steady_clock::now();
        sink += res.sum + (G ? g[r] : 0);
        double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / ((double)n * C);
        if (ns < best) best = ns;
    }
    return best;
}
int main(int argc, char** argv) {
    int reps = argc > 2 ? atoi(argv[2]) : 7; std::string f = argc > 1 ? argv[1] : "";
    auto want = [&](const char* k) { return f.empty() || f.find(k) != std::string::npos || std::string(k).find(f) != std::string::npos; };
    if (want("ce10_f")) printf("ce10_f %.3f\n", run<float, PowNone>(65536, 10, 0, reps));
    if (want("ce10_d")) printf("ce10_d %.3f\n", run<double, PowNone>(65536, 10, 0, reps));
    if (want("fo10_f")) printf("fo10_f %.3f\n", run<float, PowSquare>(65536, 10, 2, reps));
    if (want("fo10_d")) printf("fo10_d %.3f\n", run<double, PowSquare>(65536, 10, 2, reps));
    if (want("ce32k_f")) printf("ce32k_f %.3f\n", run<float, PowNone>(256, 32000, 0, reps));
    if (want("ce32k_d")) printf("ce32k_d %.3f\n", run<double, PowNone>(256, 32000, 0, reps));
    if (want("fo32k_f")) printf("fo32k_f %.3f\n", run<float, PowSquare>(256, 32000, 2, reps));
    if (want("fo32k_d")) printf("fo32k_d %.3f\n", run<double, PowSquare>(256, 32000, 2, reps));
    return sink == 12345.0;
}
