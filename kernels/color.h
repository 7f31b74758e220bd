// NV12 <-> planar RGB float conversions for the diffusion stage (BT.709, limited range), in
// integer arithmetic so that every implementation (CUDA, its CPU twin, the Rust reference in
// src/scale/color.rs) gives the same bits:
//   to RGB:  c = Y - 16, d = U - 128, e = V - 128
//            R = clamp((298c + 459e + 128) >> 8), G = clamp((298c - 55d - 136e + 128) >> 8),
//            B = clamp((298c + 541d + 128) >> 8); float = value / 255
//   to NV12: q = clamp(int(x * 255 + 0.5)) per channel (two separately rounded float ops);
//            Y = ((47R + 157G + 16B + 128) >> 8) + 16 per pixel;
//            on the 2x2 average (sum + 2) >> 2 of each channel:
//            U = ((-26R - 87G + 112B + 128) >> 8) + 128, V = ((112R - 102G - 10B + 128) >> 8) + 128
#pragma once

struct ColorFrame {
    unsigned char* y;   // NV12 luma
    unsigned char* uv;  // NV12 interleaved chroma
    float* rgb;         // planar R, G, B, each width * height floats in [0, 1]
    int pitch_y;
    int pitch_uv;
    int width;
    int height;
};
