// A simulated CUDA driver (libcuda.so.1) for tests on machines without a GPU. Device memory is
// host memory; a kernel launch runs the kernel's CPU twin (kernels/twin/). Every call checks
// what the real driver would reject (no context, unknown pointers, copies out of bounds,
// oversized blocks), and any entry point can be told to fail like the driver does:
//   GPUWORKER_SIM_FAIL=cuMemAlloc_v2:3:2  -> the 3rd cuMemAlloc_v2 returns error 2 (out of memory)
// Only the entry points gpuworker's cuda backend calls (through cudarc) exist.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../../kernels/twin/shim.h"
#include "sim_common.h"
#include "../../kernels/scale_nv12.cu"

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef void* CUcontext;
typedef void* CUmodule;
typedef void* CUfunction;
typedef void* CUstream;

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_IMAGE = 200,
    CUDA_ERROR_NO_BINARY_FOR_GPU = 209,
    CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
};

namespace {
std::mutex mu;
bool initialised = false;
// Devices: GPUWORKER_SIM_DEVICES (default 1), one primary context each.
const int max_devices = 8;
int context_tokens[max_devices];
// Primary context references per device, and how often a primary context was created again
// after its last reference went (the driver resets it then: modules, NVDEC and NVENC state
// all go; real-gpu-rules.md R8).
int retains[max_devices];
bool ever_retained[max_devices];
size_t context_reinits = 0;
thread_local CUcontext current = nullptr;
int device_count() {
    const char* n = getenv("GPUWORKER_SIM_DEVICES");
    int d = n ? atoi(n) : 1;
    return d < 1 ? 1 : (d > max_devices ? max_devices : d);
}
bool is_context(CUcontext c) {
    return c >= (CUcontext)&context_tokens[0] && c < (CUcontext)&context_tokens[max_devices];
}
std::map<uintptr_t, size_t> allocations;  // base -> size
// Stream-ordered allocations (cuMemAllocAsync, the device's default memory pool): NVENC refuses
// to register them (real-gpu-rules.md R1), which the simulated libnvidia-encode asks about.
std::map<uintptr_t, size_t> pool_allocations;

// Streams. Work queued on a stream made by cuStreamCreate runs only when something waits for
// it (cuStreamSynchronize, cuCtxSynchronize, or legacy-stream work for a blocking stream), so
// a missing synchronisation shows as stale bytes, as on a GPU. The legacy NULL stream runs
// work at once but first waits for every blocking stream, and serialises everything in the
// context: real-gpu-rules.md R6 wants it unused, so its uses are counted for the exit report.
// (CUDA Driver API, "Stream synchronization behavior": the legacy default stream waits for all
// blocking streams, and streams created with CU_STREAM_NON_BLOCKING do not wait for it.)
struct Stream {
    unsigned flags;
    std::vector<std::function<void()>> ops;
};
std::set<Stream*> streams;
size_t legacy_stream_ops = 0;
const unsigned CU_STREAM_NON_BLOCKING = 1;

void flush(Stream* s) {
    for (auto& op : s->ops) op();
    s->ops.clear();
}

// Queues `op` on `s`, or runs it now on the legacy stream. Returns false for an unknown stream.
bool enqueue(CUstream s, std::function<void()> op) {
    if (s == nullptr) {
        for (auto* o : streams)
            if (!(o->flags & CU_STREAM_NON_BLOCKING)) flush(o);
        legacy_stream_ops++;
        op();
        return true;
    }
    auto* st = (Stream*)s;
    if (!streams.count(st)) return false;
    st->ops.push_back(std::move(op));
    return true;
}

// GPUWORKER_SIM_REPORT=1: at exit, report device memory still allocated (leaks).
struct Report {
    ~Report() {
        if (getenv("GPUWORKER_SIM_REPORT"))
            fprintf(stderr,
                    "gpuworker-sim libcuda: live allocations=%zu context_reinits=%zu "
                    "streams=%zu legacy_stream_ops=%zu\n",
                    allocations.size() + pool_allocations.size(), context_reinits,
                    streams.size(), legacy_stream_ops);
    }
} report;
int module_token = 0;
// The scale kernel's two passes.
int vertical_token = 0, horizontal_token = 0;

// Whether [p, p + len) lies inside one allocation of `in`.
bool in_range(const std::map<uintptr_t, size_t>& in, CUdeviceptr p, size_t len) {
    auto it = in.upper_bound((uintptr_t)p);
    if (it == in.begin()) return false;
    --it;
    return (uintptr_t)p >= it->first && (uintptr_t)p + len <= it->first + it->second;
}
// Whether [p, p + len) lies inside one allocation, plain or from the pool.
bool device_range(CUdeviceptr p, size_t len) {
    return in_range(allocations, p, len) || in_range(pool_allocations, p, len);
}

#define CHECK_FAIL(name)                   \
    do {                                   \
        CUresult e_ = sim::injected("libcuda", name); \
        if (e_) return e_;                 \
    } while (0)
#define NEED_CONTEXT()                                          \
    do {                                                        \
        if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;    \
        if (!is_context(current)) return CUDA_ERROR_INVALID_CONTEXT; \
    } while (0)
}  // namespace

extern "C" {

CUresult cuInit(unsigned flags) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuInit");
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    initialised = true;
    return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int* v) {
    *v = sim::driver_version();
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int* n) {
    if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
    *n = device_count();
    return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuDeviceGet");
    if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
    if (ordinal < 0 || ordinal >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    *d = ordinal;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char* name, int len, CUdevice d) {
    if (d < 0 || d >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    snprintf(name, len, "%s %d (simulated, sm_%d, CPU twins)", sim::card().name, d, sim::sm());
    return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice d) {
    if (d < 0 || d >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = (size_t)sim::card().memory_gib << 30;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice d) {
    if (d < 0 || d >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    switch (attr) {
        case 75: *v = sim::sm() / 10; break;  // COMPUTE_CAPABILITY_MAJOR
        case 76: *v = sim::sm() % 10; break;  // COMPUTE_CAPABILITY_MINOR
        // MEMORY_POOLS_SUPPORTED: yes, as on every GPU since Pascal with a current driver
        // (T4, A10, L4, RTX 40xx, H100), so cudarc's CudaStream::alloc takes cuMemAllocAsync.
        case 115: *v = 1; break;
        case 1: *v = 1024; break;  // MAX_THREADS_PER_BLOCK
        case 16: *v = 132; break;  // MULTIPROCESSOR_COUNT
        default: *v = 0; break;
    }
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice d) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuDevicePrimaryCtxRetain");
    if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
    if (d < 0 || d >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    if (retains[d]++ == 0) {
        if (ever_retained[d]) context_reinits++;
        ever_retained[d] = true;
    }
    *c = &context_tokens[d];
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
    std::lock_guard<std::mutex> g(mu);
    if (d < 0 || d >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    if (retains[d] == 0) return CUDA_ERROR_INVALID_CONTEXT;
    retains[d]--;
    return CUDA_SUCCESS;
}

// Scheduling flags of the primary context (CU_CTX_SCHED_*: 0 auto, 1 spin, 2 yield, 4
// blocking sync); anything else is refused, as the driver does.
CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice d, unsigned flags) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuDevicePrimaryCtxSetFlags_v2");
    if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
    if (d < 0 || d >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    if (flags & ~0x1fu) return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
}

CUresult cuCtxGetCurrent(CUcontext* c) {
    *c = current;
    return CUDA_SUCCESS;
}

CUresult cuCtxSetCurrent(CUcontext c) {
    if (c != nullptr && !is_context(c)) return CUDA_ERROR_INVALID_CONTEXT;
    current = c;
    return CUDA_SUCCESS;
}

CUresult cuCtxSynchronize() {
    std::lock_guard<std::mutex> g(mu);
    NEED_CONTEXT();
    for (auto* o : streams) flush(o);
    return CUDA_SUCCESS;
}

CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuMemAlloc_v2");
    NEED_CONTEXT();
    void* m = malloc(bytes ? bytes : 1);
    if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
    memset(m, 0xCD, bytes);  // device memory is not zeroed
    allocations[(uintptr_t)m] = bytes;
    *p = (CUdeviceptr)(uintptr_t)m;
    return CUDA_SUCCESS;
}

CUresult cuMemFree_v2(CUdeviceptr p) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuMemFree_v2");
    NEED_CONTEXT();
    auto it = allocations.find((uintptr_t)p);
    if (it == allocations.end()) return CUDA_ERROR_INVALID_VALUE;
    free((void*)it->first);
    allocations.erase(it);
    return CUDA_SUCCESS;
}

// Stream-ordered allocation from the device's default pool (what cudarc's CudaStream::alloc
// and CudaSlice::drop use when MEMORY_POOLS_SUPPORTED is 1). Like every allocation call it
// needs a current context, and so does the free (the real driver resolves the stream and the
// pool through it).
CUresult cuMemAllocAsync(CUdeviceptr* p, size_t bytes, CUstream s) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuMemAllocAsync");
    NEED_CONTEXT();
    if (s != nullptr) return CUDA_ERROR_INVALID_VALUE;
    void* m = malloc(bytes ? bytes : 1);
    if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
    memset(m, 0xCD, bytes);
    pool_allocations[(uintptr_t)m] = bytes;
    *p = (CUdeviceptr)(uintptr_t)m;
    return CUDA_SUCCESS;
}

CUresult cuMemFreeAsync(CUdeviceptr p, CUstream s) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuMemFreeAsync");
    NEED_CONTEXT();
    if (s != nullptr) return CUDA_ERROR_INVALID_VALUE;
    auto it = pool_allocations.find((uintptr_t)p);
    if (it == pool_allocations.end()) return CUDA_ERROR_INVALID_VALUE;
    free((void*)it->first);
    pool_allocations.erase(it);
    return CUDA_SUCCESS;
}

// Copies on a stream: the host source is read at the call (pageable memory is staged, so
// the caller may reuse its buffer at once), the device written when the stream runs; a
// download lands in host memory only then.
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, CUstream s) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuMemcpyHtoDAsync_v2");
    NEED_CONTEXT();
    if (!device_range(dst, n)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    auto staged = std::make_shared<std::vector<unsigned char>>(
        (const unsigned char*)src, (const unsigned char*)src + n);
    bool ok = enqueue(s, [dst, staged] {
        memcpy((void*)(uintptr_t)dst, staged->data(), staged->size());
    });
    return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, CUstream s) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuMemcpyDtoHAsync_v2");
    NEED_CONTEXT();
    if (!device_range(src, n)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    bool ok = enqueue(s, [dst, src, n] { memcpy(dst, (const void*)(uintptr_t)src, n); });
    return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult cuStreamCreate(CUstream* out, unsigned flags) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuStreamCreate");
    NEED_CONTEXT();
    if (!out || (flags & ~CU_STREAM_NON_BLOCKING)) return CUDA_ERROR_INVALID_VALUE;
    auto* st = new Stream{flags, {}};
    streams.insert(st);
    *out = st;
    return CUDA_SUCCESS;
}

CUresult cuStreamDestroy_v2(CUstream s) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuStreamDestroy_v2");
    NEED_CONTEXT();
    auto* st = (Stream*)s;
    if (!streams.erase(st)) return CUDA_ERROR_INVALID_HANDLE;
    flush(st);  // work already queued still completes
    delete st;
    return CUDA_SUCCESS;
}

CUresult cuStreamSynchronize(CUstream s) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuStreamSynchronize");
    NEED_CONTEXT();
    if (s == nullptr) {
        for (auto* o : streams)
            if (!(o->flags & CU_STREAM_NON_BLOCKING)) flush(o);
        return CUDA_SUCCESS;
    }
    auto* st = (Stream*)s;
    if (!streams.count(st)) return CUDA_ERROR_INVALID_HANDLE;
    flush(st);
    return CUDA_SUCCESS;
}

// The architecture a cubin was built for. ELF ABI version 7 (what NVRTC 12.x writes) keeps
// it in the low byte of e_flags (EF_CUDA_SM, as cuobjdump reads it); version 8 (CUDA 13) in
// bits 8-15.
int cubin_sm(const unsigned char* b) {
    uint32_t flags;
    memcpy(&flags, b + 0x30, 4);
    return b[8] >= 8 ? (int)((flags >> 8) & 0xff) : (int)(flags & 0xff);
}

// The highest PTX ISA version a driver of CUDA version `v` compiles (PTX ISA release notes:
// 8.0 CUDA 12.0 ... 8.5 CUDA 12.5/12.6, 8.6 12.7, 8.7 12.8, 8.8 12.9, 9.0 13.0), times 10.
int ptx_isa_of_driver(int v) {
    int major = v / 1000, minor = (v % 1000) / 10;
    if (major >= 13) return 90;
    if (major < 12) return 78;
    static const int isa[] = {80, 81, 82, 83, 84, 85, 85, 86, 87, 88};
    return isa[minor < 10 ? minor : 9];
}

// A cubin (ELF) or PTX text that defines the scale_nv12 or color kernels, loaded as the
// driver would (real-gpu-rules.md R2): a cubin only on its own major version with a minor no
// higher than the device's, PTX only for a target no higher than the device and an ISA
// version the driver knows.
CUresult cuModuleLoadData(CUmodule* m, const void* image) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuModuleLoadData");
    NEED_CONTEXT();
    const unsigned char* b = (const unsigned char*)image;
    bool elf = b[0] == 0x7f && b[1] == 'E' && b[2] == 'L' && b[3] == 'F';
    int device = sim::sm();
    if (elf) {
        int arch = cubin_sm(b);
        if (arch / 10 != device / 10 || arch > device) return CUDA_ERROR_NO_BINARY_FOR_GPU;
    } else {
        const char* text = (const char*)image;
        if (!strstr(text, ".entry scale_nv12_vertical") && !strstr(text, ".entry nv12_to_rgb"))
            return CUDA_ERROR_INVALID_IMAGE;
        int vmaj = 0, vmin = 0, target = 0;
        const char* v = strstr(text, "\n.version ");
        const char* t = strstr(text, "\n.target sm_");
        if (!v || !t || sscanf(v, "\n.version %d.%d", &vmaj, &vmin) != 2 ||
            sscanf(t, "\n.target sm_%d", &target) != 1)
            return CUDA_ERROR_INVALID_IMAGE;
        if (vmaj * 10 + vmin > ptx_isa_of_driver(sim::driver_version()))
            return CUDA_ERROR_UNSUPPORTED_PTX_VERSION;
        if (target > device) return CUDA_ERROR_NO_BINARY_FOR_GPU;
    }
    *m = &module_token;
    return CUDA_SUCCESS;
}

CUresult cuModuleUnload(CUmodule m) {
    return m == &module_token ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
    NEED_CONTEXT();
    if (m != &module_token) return CUDA_ERROR_INVALID_VALUE;
    if (strcmp(name, "scale_nv12_vertical") == 0)
        *f = &vertical_token;
    else if (strcmp(name, "scale_nv12_horizontal") == 0)
        *f = &horizontal_token;
    else
        return CUDA_ERROR_NOT_FOUND;
    return CUDA_SUCCESS;
}

// Every job's tables, intermediate and output lie in device memory (`vertical`: what the
// vertical pass touches, else the horizontal's). Read when the launch runs, as the kernel
// reads the job table then.
bool jobs_in_bounds(const ScalePlaneJob* jobs, unsigned n, int src_w, bool vertical) {
    for (unsigned z = 0; z < n; ++z) {
        const ScalePlaneJob& j = jobs[z];
        int samples = (j.channels == 2 ? (src_w + 1) / 2 : src_w) * j.channels;
        bool inter = j.inter_pitch >= samples &&
                     device_range((CUdeviceptr)j.inter, sizeof(short) * (size_t)j.inter_pitch * j.dst_h);
        bool ok = inter && (vertical ? device_range((CUdeviceptr)j.vcoef, sizeof(short) * j.dst_h * j.vtaps) &&
                                           device_range((CUdeviceptr)j.vstart, sizeof(int) * j.dst_h)
                                     : device_range((CUdeviceptr)j.dst, (size_t)j.dst_pitch * j.dst_h) &&
                                           device_range((CUdeviceptr)j.hcoef, sizeof(short) * j.dst_w * j.htaps) &&
                                           device_range((CUdeviceptr)j.hstart, sizeof(int) * j.dst_w) &&
                                           j.dst_pitch >= j.dst_w * j.channels);
        if (!ok) return false;
    }
    return true;
}

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned shared, CUstream s, void** params,
                        void** extra) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuLaunchKernel");
    NEED_CONTEXT();
    bool vertical = f == &vertical_token;
    if ((!vertical && f != &horizontal_token) || extra != nullptr || params == nullptr)
        return CUDA_ERROR_INVALID_VALUE;
    if ((unsigned long long)bx * by * bz > 1024 || shared > 0) return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
    std::function<void()> run;
    const ScalePlaneJob* jobs;
    int src_w;
    if (vertical) {
        const unsigned char* src_y = *(const unsigned char**)params[0];
        int pitch_y = *(int*)params[1];
        const unsigned char* src_uv = *(const unsigned char**)params[2];
        int pitch_uv = *(int*)params[3];
        src_w = *(int*)params[4];
        int src_h = *(int*)params[5];
        jobs = *(const ScalePlaneJob**)params[6];
        // The source must be device memory.
        if (!device_range((CUdeviceptr)src_y, (size_t)pitch_y * src_h) ||
            !device_range((CUdeviceptr)src_uv, (size_t)pitch_uv * ((src_h + 1) / 2)))
            return CUDA_ERROR_ILLEGAL_ADDRESS;
        run = [=] {
            twin_launch({gx, gy, gz}, {bx, by, bz}, [&] {
                scale_nv12_vertical(src_y, pitch_y, src_uv, pitch_uv, src_w, src_h, jobs);
            });
        };
    } else {
        src_w = *(int*)params[0];
        jobs = *(const ScalePlaneJob**)params[1];
        run = [=] {
            twin_launch({gx, gy, gz}, {bx, by, bz}, [&] { scale_nv12_horizontal(src_w, jobs); });
        };
    }
    if (!device_range((CUdeviceptr)jobs, sizeof(ScalePlaneJob) * gz)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    // The job table may still be queued for upload on this stream: it is checked when the
    // launch runs; a real GPU faults there, and the context is lost.
    auto checked = [=] {
        if (!jobs_in_bounds(jobs, gz, src_w, vertical)) {
            fprintf(stderr, "sim libcuda: a scale job out of bounds (illegal address)\n");
            abort();
        }
        run();
    };
    return enqueue(s, checked) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

// For the simulated NVDEC and NVENC libraries: whether a range is device memory, and whether
// a pointer is a context (not part of the CUDA API).
int gpuworker_sim_device_range(CUdeviceptr p, size_t len) {
    std::lock_guard<std::mutex> g(mu);
    return device_range(p, len) ? 1 : 0;
}

// Queues fn(arg) on stream s (the simulated NVDEC maps onto CUVIDPROCPARAMS::output_stream).
int gpuworker_sim_enqueue(void* s, void (*fn)(void*), void* arg) {
    std::lock_guard<std::mutex> g(mu);
    return enqueue((CUstream)s, [fn, arg] { fn(arg); }) ? 0 : 1;
}

int gpuworker_sim_is_pool_memory(CUdeviceptr p) {
    std::lock_guard<std::mutex> g(mu);
    return in_range(pool_allocations, p, 1) ? 1 : 0;
}

int gpuworker_sim_is_context(void* c) {
    return is_context((CUcontext)c) ? 1 : 0;
}

CUresult cuGetErrorString(CUresult e, const char** s) {
    static char buf[64];
    snprintf(buf, sizeof buf, "simulated CUDA error %d", e);
    *s = buf;
    return CUDA_SUCCESS;
}

CUresult cuGetErrorName(CUresult e, const char** s) {
    return cuGetErrorString(e, s);
}

}  // extern "C"
