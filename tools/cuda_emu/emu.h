/* Host emulation of the CUDA built-ins that xentc/_xent.cu uses, for g++ (development only).
 *
 * The fake cupy package (tools/cuda_emu/cupy) compiles the kernel source with this header forced
 * in front of it (-include emu.h) and -DXENT_EMU=1, plus a generated translation unit with one
 * launcher per kernel instance. A launch runs the grid block after block (the K blocks of a
 * thread-block cluster together); every CUDA thread of the running block(s) is a coroutine with
 * its own small stack, and a simple scheduler resumes them round-robin:
 *
 *   __syncthreads            waits for every thread of the block that has not exited
 *   warp-level ops           (shuffles, votes, __syncwarp) wait for the lanes of the warp that
 *                            have not exited, then each lane reads what the others deposited
 *   cluster_arrive/wait      split barrier over every thread of the cluster
 *
 * Threads that have exited count as arrived. A scheduler pass that resumes nobody while some
 * thread still waits is a deadlock: the launch fails with a message naming the kernel, the block
 * and where the threads wait. Checks that turn undefined behaviour into a failed launch
 * (XENTC_EMU_STRICT=0 relaxes the ones marked "strict"):
 *   - a warp op with a mask other than the full warp (the emulator only implements full masks);
 *   - lanes of one warp meeting at different kinds of warp op (a shuffle of 8 bytes and a vote);
 *   - a shuffle reading a lane that had exited (strict);
 *   - threads of a block meeting at different __syncthreads call sites (strict);
 *   - cluster_arrive twice without cluster_wait, or a wait without an arrive;
 *   - cluster_load from a block that has exited, or of an address outside shared memory;
 *   - writes past the end of a shared-memory variable or of the dynamic shared memory (canary
 *     bytes checked after each block; with XENTC_EMU_ASAN=1 AddressSanitizer also catches reads);
 *   - static + dynamic shared memory over the device limit;
 *   - cp.async misuse: a copy of other than 4, 8 or 16 bytes, misaligned or outside shared memory,
 *     to a destination that a pending copy of the thread targets or that is written while its
 *     copy is pending, and a thread exiting with copies not waited for.
 * Shared memory starts filled with 0xff bytes (NaN for float and double, -1 for integers), so a
 * read of shared memory nobody wrote shows up in the results; XENTC_EMU_SMEM_FILL picks another
 * byte (0x4b: finite values, such as a GPU's earlier block leaves, which NaN-blind code such as a
 * maximum would take in). cp.async copies are asynchronous
 * per thread as in PTX: the destination holds 0xff bytes from the issue until the issuing thread's
 * wait_all, or wait_group N for all committed groups but the newest N, lands the copy; so a read
 * before the wait shows up in the results too.
 *
 * Not emulated: memory ordering between threads (every thread sees every write at once, so a
 * missing barrier is only found when the thread order matters: XENTC_EMU_ORDER=reverse|shuffle
 * changes that order), the device math library (the host libm is used: results agree with the
 * GPU to a few ulp, not bit for bit), timing.
 */
#ifndef XENTC_CUDA_EMU_H
#define XENTC_CUDA_EMU_H

#include <math.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

#define EMU_EXPORT __attribute__((visibility("default")))

/* ---------------------------------------------------------------------------------------------
 * What NVRTC would define. __CUDACC__ / __CUDACC_RTC__ make _xent_math.h take its device branch
 * (CUDA math library names, here the host libm); the standard headers are all included above,
 * so they never see these macros.
 * ------------------------------------------------------------------------------------------- */
#define __CUDACC__ 1
#define __CUDACC_RTC__ 1
#define __CUDA_ARCH__ 900
#define __CUDACC_VER_MAJOR__ 12
#define __CUDACC_VER_MINOR__ 4
#define __NVCC__ 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __cluster_dims__(...)
#define __maxnreg__(...)
#define __constant__
#define __managed__
/* Under XENT_EMU shared memory must come from XENT_SHARED / XENT_DYN_SHARED (one copy per
 * emulated block); a plain __shared__ would silently become a per-thread variable. */
#define __shared__ EMU_ERROR_plain___shared___is_not_emulated_use_XENT_SHARED

#ifndef warpSize
#define warpSize 32
#endif

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
#define EMU_VEC2(name, T, al) struct __attribute__((aligned(al))) name { T x, y; }; \
    inline name make_##name(T a, T b) { name r; r.x = a; r.y = b; return r; }
#define EMU_VEC4(name, T, al) struct __attribute__((aligned(al))) name { T x, y, z, w; }; \
    inline name make_##name(T a, T b, T c, T d) { name r; r.x = a; r.y = b; r.z = c; r.w = d; return r; }
EMU_VEC2(int2, int, 8)
EMU_VEC2(uint2, unsigned, 8)
EMU_VEC2(float2, float, 8)
EMU_VEC2(double2, double, 16)
EMU_VEC2(longlong2, long long, 16)
EMU_VEC2(ulonglong2, unsigned long long, 16)
EMU_VEC4(int4, int, 16)
EMU_VEC4(uint4, unsigned, 16)
EMU_VEC4(float4, float, 16)
#undef EMU_VEC2
#undef EMU_VEC4

namespace emu {

enum { READY = 0, WAITING = 1, DONE = 2 };
enum { OK = 0, CONFIG_ERROR = 1, KERNEL_FAULT = 2 };
constexpr size_t SMEM_DEFAULT = 48 * 1024;       /* without the opt-in attribute */
constexpr size_t SMEM_OPTIN = 232448;           /* sm_90: 227 KiB per block */
constexpr size_t CANARY = 32;                    /* guard bytes after each shared region */
constexpr unsigned char CANARY_BYTE = 0xa5;

struct Barrier {
    int expected = 0, arrived = 0;
    unsigned gen = 0;
    /* the current phase, as the first arriver left it */
    int kind = 0, line = 0;
    const char* file = "";
    const char* what = "";
    long long acc = 0;   /* __syncthreads_count / _and / _or */
    int result = 0;
};

struct Warp {
    Barrier bar;
    int nlanes = 32, index = 0;
    unsigned full = 0xffffffffu;
    int buf = 0;
    unsigned mask[2] = {0, 0};            /* lanes that deposited in each buffer's phase */
    unsigned long long slot[2][32];
};

struct SharedVar {
    const void* key;
    size_t off, size;
    const char* name;
};

struct Block {
    uint3 idx{0, 0, 0};
    int rank = 0, live = 0;
    Barrier bar;
    std::vector<Warp> warps;
    unsigned char* arena = nullptr;   /* [dynamic | canary | var | canary | var | canary ...] */
    size_t cap = 0, used = 0, static_bytes = 0;
    std::vector<SharedVar> vars;
};

/* A cp.async copy issued by a thread and not yet waited for (see cp_async below). */
struct CpCopy {
    unsigned char* dst;
    const unsigned char* src;
    size_t n;
    unsigned group;   /* the thread's commits before the copy was issued: its group's number */
};

struct Thread {
    void* sp = nullptr;
#if !defined(__x86_64__)
    ucontext_t uc;
#endif
    int state = DONE;
    const Barrier* wait_bar = nullptr;
    unsigned wait_gen = 0;
    const char* wfile = "";
    const char* wwhat = "";
    int wline = 0;
    uint3 tid{0, 0, 0};
    int lin = 0, lane = 0;
    Block* blk = nullptr;
    Warp* warp = nullptr;
    bool cl_pending = false;
    unsigned cl_gen = 0;
    std::vector<CpCopy> cp_q;   /* pending cp.async copies, oldest first */
    unsigned cp_groups = 0;     /* cp.async.commit_group count */
    char* stack_lo = nullptr;
    size_t stack_size = 0;
#if EMU_ASAN
    void* fake_stack = nullptr;
#endif
};

typedef void (*Body)(void**);

/* Filled by the Python side (tools/cuda_emu/cupy/_emu.py, class _LaunchArgs): keep in step. */
struct LaunchArgs {
    unsigned grid[3];
    unsigned block[3];
    unsigned long long dyn_smem;
    unsigned long long max_dyn;     /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES */
    void** params;
    int strict;
    int order;                       /* 0 forward, 1 reverse, 2 shuffled */
    unsigned long long seed;
    char* err;
    unsigned long long errcap;
    unsigned fill;                   /* the byte shared memory starts as (0xff: NaN) */
};

struct State {
    Thread* cur = nullptr;
#if defined(__x86_64__)
    void* sched_sp = nullptr;
#else
    ucontext_t sched_uc;
#endif
#if EMU_ASAN
    const void* main_bottom = nullptr;
    size_t main_size = 0;
#endif
    const char* kernel = "";
    Body body = nullptr;
    void** params = nullptr;
    uint3 bdim{1, 1, 1}, gdim{1, 1, 1};
    int K = 1, nthreads = 0, ngroup = 0, ndone = 0;
    size_t dyn = 0, smem_limit = SMEM_DEFAULT;
    bool strict = true;
    int order = 0;
    unsigned char fill = 0xff;
    unsigned long long rng = 1;
    Barrier cl_bar;
    std::vector<Thread> threads;
    std::vector<Block> blocks;
    std::vector<int> perm;
    int fault = OK;
    std::string msg;
};

inline State G;

/* The emulated threads' stacks, each behind a guard page: two memory mappings a stack. Every module
 * (one .so a RawModule, loaded RTLD_LOCAL) has its own State, and once had its own stacks too: a
 * process that loaded a few dozen modules, each of which once ran a cluster of 8 x 1024 threads,
 * held more mappings than vm.max_map_count allows (65530), and dlopen then failed ("failed to map
 * segment from shared object"). The Python side (cupy/_emu.py, load_library) hands the first
 * module's pool to every later one (emu_share_stack_pool); launches are serialised there, so one
 * pool serves them all. */
struct StackPool {
    std::vector<char*> stacks;
    size_t stack_size = 0;
#if EMU_ASAN
    bool dirty = false;   /* stacks of threads abandoned by a fault keep their red zones */
#endif
};
inline StackPool own_pool;
inline StackPool* pool = &own_pool;
extern "C" EMU_EXPORT void* emu_stack_pool() { return pool; }
extern "C" EMU_EXPORT void emu_share_stack_pool(void* p) { pool = static_cast<StackPool*>(p); }

/* ---------------------------------------------------------------------------------------------
 * Context switching: a few instructions on x86-64 (callee-saved registers and the stack
 * pointer), ucontext elsewhere.
 * ------------------------------------------------------------------------------------------- */
#if defined(__x86_64__)
extern "C" void emu_ctx_switch(void** save_sp, void* load_sp);
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl emu_ctx_switch\n"
    ".hidden emu_ctx_switch\n"
    ".type emu_ctx_switch,@function\n"
    "emu_ctx_switch:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size emu_ctx_switch, .-emu_ctx_switch\n");
#endif

[[noreturn]] void thread_entry();

inline void to_thread(Thread* t) {
    G.cur = t;
#if EMU_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, t->stack_lo, t->stack_size);
#endif
#if defined(__x86_64__)
    emu_ctx_switch(&G.sched_sp, t->sp);
#else
    swapcontext(&G.sched_uc, &t->uc);
#endif
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

/* From a thread back to the scheduler; returns when the scheduler resumes the thread. */
inline void to_scheduler(Thread* t, bool dying = false) {
#if EMU_ASAN
    __sanitizer_start_switch_fiber(dying ? nullptr : &t->fake_stack, G.main_bottom, G.main_size);
#else
    (void)dying;
#endif
#if defined(__x86_64__)
    emu_ctx_switch(&t->sp, G.sched_sp);
#else
    swapcontext(&t->uc, &G.sched_uc);
#endif
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(t->fake_stack, nullptr, nullptr);
#endif
}

inline void start_thread(Thread* t) {
    t->state = READY;
#if defined(__x86_64__)
    uint64_t* sp = reinterpret_cast<uint64_t*>(t->stack_lo + t->stack_size);
    *--sp = 0;                                              /* thread_entry's return address slot */
    *--sp = reinterpret_cast<uint64_t>(&thread_entry);      /* where emu_ctx_switch returns to */
    for (int i = 0; i < 6; ++i) *--sp = 0;                  /* rbp rbx r12 r13 r14 r15 */
    t->sp = sp;
#else
    getcontext(&t->uc);
    t->uc.uc_stack.ss_sp = t->stack_lo;
    t->uc.uc_stack.ss_size = t->stack_size;
    t->uc.uc_link = nullptr;
    makecontext(&t->uc, reinterpret_cast<void (*)()>(&thread_entry), 0);
#endif
}

/* ---------------------------------------------------------------------------------------------
 * Faults: the launch stops, the Python side raises with the message.
 * ------------------------------------------------------------------------------------------- */
inline std::string where(const Thread* t) {
    char buf[200];
    if (!t) return std::string(G.kernel);
    snprintf(buf, sizeof buf, "%s, block (%u,%u,%u) thread (%u,%u,%u)", G.kernel, t->blk->idx.x, t->blk->idx.y,
             t->blk->idx.z, t->tid.x, t->tid.y, t->tid.z);
    return buf;
}

/* printf into a string (the fault messages) */
inline std::string vformat(const char* fmt, va_list ap) {
    char buf[1200];
    vsnprintf(buf, sizeof buf, fmt, ap);
    return buf;
}

__attribute__((format(printf, 2, 3))) inline void set_fault(int kind, const char* fmt, ...) {
    if (G.fault) return;
    va_list ap;
    va_start(ap, fmt);
    G.msg = vformat(fmt, ap);
    va_end(ap);
    G.fault = kind;
}

/* A fault seen by the running thread: record it and never come back. */
[[noreturn]] inline void thread_fault_str(int kind, const std::string& m) {
    set_fault(kind, "%s: %s", where(G.cur).c_str(), m.c_str());
    Thread* t = G.cur;
    t->state = DONE;
    for (;;) to_scheduler(t, true);
}

__attribute__((format(printf, 1, 2))) [[noreturn]] inline void kfault(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const std::string m = vformat(fmt, ap);
    va_end(ap);
    thread_fault_str(KERNEL_FAULT, m);
}

/* ---------------------------------------------------------------------------------------------
 * Barriers
 * ------------------------------------------------------------------------------------------- */
inline void wait_here(Thread* t, const Barrier& b, const char* what, const char* file, int line) {
    t->state = WAITING;
    t->wait_bar = &b;
    t->wait_gen = b.gen;
    t->wwhat = what;
    t->wfile = file;
    t->wline = line;
    to_scheduler(t);
}

inline void complete_plain(Barrier& b) {
    b.arrived = 0;
    b.gen++;
}

inline void complete_block(Barrier& b) {
    switch (b.kind) {
        case 1: b.result = int(b.acc); break;          /* count */
        case 2: b.result = b.acc == 0 ? 1 : 0; break;  /* and: acc counts the zeros */
        case 3: b.result = b.acc != 0 ? 1 : 0; break;  /* or */
        default: b.result = 0;
    }
    b.acc = 0;
    complete_plain(b);
}

inline void complete_warp(Warp& w) {
    complete_plain(w.bar);
    w.buf ^= 1;
    w.mask[w.buf] = 0;
}

static const char* const BLOCK_BARRIER_NAMES[4] = {"__syncthreads", "__syncthreads_count", "__syncthreads_and",
                                                   "__syncthreads_or"};

/* kind 0: __syncthreads, 1: _count, 2: _and, 3: _or */
inline int block_barrier(int kind, int pred, const char* file, int line) {
    Thread* t = G.cur;
    Block* bk = t->blk;
    Barrier& b = bk->bar;
    if (b.arrived == 0) {
        b.kind = kind;
        b.file = file;
        b.line = line;
        b.what = BLOCK_BARRIER_NAMES[kind];
    } else if (b.kind != kind) {
        kfault("threads of the block meet at different barriers: %s (%s:%d) and %s (%s:%d)", b.what, b.file,
               b.line, BLOCK_BARRIER_NAMES[kind], file, line);
    } else if (G.strict && (b.line != line || strcmp(b.file, file) != 0)) {
        kfault("threads of the block meet at different __syncthreads call sites (%s:%d and %s:%d): the "
               "barrier sits in divergent code (undefined behaviour in CUDA; XENTC_EMU_STRICT=0 allows it)",
               b.file, b.line, file, line);
    }
    if (kind == 1 || kind == 3) b.acc += pred != 0;
    if (kind == 2) b.acc += pred == 0;
    if (++b.arrived == b.expected) {
        complete_block(b);
        return b.result;
    }
    wait_here(t, b, b.what, file, line);
    return b.result;
}

/* Warp ops: each lane deposits 8 bytes, waits for the warp, and gets the phase's slots and the
 * mask of the lanes that took part. Two buffers alternate: a lane can only deposit into a buffer
 * again after the phase in between completed, i.e. after every lane read the old phase. */
struct WarpPhase {
    const unsigned long long* slot;
    unsigned mask;
};

inline WarpPhase warp_exchange(unsigned mask, unsigned long long v, int kind, const char* what, const char* file,
                               int line) {
    Thread* t = G.cur;
    Warp& w = *t->warp;
    Barrier& b = w.bar;
    if (mask != 0xffffffffu && mask != w.full)
        kfault("%s (%s:%d) with mask 0x%08x: the emulator implements full-warp masks only", what, file, line, mask);
    if (b.arrived == 0) {
        b.kind = kind;
        b.what = what;
        b.file = file;
        b.line = line;
    } else if (b.kind != kind) {
        kfault("lanes of warp %d meet at different warp operations: %s (%s:%d) and %s (%s:%d)", w.index, b.what,
               b.file, b.line, what, file, line);
    }
    const int buf = w.buf;
    w.slot[buf][t->lane] = v;
    w.mask[buf] |= 1u << t->lane;
    if (++b.arrived == b.expected) complete_warp(w);
    else wait_here(t, b, what, file, line);
    return WarpPhase{w.slot[buf], w.mask[buf]};
}

template <typename T> inline unsigned long long to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp ops take at most 8 bytes");
    unsigned long long r = 0;
    memcpy(&r, &v, sizeof(T));
    return r;
}
template <typename T> inline T from_bits(unsigned long long r) {
    T v;
    memcpy(&v, &r, sizeof(T));
    return v;
}

enum { SHFL_IDX = 1, SHFL_UP, SHFL_DOWN, SHFL_XOR, VOTE_ANY, VOTE_ALL, VOTE_BALLOT, SYNCWARP, MATCH_ANY };

template <typename T>
inline T shuffle(int op, unsigned mask, T v, int arg, int width, const char* what, const char* file, int line) {
    Thread* t = G.cur;
    if (width <= 0 || width > 32 || (width & (width - 1)))
        kfault("%s (%s:%d): width %d is not a power of two in [1, 32]", what, file, line, width);
    const WarpPhase ph = warp_exchange(mask, to_bits(v), (op << 8) | int(sizeof(T)), what, file, line);
    const int lane = t->lane, seg = lane & ~(width - 1), lw = lane & (width - 1);
    int src = lane;
    switch (op) {
        case SHFL_IDX: src = seg + (arg & (width - 1)); break;
        case SHFL_UP: src = lw - arg >= 0 ? lane - arg : lane; break;
        case SHFL_DOWN: src = lw + arg < width ? lane + arg : lane; break;
        case SHFL_XOR: {
            const int s = lane ^ arg;
            src = (s & ~(width - 1)) > seg ? lane : s;
            break;
        }
    }
    if (src < 0 || src > 31 || !(ph.mask >> src & 1u)) {
        if (G.strict)
            kfault("%s (%s:%d) reads lane %d, which did not take part (exited or beyond the block): undefined "
                   "value (XENTC_EMU_STRICT=0 allows it)", what, file, line, src);
        return v;
    }
    return from_bits<T>(ph.slot[src]);
}

inline unsigned vote(int op, unsigned mask, int pred, const char* what, const char* file, int line) {
    const WarpPhase ph = warp_exchange(mask, pred != 0, op << 8, what, file, line);
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l)
        if ((ph.mask >> l & 1u) && ph.slot[l]) ballot |= 1u << l;
    if (op == VOTE_ANY) return ballot != 0;
    if (op == VOTE_ALL) return ballot == ph.mask;
    return ballot;
}

/* ---------------------------------------------------------------------------------------------
 * Thread-block clusters (split arrive / wait barrier over every thread of the cluster)
 * ------------------------------------------------------------------------------------------- */
inline void cl_arrive(const char* file, int line) {
    Thread* t = G.cur;
    if (G.K <= 1) kfault("cluster_arrive (%s:%d) in a kernel launched without __cluster_dims__", file, line);
    if (t->cl_pending) kfault("cluster_arrive (%s:%d) twice without cluster_wait in between", file, line);
    t->cl_pending = true;
    t->cl_gen = G.cl_bar.gen;
    if (G.cl_bar.arrived == 0) {
        G.cl_bar.file = file;
        G.cl_bar.line = line;
        G.cl_bar.what = "cluster_wait";
    }
    if (++G.cl_bar.arrived == G.cl_bar.expected) complete_plain(G.cl_bar);
}

inline void cl_wait(const char* file, int line) {
    Thread* t = G.cur;
    if (G.K <= 1) kfault("cluster_wait (%s:%d) in a kernel launched without __cluster_dims__", file, line);
    if (!t->cl_pending) kfault("cluster_wait (%s:%d) without a cluster_arrive before it", file, line);
    t->cl_pending = false;
    if (G.cl_bar.gen == t->cl_gen) wait_here(t, G.cl_bar, "cluster_wait", file, line);
}

/* ---------------------------------------------------------------------------------------------
 * Shared memory, one arena per emulated block
 * ------------------------------------------------------------------------------------------- */
inline size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

inline void* alloc_shared(Block* b, const void* key, size_t size, size_t align, const char* name) {
    const size_t off = align_up(b->used, align < 16 ? 16 : align);
    if (off + size + CANARY > b->cap) kfault("shared variable %s (%zu bytes) does not fit the arena", name, size);
    b->static_bytes += size;
    if (b->static_bytes > SMEM_DEFAULT)
        set_fault(CONFIG_ERROR, "%s: static shared memory %zu bytes > 48 KiB: the launch would be refused",
                  G.kernel, b->static_bytes);
    else if (b->static_bytes + G.dyn > G.smem_limit)
        set_fault(CONFIG_ERROR,
                  "%s: static (%zu) + dynamic (%zu) shared memory > %zu bytes: the launch would be refused",
                  G.kernel, b->static_bytes, G.dyn, G.smem_limit);
    if (G.fault) thread_fault_str(G.fault, "shared memory over the limit");
#if EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(b->arena + off, size);
#endif
    memset(b->arena + off, G.fill, size);
#if !EMU_ASAN
    memset(b->arena + off + size, CANARY_BYTE, CANARY);
#endif
    b->vars.push_back(SharedVar{key, off, size, name});
    b->used = off + size + CANARY;
    return b->arena + off;
}

inline void* shared_var(const void* key, size_t size, size_t align, const char* name) {
    Block* b = G.cur->blk;
    for (const SharedVar& v : b->vars)
        if (v.key == key) return b->arena + v.off;
    return alloc_shared(b, key, size, align, name);
}

/* The address in block `rank` of the cluster that corresponds to p in this block. */
inline const void* cluster_map(const void* p, size_t n, unsigned rank, const char* file, int line) {
    Thread* t = G.cur;
    if (G.K <= 1) kfault("cluster_load (%s:%d) in a kernel launched without __cluster_dims__", file, line);
    if (rank >= unsigned(G.K)) kfault("cluster_load (%s:%d) of rank %u in a cluster of %d", file, line, rank, G.K);
    Block* me = t->blk;
    Block* other = &G.blocks[rank];
    if (other->live == 0)
        kfault("cluster_load (%s:%d) reads the shared memory of block rank %u, which has exited", file, line, rank);
    const unsigned char* q = static_cast<const unsigned char*>(p);
    if (q >= me->arena && q + n <= me->arena + G.dyn) return other->arena + (q - me->arena);
    for (const SharedVar& v : me->vars) {
        if (q >= me->arena + v.off && q + n <= me->arena + v.off + v.size) {
            const size_t within = size_t(q - (me->arena + v.off));
            for (const SharedVar& o : other->vars)
                if (o.key == v.key) return other->arena + o.off + within;
            /* the other block has not reached the declaration yet: its copy exists all the same */
            return static_cast<unsigned char*>(alloc_shared(other, v.key, v.size, 16, v.name)) + within;
        }
    }
    kfault("cluster_load (%s:%d): address %p is not in this block's shared memory", file, line, p);
}

/* ---------------------------------------------------------------------------------------------
 * cp.async (global to shared memory copies that do not wait), per thread as in PTX: a copy is
 * pending until its thread waits for its group. cp_commit closes the group of the copies issued
 * since the last commit; cp_wait_group(N) lands every copy of every committed group but the
 * newest N (copies not committed yet stay pending); cp_wait_all is a commit and wait_group 0.
 * At issue the destination is filled with 0xff bytes (NaN), and the source is read only when
 * the copy lands: a read of the destination before the wait (or by another thread before its
 * owner's wait) sees NaN. Faults: a copy outside the block's shared memory, of a size other
 * than 4, 8 or 16 bytes or misaligned; a destination that a pending copy of the same thread
 * already targets, or that was written while its copy was pending (a write of 0xff bytes goes
 * unseen); a thread that exits with copies not waited for.
 * ------------------------------------------------------------------------------------------- */
inline void cp_async(void* dst, const void* src, size_t n) {
    Thread* t = G.cur;
    unsigned char* d = static_cast<unsigned char*>(dst);
    const Block* b = t->blk;
    if (n != 4 && n != 8 && n != 16) kfault("cp.async of %zu bytes (4, 8 or 16 only)", n);
    if (d < b->arena || d + n > b->arena + b->used)
        kfault("cp.async to %p: not in this block's shared memory", dst);
    const size_t off = size_t(d - b->arena);
    if (off % n || reinterpret_cast<uintptr_t>(src) % n)
        kfault("cp.async of %zu bytes to shared offset %zu from %p: misaligned", n, off, src);
    for (const CpCopy& c : t->cp_q)
        if (d < c.dst + c.n && c.dst < d + n)
            kfault("cp.async to shared offset %zu while an earlier copy of this thread to it is pending", off);
    memset(d, 0xff, n);
    t->cp_q.push_back(CpCopy{d, static_cast<const unsigned char*>(src), n, t->cp_groups});
}

inline void cp_commit() { G.cur->cp_groups++; }

inline void cp_wait_group(unsigned n) {
    Thread* t = G.cur;
    const unsigned below = t->cp_groups >= n ? t->cp_groups - n : 0;   /* groups that land */
    size_t keep = 0;
    for (size_t i = 0; i < t->cp_q.size(); ++i) {
        const CpCopy c = t->cp_q[i];
        if (c.group >= below) {
            t->cp_q[keep++] = c;
            continue;
        }
        for (size_t k = 0; k < c.n; ++k)
            if (c.dst[k] != 0xff)
                kfault("shared offset %zu was written while a cp.async copy to it was pending",
                       size_t(c.dst - t->blk->arena) + k);
        memcpy(c.dst, c.src, c.n);
    }
    t->cp_q.resize(keep);
}

inline void cp_wait_all() {
    cp_commit();
    cp_wait_group(0);
}

/* ---------------------------------------------------------------------------------------------
 * Launch
 * ------------------------------------------------------------------------------------------- */
inline void thread_exit(Thread* t) {
    if (!t->cp_q.empty())
        set_fault(KERNEL_FAULT, "%s: thread exited with %zu cp.async copies not waited for", where(t).c_str(),
                  t->cp_q.size());
    t->state = DONE;
    G.ndone++;
    Warp& w = *t->warp;
    w.bar.expected--;
    if (w.bar.arrived > 0 && w.bar.arrived == w.bar.expected) complete_warp(w);
    Block& b = *t->blk;
    b.live--;
    b.bar.expected--;
    if (b.bar.arrived > 0 && b.bar.arrived == b.bar.expected) complete_block(b.bar);
    if (G.K > 1) {
        if (t->cl_pending && t->cl_gen == G.cl_bar.gen) G.cl_bar.arrived--;
        G.cl_bar.expected--;
        if (G.cl_bar.arrived > 0 && G.cl_bar.arrived == G.cl_bar.expected) complete_plain(G.cl_bar);
    }
}

__attribute__((noinline)) inline void run_body() { G.body(G.params); }

inline size_t env_size(const char* name, size_t dflt) {
    const char* s = getenv(name);
    if (!s || !*s) return dflt;
    return size_t(strtoull(s, nullptr, 10));
}

inline bool ensure_stacks(size_t n) {
    if (pool->stack_size == 0) {
        const size_t kb = env_size("XENTC_EMU_STACK_KB", EMU_ASAN ? 512 : 64);
        pool->stack_size = align_up((kb < 16 ? 16 : kb) * 1024, 4096);
    }
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    while (pool->stacks.size() < n) {
        /* a guard page below each stack: an overflow faults instead of corrupting a neighbour */
        void* m = mmap(nullptr, pool->stack_size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return false;
        mprotect(m, page, PROT_NONE);
        pool->stacks.push_back(static_cast<char*>(m) + page);
    }
    return true;
}

inline unsigned long long next_rand() {
    unsigned long long x = G.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return G.rng = x;
}

inline void check_canaries(Block& b) {
#if !EMU_ASAN
    auto bad = [](const unsigned char* p) {
        for (size_t i = 0; i < CANARY; ++i)
            if (p[i] != CANARY_BYTE) return true;
        return false;
    };
    if (bad(b.arena + G.dyn))
        set_fault(KERNEL_FAULT, "%s, block (%u,%u,%u): write past the end of the dynamic shared memory (%zu bytes)",
                  G.kernel, b.idx.x, b.idx.y, b.idx.z, G.dyn);
    for (const SharedVar& v : b.vars)
        if (bad(b.arena + v.off + v.size))
            set_fault(KERNEL_FAULT, "%s, block (%u,%u,%u): write past the end of shared variable %s (%zu bytes)",
                      G.kernel, b.idx.x, b.idx.y, b.idx.z, v.name, v.size);
#else
    (void)b;
#endif
}

inline std::string deadlock_report() {
    /* group the waiting threads by where they wait */
    struct Spot { const char* what; const char* file; int line; int n; const Thread* first; };
    std::vector<Spot> spots;
    int waiting = 0;
    for (int i = 0; i < G.ngroup; ++i) {
        const Thread& t = G.threads[i];
        if (t.state != WAITING) continue;
        waiting++;
        bool found = false;
        for (Spot& s : spots)
            if (s.line == t.wline && strcmp(s.file, t.wfile) == 0 && strcmp(s.what, t.wwhat) == 0) { s.n++; found = true; break; }
        if (!found) spots.push_back(Spot{t.wwhat, t.wfile, t.wline, 1, &t});
    }
    char buf[300];
    snprintf(buf, sizeof buf, "%s, block (%u,%u,%u)%s: deadlock: %d threads wait, %d exited;", G.kernel,
             G.blocks[0].idx.x, G.blocks[0].idx.y, G.blocks[0].idx.z, G.K > 1 ? " and the rest of its group" : "",
             waiting, G.ndone);
    std::string m = buf;
    for (const Spot& s : spots) {
        snprintf(buf, sizeof buf, " %d at %s (%s:%d), e.g. block x %u thread (%u,%u,%u) lane %d;", s.n, s.what, s.file,
                 s.line, s.first->blk->idx.x, s.first->tid.x, s.first->tid.y, s.first->tid.z, s.first->lane);
        m += buf;
    }
    return m;
}

/* Runs the threads of one group (a block, or the K blocks of a cluster) to the end. */
inline void run_group() {
    const int n = G.ngroup;
    for (int i = 0; i < n; ++i) G.perm[i] = G.order == 1 ? n - 1 - i : i;
    for (;;) {
        if (G.order == 2)
            for (int i = n - 1; i > 0; --i) std::swap(G.perm[i], G.perm[int(next_rand() % unsigned(i + 1))]);
        bool progress = false;
        for (int k = 0; k < n; ++k) {
            Thread* t = &G.threads[G.perm[k]];
            if (t->state == DONE) continue;
            if (t->state == WAITING) {
                if (t->wait_bar->gen == t->wait_gen) continue;
                t->state = READY;
            }
            to_thread(t);
            progress = true;
            if (G.fault) return;
        }
        if (G.ndone == n) return;
        if (!progress) {
            set_fault(KERNEL_FAULT, "%s", deadlock_report().c_str());
            return;
        }
    }
}

inline int finish(const LaunchArgs* a) {
    if (G.fault && a->err && a->errcap) {
        snprintf(a->err, size_t(a->errcap), "%s", G.msg.c_str());
    }
#if EMU_ASAN
    if (G.fault) pool->dirty = true;
#endif
    return G.fault;
}

inline int config_error(const LaunchArgs* a, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
inline int config_error(const LaunchArgs* a, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const std::string m = vformat(fmt, ap);
    va_end(ap);
    G.fault = CONFIG_ERROR;
    G.msg = std::string(G.kernel) + ": " + m;
    return finish(a);
}

inline int launch(const LaunchArgs* a, Body body, const char* name, long cx, long cy, long cz, long bound) {
    G.fault = OK;
    G.msg.clear();
    G.kernel = name;
    G.body = body;
    G.params = a->params;
    G.strict = a->strict != 0;
    G.order = a->order;
    G.fill = static_cast<unsigned char>(a->fill);
    G.rng = a->seed ? a->seed : 0x9e3779b97f4a7c15ull;
    const unsigned bx = a->block[0], by = a->block[1], bz = a->block[2];
    const unsigned gx = a->grid[0], gy = a->grid[1], gz = a->grid[2];
    const unsigned long long nt = (unsigned long long)bx * by * bz;
    if (!bx || !by || !bz || !gx || !gy || !gz) return config_error(a, "zero grid or block dimension");
    if (nt > 1024 || bx > 1024 || by > 1024 || bz > 64)
        return config_error(a, "block (%u,%u,%u) exceeds the device limits", bx, by, bz);
    if (gx > 2147483647u || gy > 65535u || gz > 65535u)
        return config_error(a, "grid (%u,%u,%u) exceeds the device limits", gx, gy, gz);
    if (bound > 0 && nt > (unsigned long long)bound)
        return config_error(a, "%llu threads per block > __launch_bounds__ %ld: too many resources requested for launch",
                            nt, bound);
    if (cx < 1 || cy < 1 || cz < 1) return config_error(a, "bad __cluster_dims__ (%ld,%ld,%ld)", cx, cy, cz);
    if (cy != 1 || cz != 1)
        return config_error(a, "__cluster_dims__ (%ld,%ld,%ld): the emulator groups blocks along x only", cx, cy, cz);
    if (cx > 8) return config_error(a, "cluster size %ld > 8 (the portable maximum)", cx);
    if (gx % unsigned(cx)) return config_error(a, "grid x %u is not a multiple of the cluster size %ld", gx, cx);
    G.dyn = size_t(a->dyn_smem);
    const size_t max_dyn = a->max_dyn ? size_t(a->max_dyn) : SMEM_DEFAULT;
    if (G.dyn > max_dyn)
        return config_error(a, "dynamic shared memory %zu bytes > the function's maximum %zu: invalid argument", G.dyn,
                            max_dyn);
    G.smem_limit = max_dyn > SMEM_DEFAULT ? SMEM_OPTIN : SMEM_DEFAULT;
    if (G.dyn > G.smem_limit) return config_error(a, "dynamic shared memory %zu bytes > %zu", G.dyn, G.smem_limit);

    const int K = int(cx), n1 = int(nt), n = K * n1;
    G.K = K;
    G.nthreads = n1;
    G.ngroup = n;
    G.bdim = uint3{bx, by, bz};
    G.gdim = uint3{gx, gy, gz};
    if (!ensure_stacks(size_t(n))) return config_error(a, "out of memory for %d thread stacks", n);
#if EMU_ASAN
    if (pool->dirty) {   /* stacks of threads abandoned by a fault keep their red zones */
        for (char* s : pool->stacks) ASAN_UNPOISON_MEMORY_REGION(s, pool->stack_size);
        pool->dirty = false;
    }
#endif
    if (G.threads.size() < size_t(n)) G.threads.resize(size_t(n));
    if (G.perm.size() < size_t(n)) G.perm.resize(size_t(n));
    if (G.blocks.size() < size_t(K)) G.blocks.resize(size_t(K));
    const int nw = (n1 + 31) / 32;
    for (int r = 0; r < K; ++r) {
        Block& b = G.blocks[size_t(r)];
        if (!b.arena) {
            b.cap = align_up(SMEM_OPTIN + 64 * 1024, 4096);   /* aligned_alloc wants a multiple */
            b.arena = static_cast<unsigned char*>(aligned_alloc(4096, b.cap));
            if (!b.arena) return config_error(a, "out of memory for shared memory");
        }
        if (b.warps.size() < size_t(nw)) b.warps.resize(size_t(nw));
    }

    const unsigned long long ngroups = (unsigned long long)(gx / unsigned(K)) * gy * gz;
    for (unsigned long long gi = 0; gi < ngroups; ++gi) {
        const unsigned long long g = G.order == 1 ? ngroups - 1 - gi : gi;
        const unsigned long long perx = gx / unsigned(K);
        const unsigned x0 = unsigned(g % perx) * unsigned(K);
        const unsigned y = unsigned((g / perx) % gy), z = unsigned(g / perx / gy);
        for (int r = 0; r < K; ++r) {
            Block& b = G.blocks[size_t(r)];
            b.idx = uint3{x0 + unsigned(r), y, z};
            b.rank = r;
            b.live = n1;
            b.bar = Barrier();
            b.bar.expected = n1;
            b.vars.clear();
            b.static_bytes = 0;
#if EMU_ASAN
            ASAN_UNPOISON_MEMORY_REGION(b.arena, b.cap);
            memset(b.arena, G.fill, G.dyn);
            ASAN_POISON_MEMORY_REGION(b.arena + G.dyn, b.cap - G.dyn);
#else
            memset(b.arena, G.fill, G.dyn);
            memset(b.arena + G.dyn, CANARY_BYTE, CANARY);
#endif
            b.used = G.dyn + CANARY;
            for (int wi = 0; wi < nw; ++wi) {
                Warp& w = b.warps[size_t(wi)];
                w.bar = Barrier();
                w.index = wi;
                w.nlanes = std::min(32, n1 - wi * 32);
                w.full = w.nlanes == 32 ? 0xffffffffu : ((1u << w.nlanes) - 1u);
                w.bar.expected = w.nlanes;
                w.buf = 0;
                w.mask[0] = w.mask[1] = 0;
            }
        }
        G.cl_bar = Barrier();
        G.cl_bar.expected = n;
        G.ndone = 0;
        for (int i = 0; i < n; ++i) {
            Thread& t = G.threads[size_t(i)];
            const int r = i / n1, lin = i % n1;
            Block& b = G.blocks[size_t(r)];
            t.tid = uint3{unsigned(lin) % bx, (unsigned(lin) / bx) % by, unsigned(lin) / (bx * by)};
            t.lin = lin;
            t.lane = lin & 31;
            t.blk = &b;
            t.warp = &b.warps[size_t(lin >> 5)];
            t.cl_pending = false;
            t.cl_gen = 0;
            t.cp_q.clear();
            t.cp_groups = 0;
            t.wait_bar = nullptr;
            t.stack_lo = pool->stacks[size_t(i)];
            t.stack_size = pool->stack_size;
            start_thread(&t);
        }
        run_group();
        G.cur = nullptr;
        if (!G.fault)
            for (int r = 0; r < K; ++r) check_canaries(G.blocks[size_t(r)]);
        if (G.fault) return finish(a);
    }
    return finish(a);
}

/* Signature of a kernel, for the Python side's argument check: one item per parameter, the kind
 * (p pointer, i integer, u unsigned, f floating, b bool, ? other) and the size in bytes. */
template <typename A> inline std::string param_code() {
    char k = '?';
    if (std::is_pointer<A>::value) k = 'p';
    else if (std::is_same<A, bool>::value) k = 'b';
    else if (std::is_floating_point<A>::value) k = 'f';
    else if (std::is_integral<A>::value) k = std::is_signed<A>::value ? 'i' : 'u';
    return std::string(1, k) + std::to_string(sizeof(A));
}
template <typename... A> inline std::string signature_of(void (*)(A...)) {
    std::string s;
    const std::string parts[] = {std::string(), param_code<A>()...};
    for (size_t i = 1; i < sizeof...(A) + 1; ++i) s += (i > 1 ? "," : "") + parts[i];
    return s;
}

template <typename... A, std::size_t... I>
inline void call_with(void (*f)(A...), void** p, std::index_sequence<I...>) {
    (void)p;
    f(*static_cast<typename std::remove_cv<A>::type*>(p[I])...);
}
template <typename... A> inline void call_kernel(void (*f)(A...), void** p) {
    call_with(f, p, std::index_sequence_for<A...>{});
}
/* What each emulated thread runs: the kernel F with its arguments unpacked from p. */
template <auto F> void body(void** p) { call_kernel(F, p); }

}  // namespace emu

#if EMU_ASAN
#define EMU_THREAD_ENTRY_ATTR __attribute__((no_sanitize_address))
#else
#define EMU_THREAD_ENTRY_ATTR
#endif

/* Every emulated thread starts here (on its own stack) and ends by switching to the scheduler. */
[[noreturn]] EMU_THREAD_ENTRY_ATTR void emu::thread_entry() {
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &G.main_bottom, &G.main_size);
#endif
    run_body();
    Thread* t = G.cur;
    thread_exit(t);
    for (;;) to_scheduler(t, true);
}

/* ---------------------------------------------------------------------------------------------
 * CUDA names
 * ------------------------------------------------------------------------------------------- */
#define threadIdx (::emu::G.cur->tid)
#define blockIdx (::emu::G.cur->blk->idx)
#define blockDim (::emu::G.bdim)
#define gridDim (::emu::G.gdim)

#define __syncthreads() ((void)::emu::block_barrier(0, 1, __FILE__, __LINE__))
#define __syncthreads_count(p) ::emu::block_barrier(1, (p), __FILE__, __LINE__)
#define __syncthreads_and(p) ::emu::block_barrier(2, (p), __FILE__, __LINE__)
#define __syncthreads_or(p) ::emu::block_barrier(3, (p), __FILE__, __LINE__)
#define __syncwarp(...) ((void)::emu::vote(::emu::SYNCWARP, ::emu::mask_or_full(__VA_ARGS__), 1, "__syncwarp", __FILE__, __LINE__))
#define __any_sync(m, p) int(::emu::vote(::emu::VOTE_ANY, (m), (p), "__any_sync", __FILE__, __LINE__))
#define __all_sync(m, p) int(::emu::vote(::emu::VOTE_ALL, (m), (p), "__all_sync", __FILE__, __LINE__))
#define __ballot_sync(m, p) ::emu::vote(::emu::VOTE_BALLOT, (m), (p), "__ballot_sync", __FILE__, __LINE__)
#define __shfl_sync(m, v, ...) ::emu::shfl_dispatch(::emu::SHFL_IDX, (m), (v), "__shfl_sync", __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(m, v, ...) ::emu::shfl_dispatch(::emu::SHFL_UP, (m), (v), "__shfl_up_sync", __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(m, v, ...) ::emu::shfl_dispatch(::emu::SHFL_DOWN, (m), (v), "__shfl_down_sync", __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(m, v, ...) ::emu::shfl_dispatch(::emu::SHFL_XOR, (m), (v), "__shfl_xor_sync", __FILE__, __LINE__, __VA_ARGS__)

namespace emu {
inline unsigned mask_or_full() { return 0xffffffffu; }
inline unsigned mask_or_full(unsigned m) { return m; }
template <typename T>
inline T shfl_dispatch(int op, unsigned mask, T v, const char* what, const char* file, int line, int arg,
                       int width = 32) {
    return shuffle<T>(op, mask, v, arg, width, what, file, line);
}
}  // namespace emu

inline unsigned __activemask() {
    const emu::Warp& w = *emu::G.cur->warp;
    (void)w;
    unsigned m = 0;
    for (const emu::Thread* t = emu::G.cur - emu::G.cur->lane; t < emu::G.cur - emu::G.cur->lane + w.nlanes; ++t)
        if (t->state != emu::DONE) m |= 1u << t->lane;
    return m;
}
inline unsigned __lanemask_lt() { return (1u << emu::G.cur->lane) - 1u; }

/* Thread-block clusters: the functions _xent.cu expects under XENT_EMU, visible from namespace
 * xentk by ordinary lookup. The rank of a block is blockIdx.x % K (blocks are grouped along x). */
#define cluster_arrive() ::emu::cl_arrive(__FILE__, __LINE__)
#define cluster_wait() ::emu::cl_wait(__FILE__, __LINE__)
#define cluster_load(p, rank) ::emu::cluster_load_at((p), (rank), __FILE__, __LINE__)
namespace emu {
template <typename T> inline T cluster_load_at(const T* p, unsigned rank, const char* file, int line) {
    T v;
    memcpy(&v, cluster_map(p, sizeof(T), rank, file, line), sizeof(T));
    return v;
}
inline unsigned cluster_rank_now() { return unsigned(G.cur->blk->rank); }
}  // namespace emu

/* The XENT_EMU hooks of _xent.cu: a block's own copy of each shared variable (looked up by the
 * address of a static tag, one per declaration and template instance), and its dynamic shared
 * memory (16-byte aligned). The variable is a reference, so `name` must be a plain identifier:
 * for an array, declare a struct holding it (XENT_SHARED(double, a[8]) does not compile). */
#define EMU_CAT2(a, b) a##b
#define EMU_CAT(a, b) EMU_CAT2(a, b)
#define XENT_SHARED(type, name)                                                                    \
    static const char EMU_CAT(emu_shared_tag_, name) = 0;                                          \
    type& name = *static_cast<type*>(                                                             \
        ::emu::shared_var(&EMU_CAT(emu_shared_tag_, name), sizeof(type), alignof(type), #name))
#define XENT_DYN_SHARED(name) unsigned char* const name = ::emu::G.cur->blk->arena

/* ---------------------------------------------------------------------------------------------
 * Device functions: bit casts, integer intrinsics, math (host libm), fences, atomics (plain
 * read-modify-write: emulated threads never run at the same time)
 * ------------------------------------------------------------------------------------------- */
inline float __int_as_float(int v) { return emu::from_bits<float>((unsigned)v); }
inline int __float_as_int(float v) { return int(emu::to_bits(v)); }
inline float __uint_as_float(unsigned v) { return emu::from_bits<float>(v); }
inline unsigned __float_as_uint(float v) { return unsigned(emu::to_bits(v)); }
inline double __longlong_as_double(long long v) { return emu::from_bits<double>((unsigned long long)v); }
inline long long __double_as_longlong(double v) { return (long long)emu::to_bits(v); }
inline int __double2hiint(double v) { return int(emu::to_bits(v) >> 32); }
inline int __double2loint(double v) { return int(unsigned(emu::to_bits(v))); }
inline double __hiloint2double(int hi, int lo) {
    return emu::from_bits<double>(((unsigned long long)(unsigned)hi << 32) | (unsigned)lo);
}
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(int v) { return v ? __builtin_clz(unsigned(v)) : 32; }
inline int __clzll(long long v) { return v ? __builtin_clzll((unsigned long long)v) : 64; }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline int __ffsll(long long v) { return __builtin_ffsll(v); }
inline unsigned __brev(unsigned v) {
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
    return r;
}
inline unsigned __umulhi(unsigned a, unsigned b) { return unsigned(((unsigned long long)a * b) >> 32); }
inline int __mulhi(int a, int b) { return int(((long long)a * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __drcp_rn(double a) { return 1.0 / a; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline int __float2int_rn(float x) { return int(nearbyintf(x)); }
inline int __float2int_rz(float x) { return int(x); }
inline int __double2int_rn(double x) { return int(nearbyint(x)); }
inline float __double2float_rn(double x) { return float(x); }
inline float __int2float_rn(int x) { return float(x); }
inline double __int2double_rn(int x) { return double(x); }
inline double __ll2double_rn(long long x) { return double(x); }
inline float __ll2float_rn(long long x) { return float(x); }

inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

template <typename T> inline T __ldg(const T* p) { return *p; }
template <typename T> inline T __ldcs(const T* p) { return *p; }
template <typename T> inline T __ldlu(const T* p) { return *p; }
template <typename T> inline void __stcs(T* p, T v) { *p = v; }
template <typename T> inline void __stwt(T* p, T v) { *p = v; }
inline void __threadfence() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __nanosleep(unsigned) {}
inline long long clock64() { return 0; }
inline int clock() { return 0; }

template <typename T> inline T atomicAdd(T* p, T v) { T o = *p; *p = o + v; return o; }
template <typename T> inline T atomicSub(T* p, T v) { T o = *p; *p = o - v; return o; }
template <typename T> inline T atomicExch(T* p, T v) { T o = *p; *p = v; return o; }
template <typename T> inline T atomicMin(T* p, T v) { T o = *p; *p = v < o ? v : o; return o; }
template <typename T> inline T atomicMax(T* p, T v) { T o = *p; *p = v > o ? v : o; return o; }
template <typename T> inline T atomicAnd(T* p, T v) { T o = *p; *p = o & v; return o; }
template <typename T> inline T atomicOr(T* p, T v) { T o = *p; *p = o | v; return o; }
template <typename T> inline T atomicXor(T* p, T v) { T o = *p; *p = o ^ v; return o; }
template <typename T> inline T atomicCAS(T* p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }
inline unsigned atomicInc(unsigned* p, unsigned v) { unsigned o = *p; *p = o >= v ? 0 : o + 1; return o; }
inline unsigned atomicDec(unsigned* p, unsigned v) { unsigned o = *p; *p = (o == 0 || o > v) ? v : o - 1; return o; }

#endif  /* XENTC_CUDA_EMU_H */
