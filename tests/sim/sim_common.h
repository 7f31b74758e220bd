// Shared by the simulated NVIDIA libraries: error injection and the hooks into the simulated
// libcuda (device memory ranges, contexts).
//   GPUWORKER_SIM_FAIL=name:nth:code   the nth call of entry point `name` returns `code`
//   GPUWORKER_SIM_REPORT=1             report resources still held at exit (leak check)
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

extern "C" int gpuworker_sim_device_range(unsigned long long p, size_t len);
extern "C" int gpuworker_sim_is_context(void* c);
// Whether p lies in stream-ordered (memory-pool) memory from cuMemAllocAsync.
extern "C" int gpuworker_sim_is_pool_memory(unsigned long long p);

namespace sim {
inline std::mutex& calls_mu() {
    static std::mutex m;
    return m;
}

// The injected error for this call of `name`, or 0.
inline int injected(const char* lib, const char* name) {
    static std::map<std::string, int> calls;
    int n;
    {
        std::lock_guard<std::mutex> g(calls_mu());
        n = ++calls[name];
    }
    const char* spec = getenv("GPUWORKER_SIM_FAIL");
    if (!spec) return 0;
    char fname[128];
    int nth = 0, code = 0;
    if (sscanf(spec, "%127[^:]:%d:%d", fname, &nth, &code) == 3 && strcmp(fname, name) == 0 &&
        nth == n) {
        fprintf(stderr, "sim %s: injecting error %d into call %d of %s\n", lib, code, n, name);
        return code;
    }
    return 0;
}

inline bool report_wanted() { return getenv("GPUWORKER_SIM_REPORT") != nullptr; }
}  // namespace sim
