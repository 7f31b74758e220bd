// Shared by the simulated NVIDIA libraries: error injection and the hooks into the simulated
// libcuda (device memory ranges, contexts).
//   GPUWORKER_SIM_FAIL=name:nth:code   the nth call of entry point `name` returns `code`
//   GPUWORKER_SIM_REPORT=1             report resources still held at exit (leak check)
//   GPUWORKER_SIM_CARD=t4|l4|rtx4090|h100|rtx5090   a real card's profile (see sim::card)
//   GPUWORKER_SIM_SM=89                compute capability 8.9 (overrides the card's)
//   GPUWORKER_SIM_DRIVER=12080         the driver's CUDA version (cuDriverGetVersion)
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

extern "C" int gpuworker_sim_device_range(unsigned long long p, size_t len);
extern "C" int gpuworker_sim_is_context(void* c);
// Queues fn(arg) on a CUDA stream of the simulated libcuda (run when the stream is waited
// for; at once on the legacy NULL stream). 0 on success.
extern "C" int gpuworker_sim_enqueue(void* stream, void (*fn)(void*), void* arg);
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

// What the simulated GPU is. The default is a generic sm_90 card with NVENC and no session
// cap; the named profiles are the cards operators run, with their facts:
// - t4: Tesla T4, sm_75, 16 GB, NVENC without a session cap (datacenter);
// - l4: NVIDIA L4, sm_89, 24 GB, NVENC without a cap;
// - rtx4090: GeForce RTX 4090, sm_89, 24 GB, NVENC capped at 8 sessions (drivers since ~550,
//   keylase/nvidia-patch#776), counted across processes with GPUWORKER_SIM_NVENC_SYSTEM;
// - h100: H100 80GB HBM3, sm_90, no NVENC (NVDEC only; livekit/rust-sdks PR#1015);
// - rtx5090: GeForce RTX 5090, sm_120, 32 GB, NVENC capped at 8.
// Each driver is CUDA 12.9 (R575) unless GPUWORKER_SIM_DRIVER says otherwise.
struct Card {
    const char* key;
    const char* name;
    int sm;
    int memory_gib;
    bool nvenc;
    int nvenc_cap;  // 0: no cap
};

inline const Card& card() {
    static const Card cards[] = {
        {"generic", "gpuworker simulated GPU", 90, 8, true, 0},
        {"t4", "Tesla T4", 75, 16, true, 0},
        {"l4", "NVIDIA L4", 89, 24, true, 0},
        {"rtx4090", "NVIDIA GeForce RTX 4090", 89, 24, true, 8},
        {"h100", "NVIDIA H100 80GB HBM3", 90, 80, false, 0},
        {"rtx5090", "NVIDIA GeForce RTX 5090", 120, 32, true, 8},
    };
    static const Card* chosen = [] {
        const char* k = getenv("GPUWORKER_SIM_CARD");
        for (const Card& c : cards)
            if (k && strcmp(k, c.key) == 0) return &c;
        if (k) fprintf(stderr, "gpuworker-sim: unknown GPUWORKER_SIM_CARD '%s'\n", k);
        return &cards[0];
    }();
    return *chosen;
}

// The compute capability as major * 10 + minor.
inline int sm() {
    const char* v = getenv("GPUWORKER_SIM_SM");
    return v ? atoi(v) : card().sm;
}

// The driver's CUDA version as cuDriverGetVersion reports it (12090 = 12.9).
inline int driver_version() {
    const char* v = getenv("GPUWORKER_SIM_DRIVER");
    return v ? atoi(v) : 12090;
}
}  // namespace sim
