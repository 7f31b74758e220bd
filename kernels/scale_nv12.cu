// Multi-rendition NV12 resize in two separable passes; each launch covers every plane of
// every rendition of a ladder (blockIdx.z selects the plane's job).
//
// The arithmetic is the contract in src/scale/filter.rs, shared with the CPU scaler so that
// both produce the same bytes:
//   vertical:   inter = clamp_i16((sum_k src[vstart + k][x] * vcoef[k] + (1 << 7)) >> 8)
//   horizontal: out   = clamp_u8((sum_k inter[hstart + k] * hcoef[k] + (1 << 19)) >> 20)
// with inter = 0 past the source width (the CPU scaler's zero padding).
//
// scale_nv12_vertical writes `inter` for every source column of each output row into the
// job's int16 intermediate; scale_nv12_horizontal, launched after it on the same stream,
// filters those rows. Per output sample this reads (source width / output width) * vtaps
// source bytes plus htaps intermediates, where a single pass recomputed the vertical sum for
// every horizontal tap (htaps * vtaps reads): see BENCHMARKS.md, "Separable scale kernel".
//
// The same source compiles as C++ for the CPU twin (kernels/twin/), which the tests run
// against the Rust scaler bit for bit.

#include "scale_nv12.h"

__device__ __forceinline__ int clamp_int(int v, int lo, int hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

// x covers the plane's source samples (width * channels, interleaved UV as stored), y its
// output rows.
extern "C" __global__ void scale_nv12_vertical(const unsigned char* __restrict__ src_y,
                                               int pitch_y,
                                               const unsigned char* __restrict__ src_uv,
                                               int pitch_uv, int src_w, int src_h,
                                               const ScalePlaneJob* __restrict__ jobs) {
    const ScalePlaneJob& job = jobs[blockIdx.z];
    const int chroma = job.channels == 2;
    const int samples = (chroma ? (src_w + 1) / 2 : src_w) * job.channels;
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= samples || y >= job.dst_h) {
        return;
    }
    const unsigned char* src = chroma ? src_uv : src_y;
    const int pitch = chroma ? pitch_uv : pitch_y;
    const short* vc = job.vcoef + y * job.vtaps;
    const unsigned char* col = src + (long long)job.vstart[y] * pitch + x;
    int acc_v = 1 << 7;
    for (int kv = 0; kv < job.vtaps; ++kv) {
        acc_v += (int)col[(long long)kv * pitch] * (int)vc[kv];
    }
    job.inter[(long long)y * job.inter_pitch + x] = (short)clamp_int(acc_v >> 8, -32768, 32767);
}

// x and y cover the plane's output (in samples per channel).
extern "C" __global__ void scale_nv12_horizontal(int src_w, const ScalePlaneJob* __restrict__ jobs) {
    const ScalePlaneJob& job = jobs[blockIdx.z];
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= job.dst_w || y >= job.dst_h) {
        return;
    }
    const int width = job.channels == 2 ? (src_w + 1) / 2 : src_w;
    const int hstart = job.hstart[x];
    const short* hc = job.hcoef + x * job.htaps;
    const short* row = job.inter + (long long)y * job.inter_pitch;
    for (int c = 0; c < job.channels; ++c) {
        int acc_h = 0;
        for (int kh = 0; kh < job.htaps; ++kh) {
            const int sx = hstart + kh;
            if (sx >= width || hc[kh] == 0) {
                continue;  // zero padding past the source width, or a zero tap
            }
            acc_h += (int)row[sx * job.channels + c] * (int)hc[kh];
        }
        const int out = clamp_int((acc_h + (1 << 19)) >> 20, 0, 255);
        job.dst[(long long)y * job.dst_pitch + x * job.channels + c] = (unsigned char)out;
    }
}
