/* Two versions of the kernel headers in one process: the softmax kernel as the module calls it
 * (softmax_with_pow: the few-class group kernel up to small_c classes, the row path above), of
 * version A and of version B, on 655360 logits, called in turns, each call timed by the thread's
 * CPU clock; prints the best ns per element of each and whether B's loss total, gradient and
 * Hessian have A's bits. On a shared machine whose speed drifts by tens of percent from one minute
 * to the next, turns within one process compare what separate runs cannot. A development tool:
 * not built by meson, not run by CI.
 *
 *   bash tools/drivers/group_ab.sh OLD_XENTC_DIR NEW_XENTC_DIR     (renames, builds, runs)
 *   /tmp/group_ab [C] [ROUNDS] [REPS] [CASES] [ELEMENTS]            e.g. /tmp/group_ab 10 12 20 "hf hd"
 *
 * CASES picks among lf and ld (CE loss alone, float32 and float64), flf and fld (focal gamma 2 loss
 * alone), cf (CE gradient), chf (CE gradient + Hessian),
 * ff (focal gamma 2 gradient), hf (focal + Hessian), shf and shd (hf and hd with label_smoothing 0.1),
 * g3f (focal gamma 3 + Hessian), cd (CE gradient float64), hd (focal + Hessian float64), and
 * focal gradients with label_smoothing 0.1: sf (gamma 2), s3f (gamma 3), s5f (gamma 0.5), sd and
 * s5d (gamma 2 and 0.5, float64); all by default. The rows are ELEMENTS / C (20 of 32000 classes
 * by default). ELEMENTS below 131072 keeps the data in L2, which moves less with the neighbours'
 * load than a larger call.
 */
#include "A/_xent_rows.h"
#include "B/_xent_rows.h"
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <time.h>
#include <vector>

static double thread_ns() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

template <typename T> struct Data {
    std::vector<T> x, g, h;
    std::vector<int64_t> lab;
    int n, C;
    Data(int n_, int C_) : n(n_), C(C_) {
        x.resize(size_t(n) * C); g.resize(x.size()); h.resize(x.size()); lab.resize(n);
        std::mt19937 rng(1);
        std::normal_distribution<double> nd;
        for (auto& v : x) v = T(2 * nd(rng));
        for (int i = 0; i < n; ++i) lab[i] = rng() % C;
    }
};

template <typename Args, typename T> void fill(Args& a, Data<T>& d, double gamma, double eps, bool G, bool H) {
    memset(&a, 0, sizeof a);
    a.x = d.x.data(); a.sx_o = d.C; a.sx_c = 1; a.sx_i = 0; a.C = d.C; a.inner = 1; a.labels = d.lab.data();
    a.gamma = gamma; a.eps = eps; a.dscale = 1.0 / d.n; a.from_logits = 1;
    a.grad = G ? d.g.data() : nullptr; a.hess = H ? d.h.data() : nullptr;
    a.rows = d.n; a.res_rows = d.n; a.prob_pieces = 1;
}

/* best ns per element of reps calls of one version; its loss total in *sum */
#define RUNNER(NS)                                                                                      \
    template <typename T, typename Pow>                                                                 \
    double run_##NS(Data<T>& d, double gamma, double eps, bool G, bool H, int reps, double* sum) {     \
        NS::SoftmaxArgs a;                                                                              \
        fill(a, d, gamma, eps, G, H);                                                                   \
        double best = 1e300;                                                                            \
        for (int r = 0; r < reps; ++r) {                                                                \
            NS::BlockResult res;                                                                        \
            memset(&res, 0, sizeof res);                                                                \
            const double t0 = thread_ns();                                                              \
            NS::softmax_with_pow<T, Pow>(&a, 0, d.n, &res);                                              \
            const double t1 = thread_ns();                                                              \
            *sum = res.sum;                                                                             \
            best = std::min(best, (t1 - t0) / (double(d.n) * d.C));                                     \
        }                                                                                               \
        return best;                                                                                    \
    }
RUNNER(xa)
RUNNER(xb)

static int ELEMENTS = 655360;

template <typename T, typename PA, typename PB>
void compare(const char* name, int C, double gamma, double eps, bool G, bool H, int rounds, int reps) {
    Data<T> da(ELEMENTS / C, C), db(ELEMENTS / C, C);
    double ta = 1e300, tb = 1e300, sa = 0, sb = 0;
    for (int k = 0; k < rounds; ++k) {
        ta = std::min(ta, run_xa<T, PA>(da, gamma, eps, G, H, reps, &sa));
        tb = std::min(tb, run_xb<T, PB>(db, gamma, eps, G, H, reps, &sb));
    }
    const size_t bytes = da.g.size() * sizeof(T);
    const bool same = memcmp(&sa, &sb, sizeof sa) == 0 && memcmp(da.g.data(), db.g.data(), bytes) == 0 &&
                      memcmp(da.h.data(), db.h.data(), bytes) == 0;
    printf("%-12s C=%3d  A %7.3f  B %7.3f ns/element  B/A %.3f  %s\n", name, C, ta, tb, tb / ta,
           same ? "same bits" : "DIFFERENT BITS");
}

int main(int argc, char** argv) {
    const int C = argc > 1 ? atoi(argv[1]) : 10, rounds = argc > 2 ? atoi(argv[2]) : 10;
    const int reps = argc > 3 ? atoi(argv[3]) : 5;
    const std::string cases = argc > 4 ? argv[4] : "";
    if (argc > 5) ELEMENTS = atoi(argv[5]);
    auto want = [&](const char* k) {
        if (cases.empty()) return true;
        std::string padded = " " + cases + " ";
        return padded.find(" " + std::string(k) + " ") != std::string::npos;
    };
    if (want("lf")) compare<float, xa::PowNone, xb::PowNone>("CE loss f32", C, 0, 0, false, false, rounds, reps);
    if (want("ld")) compare<double, xa::PowNone, xb::PowNone>("CE loss f64", C, 0, 0, false, false, rounds, reps);
    if (want("flf")) compare<float, xa::PowSquare, xb::PowSquare>("focal loss f32", C, 2, 0, false, false, rounds, reps);
    if (want("fld")) compare<double, xa::PowSquare, xb::PowSquare>("focal loss f64", C, 2, 0, false, false, rounds,
                                                                    reps);
    if (want("cf")) compare<float, xa::PowNone, xb::PowNone>("CE g f32", C, 0, 0, true, false, rounds, reps);
    if (want("chf")) compare<float, xa::PowNone, xb::PowNone>("CE g+h f32", C, 0, 0, true, true, rounds, reps);
    if (want("ff")) compare<float, xa::PowSquare, xb::PowSquare>("focal g f32", C, 2, 0, true, false, rounds, reps);
    if (want("hf")) compare<float, xa::PowSquare, xb::PowSquare>("focal g+h f32", C, 2, 0, true, true, rounds, reps);
    if (want("shf")) compare<float, xa::PowSquare, xb::PowSquare>("smooth g+h", C, 2, 0.1, true, true, rounds, reps);
    if (want("shd")) compare<double, xa::PowSquare, xb::PowSquare>("smooth g+h f64", C, 2, 0.1, true, true, rounds,
                                                                    reps);
    if (want("g3f")) compare<float, xa::PowInt, xb::PowInt>("g3 g+h f32", C, 3, 0, true, true, rounds, reps);
    if (want("cd")) compare<double, xa::PowNone, xb::PowNone>("CE g f64", C, 0, 0, true, false, rounds, reps);
    if (want("hd")) compare<double, xa::PowSquare, xb::PowSquare>("focal g+h f64", C, 2, 0, true, true, rounds, reps);
    if (want("sf")) compare<float, xa::PowSquare, xb::PowSquare>("smooth g f32", C, 2, 0.1, true, false, rounds, reps);
    if (want("s3f")) compare<float, xa::PowInt, xb::PowInt>("smooth g3 f32", C, 3, 0.1, true, false, rounds, reps);
    if (want("s5f")) compare<float, xa::PowViaDouble, xb::PowViaDouble>("smooth g.5 f32", C, 0.5, 0.1, true, false,
                                                                         rounds, reps);
    if (want("s5d")) compare<double, xa::PowDD, xb::PowDD>("smooth g.5 f64", C, 0.5, 0.1, true, false, rounds, reps);
    if (want("sd")) compare<double, xa::PowSquare, xb::PowSquare>("smooth g f64", C, 2, 0.1, true, false, rounds, reps);
    return 0;
}
