// Warp-level tensor-core and async-copy primitives of sm_80+ as inline PTX (PTX ISA: "Warp-level
// matrix instructions: mma.sync m16n8k16", "ldmatrix", "cp.async"). Fragment layouts, with
// g = lane / 4 and c = lane % 4 (each 32-bit register holds two bf16, the lower column in the
// low half):
//   A 16x16 (row-major):  a0 = A[g][2c, 2c+1]    a1 = A[g+8][2c, 2c+1]
//                         a2 = A[g][2c+8, +9]    a3 = A[g+8][2c+8, +9]
//   B 16x8 (k x n):       b0 = B[2c, 2c+1][g]    b1 = B[2c+8, 2c+9][g]
//   C/D 16x8 fp32:        d0, d1 = D[g][2c, 2c+1]   d2, d3 = D[g+8][2c, 2c+1]
// so the C fragments of two adjacent n-tiles are, rounded to bf16, the A fragment of the next
// product (FlashAttention-2 keeps P in registers this way).
#pragma once
#include <cstdint>

namespace llama4::cuda {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, asynchronously; src_bytes < 16 zero-fills the rest (0: all zeros, and
// nothing is read from `src`, which must still be a valid address).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, register i receives
// matrix i (thread: row g, columns 2c, 2c+1; .trans: column g, rows 2c, 2c+1).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}

// d += A (16x16 bf16) * B (16x8 bf16), fp32 accumulation.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats rounded to nearest-even bf16 (NaN stays NaN), `lo` in the low half.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

}  // namespace llama4::cuda
