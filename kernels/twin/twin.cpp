// CPU twins of the CUDA kernels: the very .cu sources, compiled as C++ through shim.h.
// Exported with C linkage for src/backend/cuda/twin.rs.
#include "shim.h"
#include "../scale_nv12.cu"
#include "../color.cu"

// Both passes, as the scaler launches them on one stream: vertical over `vgrid`, then
// horizontal over `hgrid`.
extern "C" void gpuworker_twin_scale_nv12(const unsigned* vgrid, const unsigned* hgrid,
                                          unsigned block_x, unsigned block_y,
                                          const unsigned char* src_y, int pitch_y,
                                          const unsigned char* src_uv, int pitch_uv, int src_w,
                                          int src_h, const ScalePlaneJob* jobs) {
    twin_launch({vgrid[0], vgrid[1], vgrid[2]}, {block_x, block_y, 1}, [&] {
        scale_nv12_vertical(src_y, pitch_y, src_uv, pitch_uv, src_w, src_h, jobs);
    });
    twin_launch({hgrid[0], hgrid[1], hgrid[2]}, {block_x, block_y, 1},
                [&] { scale_nv12_horizontal(src_w, jobs); });
}

extern "C" void gpuworker_twin_nv12_to_rgb(unsigned grid_x, unsigned grid_y, unsigned block_x,
                                           unsigned block_y, ColorFrame f) {
    twin_launch({grid_x, grid_y, 1}, {block_x, block_y, 1}, [&] { nv12_to_rgb(f); });
}

extern "C" void gpuworker_twin_rgb_to_nv12(unsigned grid_x, unsigned grid_y, unsigned block_x,
                                           unsigned block_y, ColorFrame f) {
    twin_launch({grid_x, grid_y, 1}, {block_x, block_y, 1}, [&] { rgb_to_nv12(f); });
}
