// Lets a CUDA kernel source compile as C++ and run on the CPU: the thread and block indices
// become globals that the twin launcher sets while it walks the grid in loops. Only for
// kernels without __syncthreads or shared memory.
#pragma once

struct dim3 {
    unsigned x, y, z;
};

// Per thread: tests and the simulated driver may run twins on several threads at once.
static thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict

// Correctly rounded single operations (CUDA's _rn intrinsics): plain IEEE float arithmetic.
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }

// Runs `kernel` over every thread of every block, in order.
template <typename F>
void twin_launch(dim3 grid, dim3 block, F kernel) {
    gridDim = grid;
    blockDim = block;
    for (blockIdx.z = 0; blockIdx.z < grid.z; ++blockIdx.z)
        for (blockIdx.y = 0; blockIdx.y < grid.y; ++blockIdx.y)
            for (blockIdx.x = 0; blockIdx.x < grid.x; ++blockIdx.x)
                for (threadIdx.z = 0; threadIdx.z < block.z; ++threadIdx.z)
                    for (threadIdx.y = 0; threadIdx.y < block.y; ++threadIdx.y)
                        for (threadIdx.x = 0; threadIdx.x < block.x; ++threadIdx.x)
                            kernel();
}
