/* Single-thread timing of the binary kernels, in ns per element, without Python in the way (best
 * of REPS calls over 2^20 elements, thread CPU time, labels 0/1, no weights). A development tool: not
 * built by meson, not run by CI.
 *
 *   g++ -O3 -std=c++17 -fno-math-errno -fno-trapping-math -ffp-contract=off -mavx2 -mf16c -mfma \
 *       -I xentc tools/drivers/binary.cpp -o /tmp/binary
 *   /tmp/binary [REPS] [EPS] [soft|hard] [POS_WEIGHT]
 *
 * (-mavx512f -mavx512dq -mavx512vl -mavx512bw for the AVX-512 variant, nothing for the baseline.)
 * EPS (default 0) is the label smoothing; `soft` draws soft labels, uniform in [0, 1]; POS_WEIGHT
 * (default: none) a scalar positive-side weight (pos_weight; for focal, alpha's place). Each line is one loss (CE, focal gamma 2), from logits or probabilities, and one dtype; the columns are the outputs asked for:
 * the loss alone (its mean), loss + gradient, loss + gradient + Hessian. For instruction counts,
 * build with -g and run under valgrind --tool=callgrind (which does not know AVX-512).
 */
#include "_xent_rows.h"
#include <vector>
#include <random>
#include <cstdio>
#include <cstring>
#include <time.h>
using namespace xent;
/* CPU time of the calling thread: time the virtual machine gives to others does not count */
static double thread_ns() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}
double sink = 0;
static bool soft_labels = false;
static double pos_weight = 0;   /* 0: none */
template <typename T>
double run(double gamma, bool logits, bool G, bool H, int reps, int n, double eps) {
    std::vector<T> y(n), x(n), g(n), h(n);
    std::mt19937 rng(1); std::normal_distribution<double> nd; std::uniform_real_distribution<double> u;
    for (int i = 0; i < n; ++i) {
        const double z = 3 * nd(rng);
        x[i] = T(logits ? z : 1 / (1 + exp(-z)));
        y[i] = soft_labels ? T(u(rng)) : u(rng) < 0.3 ? 1 : 0;
    }
    BinaryArgs a; memset(&a, 0, sizeof a);
    a.y = y.data(); a.sy = 1; a.ykind = YK_SAME; a.x = x.data(); a.sx = 1; a.w0 = 1; a.eps = eps;
    const T w1 = T(pos_weight);
    if (pos_weight != 0) { a.w1 = &w1; a.nw1 = 1; }
    a.gamma = gamma; a.dscale = 1.0 / n; a.from_logits = logits;
    a.grad = G ? g.data() : nullptr; a.hess = H ? h.data() : nullptr;
    double best = 1e9;
    for (int r = 0; r < reps; ++r) {
        BlockResult res; memset(&res, 0, sizeof res);
        const double t0 = thread_ns();
        binary_block<T>(&a, 0, n, &res);
        const double t1 = thread_ns();
        sink += res.sum + (G ? g[r] : 0) + (H ? h[r] : 0);
        const double ns = (t1 - t0) / n;
        if (ns < best) best = ns;
    }
    return best;
}
template <typename T> void line(const char* name, double gamma, bool logits, int reps, int n, double eps) {
    printf("%-8s %-6s %-7s loss %5.2f  +grad %5.2f  +hess %5.2f\n", name, logits ? "logits" : "probs",
           sizeof(T) == 4 ? "float32" : "float64", run<T>(gamma, logits, false, false, reps, n, eps),
           run<T>(gamma, logits, true, false, reps, n, eps), run<T>(gamma, logits, true, true, reps, n, eps));
}
int main(int argc, char** argv) {
    const int n = 1 << 20, reps = argc > 1 ? atoi(argv[1]) : 15;
    const double eps = argc > 2 ? atof(argv[2]) : 0.0;
    soft_labels = argc > 3 && !strcmp(argv[3], "soft");
    pos_weight = argc > 4 ? atof(argv[4]) : 0.0;
    for (int logits = 1; logits >= 0; --logits) {
        line<float>("CE", 0, logits, reps, n, eps);
        line<double>("CE", 0, logits, reps, n, eps);
        line<float>("focal 2", 2, logits, reps, n, eps);
        line<double>("focal 2", 2, logits, reps, n, eps);
    }
    return sink == 12345.0;
}
