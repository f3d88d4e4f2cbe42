"""Self-test of the CUDA emulator (not of xentc): the semantics of its built-ins against
reference results computed here, and every fault it claims to detect.

    bash tools/cuda_emu/run.sh tools/cuda_emu/test_emulator.py -q
"""
import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
if not cupy.__version__.count("xentcemu"):
    pytest.skip("these tests are for the emulator's fake cupy", allow_module_level=True)

from cupy.cuda.driver import CUDADriverError  # noqa: E402

SRC = r"""
#ifndef XENT_EMU
#define XENT_SHARED(type, name) __shared__ type name
#define XENT_DYN_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif
typedef long long i64;

template <typename T>
__global__ void shuffles(const T* v, T* out, int width) {
    const int t = threadIdx.x;
    const T x = v[t];
    out[0 * blockDim.x + t] = __shfl_sync(0xffffffffu, x, (t * 7 + 3) & 31, width);
    out[1 * blockDim.x + t] = __shfl_up_sync(0xffffffffu, x, 3, width);
    out[2 * blockDim.x + t] = __shfl_down_sync(0xffffffffu, x, 5, width);
    out[3 * blockDim.x + t] = __shfl_xor_sync(0xffffffffu, x, 6, width);
}

__global__ void votes(const int* pred, unsigned* out) {
    const int t = threadIdx.x, p = pred[t];
    out[4 * t + 0] = __any_sync(0xffffffffu, p);
    out[4 * t + 1] = __all_sync(0xffffffffu, p);
    out[4 * t + 2] = __ballot_sync(0xffffffffu, p);
    out[4 * t + 3] = unsigned(__syncthreads_count(p)) | (unsigned(__syncthreads_and(p)) << 16) |
                     (unsigned(__syncthreads_or(p)) << 17);
}

/* a block sum through shared memory over a 3-D block and a 2-D grid */
__global__ void __launch_bounds__(128) block_sum(const double* v, double* out) {
    struct Acc { double v[128]; };
    XENT_SHARED(Acc, sacc);
    double* acc = sacc.v;
    const int lin = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const int blk = blockIdx.x + gridDim.x * blockIdx.y;
    const int nt = blockDim.x * blockDim.y * blockDim.z;
    acc[lin] = v[blk * nt + lin];
    __syncthreads();
    for (int s = nt / 2; s > 0; s >>= 1) {
        if (lin < s) acc[lin] += acc[lin + s];
        __syncthreads();
    }
    if (lin == 0) out[blk] = acc[0];
}

__global__ void dyn_smem(const float* v, float* out, int n) {
    XENT_DYN_SHARED(d);
    float* f = reinterpret_cast<float*>(d);
    for (int i = threadIdx.x; i < n; i += blockDim.x) f[i] = v[i];
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0;
        for (int i = 0; i < n; ++i) s += f[n - 1 - i];
        out[0] = s;
    }
}

__global__ void uninit_read(double* out) {
    struct S4 { double v[4]; };
    XENT_SHARED(S4, s);
    out[threadIdx.x] = s.v[threadIdx.x];
}

#if defined(XENT_EMU)
/* each block of a cluster of 2 publishes its index; rank r reads the other rank's */
__global__ void __cluster_dims__(2, 1, 1) cluster_swap(int* out) {
    XENT_SHARED(double, mine);
    const unsigned rank = blockIdx.x % 2;
    if (threadIdx.x == 0) mine = double(blockIdx.x);
    cluster_arrive();
    cluster_wait();
    const double other = cluster_load(&mine, rank ^ 1u);
    cluster_arrive();
    cluster_wait();
    if (threadIdx.x == 0) out[blockIdx.x] = int(other);
}

__global__ void __cluster_dims__(2, 1, 1) cluster_exit_early(int* out) {
    XENT_SHARED(double, mine);
    mine = 1.0;
    cluster_arrive();
    cluster_wait();
    if (blockIdx.x % 2 == 0) return;      /* rank 0 leaves while rank 1 reads it */
    out[0] = int(cluster_load(&mine, 0));
}

__global__ void __cluster_dims__(2, 1, 1) cluster_double_arrive(int* out) {
    cluster_arrive();
    cluster_arrive();
}

/* cp.async (the hooks of _xent.cu's copy_to_shared*): out[t] is read before the wait (the old
 * -1 replaced by NaN), out[n + t] a neighbour's copy after the wait and a barrier */
__global__ void cp_premature(const double* v, double* out) {
    struct B { double v[64]; };
    XENT_SHARED(B, buf);
    const int t = threadIdx.x, n = blockDim.x;
    buf.v[t] = -1.0;
    __syncthreads();
    emu::cp_async(&buf.v[t], v + t, sizeof(double));
    out[t] = buf.v[t];
    emu::cp_wait_all();
    __syncthreads();
    out[n + t] = buf.v[(t + 1) % n];
}

/* groups a and b committed, c not: what each wait leaves pending */
__global__ void cp_groups(const double* v, double* out) {
    struct B { double a[32], b[32], c[32]; };
    XENT_SHARED(B, s);
    const int t = threadIdx.x;
    emu::cp_async(&s.a[t], v + t, 8);
    emu::cp_commit();
    emu::cp_async(&s.b[t], v + 32 + t, 8);
    emu::cp_commit();
    emu::cp_async(&s.c[t], v + 64 + t, 8);
    double* o = out + 9 * t;
    emu::cp_wait_group(1);      /* all but the newest committed group: a */
    o[0] = s.a[t], o[1] = s.b[t], o[2] = s.c[t];
    emu::cp_wait_group(0);      /* every committed group: a, b; c is not committed */
    o[3] = s.a[t], o[4] = s.b[t], o[5] = s.c[t];
    emu::cp_wait_all();         /* commits c too */
    o[6] = s.a[t], o[7] = s.b[t], o[8] = s.c[t];
}

struct CpInts { int v[256]; };
__global__ void cp_not_waited(int* out) {
    XENT_SHARED(CpInts, s);
    emu::cp_async(&s.v[threadIdx.x], out + threadIdx.x, 4);
}
__global__ void cp_write_pending(int* out) {
    XENT_SHARED(CpInts, s);
    emu::cp_async(&s.v[threadIdx.x], out + threadIdx.x, 4);
    s.v[threadIdx.x] = 0;
    emu::cp_wait_all();
}
__global__ void cp_same_dst(int* out) {
    XENT_SHARED(CpInts, s);
    emu::cp_async(&s.v[threadIdx.x], out + threadIdx.x, 4);
    emu::cp_async(&s.v[threadIdx.x], out + threadIdx.x, 4);
    emu::cp_wait_all();
}
__global__ void cp_misaligned(int* out) {
    XENT_SHARED(CpInts, s);
    emu::cp_async(&s.v[4 * threadIdx.x + 1], out, 16);
    emu::cp_wait_all();
}
#endif

/* faults */
__global__ void deadlock(int* out) {
    if ((threadIdx.x & 31) < 16) __syncthreads();
    else out[threadIdx.x] = __shfl_sync(0xffffffffu, int(threadIdx.x), 0);
}
__global__ void divergent_sync(int* out) {
    if (threadIdx.x < 32) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1;
}
__global__ void partial_mask(int* out) { out[threadIdx.x] = __shfl_sync(0x0000ffffu, int(threadIdx.x), 0); }
__global__ void mixed_warp_ops(int* out) {
    if (threadIdx.x & 1) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, int(threadIdx.x), 1);
    else out[threadIdx.x] = __any_sync(0xffffffffu, 1);
}
__global__ void read_exited_lane(int* out) {
    if (threadIdx.x >= 16) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, int(threadIdx.x), 16);
}
__global__ void smem_overflow(int* out) {
    struct S8 { int v[8]; };
    XENT_SHARED(S8, s);
    s.v[threadIdx.x] = 1;     /* 32 threads write 8 slots */
    out[threadIdx.x] = 0;
}
__global__ void takes_i64(i64 n, double* out) { out[0] = double(n); }
"""

NAMES = ["shuffles<int>", "shuffles<double>", "shuffles<long long>", "shuffles<float>", "votes", "block_sum",
         "dyn_smem", "uninit_read", "cluster_swap", "cluster_exit_early", "cluster_double_arrive", "deadlock",
         "divergent_sync", "partial_mask", "mixed_warp_ops", "read_exited_lane", "smem_overflow", "takes_i64", "cp_premature", "cp_groups", "cp_not_waited",
         "cp_write_pending", "cp_same_dst", "cp_misaligned"]


@pytest.fixture(scope="module")
def mod():
    return cupy.RawModule(code=SRC, options=("-std=c++17",), name_expressions=NAMES)


def ptr(a):
    return np.uint64(a.data.ptr)


def _ref_shuffles(v, width):
    n = len(v)
    out = np.empty((4, n), v.dtype)
    for t in range(n):
        seg, lw = t & ~(width - 1), t & (width - 1)
        out[0, t] = v[seg + (((t * 7 + 3) & 31) & (width - 1))]
        out[1, t] = v[t - 3] if lw >= 3 else v[t]
        out[2, t] = v[t + 5] if lw + 5 < width else v[t]
        s = t ^ 6
        out[3, t] = v[t] if (s & ~(width - 1)) > seg else v[s]
    return out


@pytest.mark.parametrize("T,dt", [("int", np.int32), ("double", np.float64), ("long long", np.int64),
                                  ("float", np.float32)])
@pytest.mark.parametrize("width", [32, 16, 8, 4, 2, 1])
def test_shuffles(mod, T, dt, width):
    n = 64
    v = (np.arange(n) * 1000003 % 977 - 300).astype(dt)
    if dt == np.int64:
        v = v * (2**33)
    vg = cupy.asarray(v)
    out = cupy.zeros(4 * n, dtype=dt)
    mod.get_function(f"shuffles<{T}>")((1,), (n,), (ptr(vg), ptr(out), np.int32(width)))
    np.testing.assert_array_equal(cupy.asnumpy(out).reshape(4, n), _ref_shuffles(v, width))


def test_votes(mod):
    n = 96
    pred = (np.arange(n) % 3 == 0).astype(np.int32)
    pred[64:] = 1        # warp 2: all true
    pg, out = cupy.asarray(pred), cupy.zeros(4 * n, dtype=np.uint32)
    mod.get_function("votes")((1,), (n,), (ptr(pg), ptr(out)))
    o = cupy.asnumpy(out).reshape(n, 4)
    for t in range(n):
        w = pred[t // 32 * 32:(t // 32 + 1) * 32]
        assert o[t, 0] == int(w.any()) and o[t, 1] == int(w.all())
        assert o[t, 2] == sum(1 << i for i in range(32) if w[i])
        assert o[t, 3] == int(pred.sum()) | (int(pred.all()) << 16) | (int(pred.any()) << 17)


def test_block_sum_3d_block_2d_grid(mod):
    v = np.random.default_rng(0).normal(size=(6, 128))
    vg, out = cupy.asarray(v), cupy.zeros(6)   # (a temporary's memory could be reused before the launch)
    mod.get_function("block_sum")((3, 2), (8, 4, 4), (ptr(vg), ptr(out)))
    np.testing.assert_allclose(cupy.asnumpy(out), v.sum(axis=1), rtol=1e-12)


def test_launch_bounds_and_block_limits(mod):
    f = mod.get_function("block_sum")
    out = cupy.zeros(1)
    with pytest.raises(CUDADriverError, match="INVALID_VALUE.*launch_bounds"):
        f((1,), (256,), (ptr(out), ptr(out)))
    with pytest.raises(CUDADriverError, match="INVALID_VALUE"):
        f((1,), (2048,), (ptr(out), ptr(out)))


def test_dynamic_shared_memory_limit(mod):
    f = mod.get_function("dyn_smem")
    n = 16000          # 64000 bytes: more than 48 KiB
    v = np.arange(n, dtype=np.float32)
    vg, out = cupy.asarray(v), cupy.zeros(1, dtype=np.float32)
    with pytest.raises(CUDADriverError, match="INVALID_VALUE"):
        f((1,), (128,), (ptr(vg), ptr(out), np.int32(n)), shared_mem=4 * n)
    f.max_dynamic_shared_size_bytes = 4 * n
    f((1,), (128,), (ptr(vg), ptr(out), np.int32(n)), shared_mem=4 * n)
    assert float(out[0]) == float(np.cumsum(v[::-1], dtype=np.float32)[-1])   # the kernel's order


def test_uninitialised_shared_memory_reads_nan(mod):
    out = cupy.zeros(4)
    mod.get_function("uninit_read")((1,), (4,), (ptr(out),))
    assert np.isnan(cupy.asnumpy(out)).all()


def test_cluster_exchange(mod):
    out = cupy.zeros(8, dtype=np.int32)
    mod.get_function("cluster_swap")((8,), (64,), (ptr(out),))
    assert cupy.asnumpy(out).tolist() == [1, 0, 3, 2, 5, 4, 7, 6]
    with pytest.raises(CUDADriverError, match="INVALID_VALUE.*multiple of the cluster size"):
        mod.get_function("cluster_swap")((7,), (64,), (ptr(out),))


@pytest.mark.parametrize("kernel,block,pattern", [
    ("deadlock", 64, "deadlock: .* at __syncthreads .* at __shfl_sync"),
    ("divergent_sync", 64, "different __syncthreads call sites"),
    ("partial_mask", 32, "full-warp masks only"),
    ("mixed_warp_ops", 32, "different warp operations"),
    ("read_exited_lane", 32, "reads lane 1[6-9]|reads lane 2|reads lane 3"),
    ("smem_overflow", 32, "write past the end of shared variable s"),
    ("cluster_exit_early", 64, "block rank 0, which has exited"),
    ("cluster_double_arrive", 32, "twice without"),
    ("cp_not_waited", 32, "exited with 1 cp.async copies not waited for"),
    ("cp_write_pending", 32, "written while a cp.async copy to it was pending"),
    ("cp_same_dst", 32, "earlier copy of this thread to it is pending"),
    ("cp_misaligned", 32, "cp.async of 16 bytes .* misaligned"),
])
def test_faults(mod, kernel, block, pattern):
    from cupy import _emu
    if kernel == "smem_overflow" and _emu.asan():
        pytest.skip("under AddressSanitizer the shared-memory red zones report this (and abort)")
    out = cupy.zeros(64, dtype=np.int32)
    grid = 2 if kernel.startswith("cluster") else 1
    with pytest.raises(CUDADriverError, match="LAUNCH_FAILED") as info:
        mod.get_function(kernel)((grid,), (block,), (ptr(out),))
    import re
    assert re.search(pattern, str(info.value).replace("clu_ster", "cluster")), str(info.value)
    assert "invalid argument" not in str(info.value) and "cluster" not in str(info.value)


def test_cp_async_lands_at_the_wait(mod):
    n = 64
    v = np.arange(1.0, n + 1)
    vg, out = cupy.asarray(v), cupy.zeros(2 * n)
    mod.get_function("cp_premature")((1,), (n,), (ptr(vg), ptr(out)))
    o = cupy.asnumpy(out)
    assert np.isnan(o[:n]).all()                       # before the wait: poisoned, not the old -1
    np.testing.assert_array_equal(o[n:], np.roll(v, -1))


def test_cp_async_groups(mod):
    v = np.arange(1.0, 97.0)
    vg, out = cupy.asarray(v), cupy.zeros(9 * 32)
    mod.get_function("cp_groups")((1,), (32,), (ptr(vg), ptr(out)))
    o = cupy.asnumpy(out).reshape(32, 3, 3)             # [thread, wait, copy a/b/c]
    a, b, c = v[:32], v[32:64], v[64:]
    landed = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]], bool)
    for w in range(3):
        for k, ref in enumerate((a, b, c)):
            if landed[w, k]:
                np.testing.assert_array_equal(o[:, w, k], ref)
            else:
                assert np.isnan(o[:, w, k]).all(), (w, k)


def test_argument_checks(mod):
    f = mod.get_function("takes_i64")
    out = cupy.zeros(1)
    with pytest.raises(TypeError, match="8-byte signed integer"):
        f((1,), (1,), (np.int32(5), ptr(out)))
    with pytest.raises(TypeError, match="2 kernel parameters"):
        f((1,), (1,), (np.int64(5),))
    f((1,), (1,), (np.int64(5), out))      # an array passes as its pointer
    assert float(out[0]) == 5.0


def test_arrays_behave_like_cupy():
    a = cupy.asarray(np.arange(6.0).reshape(2, 3))
    assert type(a).__module__ == "cupy" and not isinstance(a, np.ndarray)
    from cupy import _emu
    assert a.data.ptr % (16 if _emu.asan() else 256) == 0 and a.device.id == 0
    with pytest.raises(TypeError):
        np.asarray(a)
    with pytest.raises(TypeError):
        a + np.ones((2, 3))
    assert isinstance(a[0, 1], cupy.ndarray) and a[0, 1].shape == () and float(a[0, 1]) == 1.0
    assert cupy.asnumpy(a.T.copy()).tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    b = a[:, 1:]
    assert b.data.ptr == a.data.ptr + 8 and not b.flags.c_contiguous
    assert cupy.ascontiguousarray(a) is a and cupy.asarray(a) is a
    assert float((a * 2).sum()) == 30.0 and int(cupy.argmax(a)) == 5
