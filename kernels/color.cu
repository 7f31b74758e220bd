// NV12 <-> planar RGB float tensors (see color.h for the arithmetic contract). One thread per
// pixel (to RGB) or per 2x2 block (to NV12). The same source compiles as the CPU twin.
#include "color.h"

__device__ __forceinline__ int clamp_u8(int v) {
    return v < 0 ? 0 : (v > 255 ? 255 : v);
}

extern "C" __global__ void nv12_to_rgb(ColorFrame f) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= f.width || y >= f.height) {
        return;
    }
    const int c = (int)f.y[(long long)y * f.pitch_y + x] - 16;
    const unsigned char* uv = f.uv + (long long)(y / 2) * f.pitch_uv + (x / 2) * 2;
    const int d = (int)uv[0] - 128;
    const int e = (int)uv[1] - 128;
    const int r = clamp_u8((298 * c + 459 * e + 128) >> 8);
    const int g = clamp_u8((298 * c - 55 * d - 136 * e + 128) >> 8);
    const int b = clamp_u8((298 * c + 541 * d + 128) >> 8);
    const long long plane = (long long)f.width * f.height;
    const long long i = (long long)y * f.width + x;
    f.rgb[i] = (float)r / 255.0f;
    f.rgb[plane + i] = (float)g / 255.0f;
    f.rgb[2 * plane + i] = (float)b / 255.0f;
}

__device__ __forceinline__ int quantize(float v) {
    // Multiply and add rounded separately: no fused multiply-add, same bits everywhere.
    return clamp_u8((int)__fadd_rn(__fmul_rn(v, 255.0f), 0.5f));
}

extern "C" __global__ void rgb_to_nv12(ColorFrame f) {
    const int bx = blockIdx.x * blockDim.x + threadIdx.x;  // 2x2 block
    const int by = blockIdx.y * blockDim.y + threadIdx.y;
    if (2 * bx >= f.width || 2 * by >= f.height) {
        return;
    }
    const long long plane = (long long)f.width * f.height;
    int sr = 0, sg = 0, sb = 0;
    for (int dy = 0; dy < 2; ++dy) {
        for (int dx = 0; dx < 2; ++dx) {
            // Odd sizes: the last row/column repeats (edge clamp).
            const int x = 2 * bx + dx < f.width ? 2 * bx + dx : f.width - 1;
            const int y = 2 * by + dy < f.height ? 2 * by + dy : f.height - 1;
            const long long i = (long long)y * f.width + x;
            const int r = quantize(f.rgb[i]);
            const int g = quantize(f.rgb[plane + i]);
            const int b = quantize(f.rgb[2 * plane + i]);
            if (2 * bx + dx < f.width && 2 * by + dy < f.height) {
                f.y[(long long)y * f.pitch_y + x] =
                    (unsigned char)(((47 * r + 157 * g + 16 * b + 128) >> 8) + 16);
            }
            sr += r;
            sg += g;
            sb += b;
        }
    }
    const int r = (sr + 2) >> 2, g = (sg + 2) >> 2, b = (sb + 2) >> 2;
    unsigned char* uv = f.uv + (long long)by * f.pitch_uv + 2 * bx;
    uv[0] = (unsigned char)(((-26 * r - 87 * g + 112 * b + 128) >> 8) + 128);
    uv[1] = (unsigned char)(((112 * r - 102 * g - 10 * b + 128) >> 8) + 128);
}
