// The job table of scale_nv12.cu: one entry per output plane. Layout shared with Rust
// (src/backend/cuda/kernels.rs, #[repr(C)] ScalePlaneJob).
#pragma once

struct ScalePlaneJob {
    unsigned char* dst;     // output plane (Y, or interleaved UV)
    const short* hcoef;     // dst_w * htaps horizontal coefficients
    const int* hstart;      // dst_w first source samples
    const short* vcoef;     // dst_h * vtaps vertical coefficients
    const int* vstart;      // dst_h first source rows
    short* inter;           // dst_h rows of the vertical pass (source samples * channels each)
    int dst_pitch;          // bytes between output rows
    int dst_w;              // samples per channel
    int dst_h;
    int channels;           // 1 = luma, 2 = interleaved UV
    int htaps;
    int vtaps;
    int inter_pitch;        // int16s between rows of `inter`
};
