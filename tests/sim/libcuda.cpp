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
#include <map>
#include <mutex>
#include <string>

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
    CUDA_ERROR_INVALID_CONTEXT = 201,
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

// GPUWORKER_SIM_REPORT=1: at exit, report device memory still allocated (leaks).
struct Report {
    ~Report() {
        if (getenv("GPUWORKER_SIM_REPORT"))
            fprintf(stderr, "gpuworker-sim libcuda: live allocations=%zu\n",
                    allocations.size() + pool_allocations.size());
    }
} report;
int module_token = 0;
int function_token = 0;

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
    *v = 12090;
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
    snprintf(name, len, "gpuworker simulated GPU %d (sm_90, CPU twins)", d);
    return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice d) {
    if (d < 0 || d >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = (size_t)8 << 30;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice d) {
    if (d < 0 || d >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    switch (attr) {
        case 75: *v = 9; break;    // COMPUTE_CAPABILITY_MAJOR
        case 76: *v = 0; break;    // COMPUTE_CAPABILITY_MINOR
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
    *c = &context_tokens[d];
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
    return d >= 0 && d < device_count() ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
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
    NEED_CONTEXT();
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

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, CUstream s) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuMemcpyHtoDAsync_v2");
    NEED_CONTEXT();
    if (s != nullptr) return CUDA_ERROR_INVALID_VALUE;  // the backend uses the default stream
    if (!device_range(dst, n)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    memcpy((void*)(uintptr_t)dst, src, n);
    return CUDA_SUCCESS;
}

CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, CUstream s) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuMemcpyDtoHAsync_v2");
    NEED_CONTEXT();
    if (s != nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (!device_range(src, n)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    memcpy(dst, (const void*)(uintptr_t)src, n);
    return CUDA_SUCCESS;
}

CUresult cuStreamSynchronize(CUstream s) {
    NEED_CONTEXT();
    return s == nullptr ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuModuleLoadData(CUmodule* m, const void* image) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuModuleLoadData");
    NEED_CONTEXT();
    // A cubin (ELF) or PTX text that defines the scale_nv12 entry.
    const unsigned char* b = (const unsigned char*)image;
    bool elf = b[0] == 0x7f && b[1] == 'E' && b[2] == 'L' && b[3] == 'F';
    bool ptx = !elf && strstr((const char*)image, ".entry scale_nv12") != nullptr;
    if (!elf && !ptx) return CUDA_ERROR_INVALID_IMAGE;
    *m = &module_token;
    return CUDA_SUCCESS;
}

CUresult cuModuleUnload(CUmodule m) {
    return m == &module_token ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
    NEED_CONTEXT();
    if (m != &module_token) return CUDA_ERROR_INVALID_VALUE;
    if (strcmp(name, "scale_nv12") != 0) return CUDA_ERROR_NOT_FOUND;
    *f = &function_token;
    return CUDA_SUCCESS;
}

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned shared, CUstream s, void** params,
                        void** extra) {
    std::lock_guard<std::mutex> g(mu);
    CHECK_FAIL("cuLaunchKernel");
    NEED_CONTEXT();
    if (f != &function_token || s != nullptr || extra != nullptr || params == nullptr)
        return CUDA_ERROR_INVALID_VALUE;
    if ((unsigned long long)bx * by * bz > 1024 || shared > 0) return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
    const unsigned char* src_y = *(const unsigned char**)params[0];
    int pitch_y = *(int*)params[1];
    const unsigned char* src_uv = *(const unsigned char**)params[2];
    int pitch_uv = *(int*)params[3];
    int src_w = *(int*)params[4];
    int src_h = *(int*)params[5];
    const ScalePlaneJob* jobs = *(const ScalePlaneJob**)params[6];
    // Everything the kernel touches must be device memory.
    if (!device_range((CUdeviceptr)src_y, (size_t)pitch_y * src_h) ||
        !device_range((CUdeviceptr)src_uv, (size_t)pitch_uv * ((src_h + 1) / 2)) ||
        !device_range((CUdeviceptr)jobs, sizeof(ScalePlaneJob) * gz))
        return CUDA_ERROR_ILLEGAL_ADDRESS;
    for (unsigned z = 0; z < gz; ++z) {
        const ScalePlaneJob& j = jobs[z];
        if (!device_range((CUdeviceptr)j.dst, (size_t)j.dst_pitch * j.dst_h) ||
            !device_range((CUdeviceptr)j.hcoef, sizeof(short) * j.dst_w * j.htaps) ||
            !device_range((CUdeviceptr)j.vcoef, sizeof(short) * j.dst_h * j.vtaps) ||
            !device_range((CUdeviceptr)j.hstart, sizeof(int) * j.dst_w) ||
            !device_range((CUdeviceptr)j.vstart, sizeof(int) * j.dst_h) ||
            j.dst_pitch < j.dst_w * j.channels)
            return CUDA_ERROR_ILLEGAL_ADDRESS;
    }
    twin_launch({gx, gy, gz}, {bx, by, bz}, [&] {
        scale_nv12(src_y, pitch_y, src_uv, pitch_uv, src_w, src_h, jobs);
    });
    return CUDA_SUCCESS;
}

// For the simulated NVDEC and NVENC libraries: whether a range is device memory, and whether
// a pointer is a context (not part of the CUDA API).
int gpuworker_sim_device_range(CUdeviceptr p, size_t len) {
    std::lock_guard<std::mutex> g(mu);
    return device_range(p, len) ? 1 : 0;
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
