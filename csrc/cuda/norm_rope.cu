// CUDA RMSNorm / QK-norm, interleaved-pair RoPE and SiLU-gate, with the contracts of
// cpu/norm_rope.h (validated by ops/norm_rope.cpp; contiguous tensors on one CUDA device):
//   rms_norm   x, out: [..., D]; weight: [D] or undefined (QK-norm)
//   rope       x, out: [T, H, d]; positions: [T] int32/int64; inv_freq: [d/2] float32
//   silu_gate  gate, up, out: any shape, same numel
// Numerics match the CPU kernels: fp32 math, the same rounding points, explicit _rn intrinsics so
// nvcc fuses exactly the products the CPU fuses (RoPE's two explicit fmas) and no others, and
// sin/cos/exp from llama4/mathfn.h. RoPE and SiLU-gate are therefore bit-identical to the CPU;
// RMSNorm differs only in the order of its sum of squares (a tree here, sequential there).
#include "cuda/common.cuh"
#include "cuda/elem.cuh"
#include "cuda/norm_rope.h"
#include "cuda/reduce.cuh"
#include "llama4/mathfn.h"

namespace llama4::cuda {

namespace {

// ---- RMSNorm ------------------------------------------------------------------------------------

// One row per warp (ROW_THREADS = 32, short rows such as QK-norm's head_dim) or per block
// (ROW_THREADS = kBlockThreads, hidden-size rows). VEC elements per load; D % VEC == 0.
template <typename T, int VEC, int ROW_THREADS>
__global__ void __launch_bounds__(kBlockThreads)
    rms_norm_kernel(T* __restrict__ out, const T* __restrict__ x, const T* __restrict__ w,
                    int64_t rows, int64_t D, float eps) {
  using E = DevElem<T>;
  constexpr int kRowsPerBlock = kBlockThreads / ROW_THREADS;
  __shared__ float smem[kBlockThreads / 32];
  const int lane = threadIdx.x % ROW_THREADS;
  const int64_t nvec = D / VEC;
  const float d_f = float(D);
  // The loop bound is uniform over the block, so the block-wide reduction's barriers are safe.
  for (int64_t r0 = int64_t(blockIdx.x) * kRowsPerBlock; r0 < rows;
       r0 += int64_t(gridDim.x) * kRowsPerBlock) {
    const int64_t row = r0 + threadIdx.x / ROW_THREADS;
    if (ROW_THREADS == 32 && row >= rows) continue;  // whole warps only: no barrier in this mode
    const T* xr = x + row * D;
    T* orow = out + row * D;
    float ss = 0.f;
    for (int64_t v = lane; v < nvec; v += ROW_THREADS) {
      const Vec<T, VEC> xv = load_vec<VEC>(xr + v * VEC);
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        const float f = E::load(xv.v[k]);
        ss = fmaf(f, f, ss);
      }
    }
    ss = row_reduce<ROW_THREADS>(ss, smem, SumOp{}, 0.f);
    // CPU: inv = 1 / sqrt(ss / D + eps), each step correctly rounded.
    const float inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(ss, d_f), eps)));
    for (int64_t v = lane; v < nvec; v += ROW_THREADS) {
      const Vec<T, VEC> xv = load_vec<VEC>(xr + v * VEC);
      Vec<T, VEC> wv{};
      if (w) wv = load_vec<VEC>(w + v * VEC);
      Vec<T, VEC> ov;
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        // HF: normalize in fp32, round to the activation dtype, then multiply by the weight.
        const float n = E::round(__fmul_rn(E::load(xv.v[k]), inv));
        ov.v[k] = E::store(w ? __fmul_rn(n, E::load(wv.v[k])) : n);
      }
      store_vec<VEC>(orow + v * VEC, ov);
    }
  }
}

template <typename T, int VEC>
void launch_rms_norm_vec(cudaStream_t s, T* out, const T* x, const T* w, int64_t rows, int64_t D,
                         float eps) {
  // Up to 8 vectors per lane a warp per row is enough; longer rows get a block.
  if (D / VEC <= 32 * 8) {
    rms_norm_kernel<T, VEC, 32><<<grid_blocks(rows, kBlockThreads / 32), kBlockThreads, 0, s>>>(
        out, x, w, rows, D, eps);
  } else {
    rms_norm_kernel<T, VEC, kBlockThreads><<<grid_blocks(rows, 1), kBlockThreads, 0, s>>>(
        out, x, w, rows, D, eps);
  }
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_rms_norm(cudaStream_t s, const TensorView& out, const TensorView& x, const TensorView& weight,
                     float eps) {
  const int64_t D = x.size(-1);
  const int64_t rows = x.numel() / D;
  const T* w = weight.data ? weight.ptr<T>() : nullptr;  // undefined weight: QK-norm
  constexpr int V = kVec16<T>;
  const bool vec = D % V == 0 && is_aligned(x.data, 16) && is_aligned(out.data, 16) &&
                   (w == nullptr || is_aligned(w, 16));
  if (vec) {
    launch_rms_norm_vec<T, V>(s, out.ptr<T>(), x.ptr<T>(), w, rows, D, eps);
  } else {
    launch_rms_norm_vec<T, 1>(s, out.ptr<T>(), x.ptr<T>(), w, rows, D, eps);
  }
}

// ---- RoPE ---------------------------------------------------------------------------------------

// Largest head_dim whose per-token (cos, sin) table fits in the default 48 KB of shared memory.
constexpr int64_t kMaxCachedPairs = (48 * 1024) / int64_t(sizeof(float2));

// Grid: x over tokens (grid-stride), y over groups of heads_per_block heads. Each block computes
// the token's d/2 angles once into shared memory (cache_angles; otherwise per element), then
// rotates the pairs of its heads. VEC = 2 moves single elements (any alignment); larger VEC moves
// 16-byte vectors (d % VEC == 0, aligned). angle = float(pos) * inv_freq[j] in fp32, as on the CPU.
template <typename T, int VEC>
__global__ void __launch_bounds__(kBlockThreads)
    rope_kernel(T* __restrict__ out, const T* __restrict__ x, const int32_t* __restrict__ pos32,
                const int64_t* __restrict__ pos64, const float* __restrict__ inv_freq,
                int64_t ntok, int64_t H, int64_t d, int64_t heads_per_block, bool cache_angles) {
  extern __shared__ float2 cos_sin[];  // [d/2]
  using E = DevElem<T>;
  const int64_t half = d / 2;
  const int64_t h0 = int64_t(blockIdx.y) * heads_per_block;
  const int64_t nh = H - h0 < heads_per_block ? H - h0 : heads_per_block;
  const int64_t nvec = nh * d / VEC;
  for (int64_t t = blockIdx.x; t < ntok; t += gridDim.x) {
    const float p = pos64 ? float(pos64[t]) : float(pos32[t]);
    if (cache_angles) {
      for (int64_t j = threadIdx.x; j < half; j += blockDim.x) {
        float s, c;
        sincos_f32(__fmul_rn(p, inv_freq[j]), &s, &c);
        cos_sin[j] = make_float2(c, s);
      }
      __syncthreads();
    }
    const T* xt = x + (t * H + h0) * d;
    T* ot = out + (t * H + h0) * d;
    for (int64_t v = threadIdx.x; v < nvec; v += blockDim.x) {
      const int64_t e = v * VEC;
      const int64_t j0 = (e % d) / 2;  // VEC divides d, so a vector never straddles two heads
      Vec<T, VEC> xv, ov;
      if constexpr (VEC == 2) {
        xv.v[0] = xt[e];
        xv.v[1] = xt[e + 1];
      } else {
        xv = load_vec<VEC>(xt + e);
      }
#pragma unroll
      for (int k = 0; k < VEC / 2; ++k) {
        float c, s;
        if (cache_angles) {
          const float2 cs = cos_sin[j0 + k];
          c = cs.x;
          s = cs.y;
        } else {
          sincos_f32(__fmul_rn(p, inv_freq[j0 + k]), &s, &c);
        }
        const float a = E::load(xv.v[2 * k]), b = E::load(xv.v[2 * k + 1]);
        // As the CPU: fma(a, c, -(b*s)) and fma(a, s, b*c), the inner products rounded.
        ov.v[2 * k] = E::store(__fmaf_rn(a, c, -__fmul_rn(b, s)));
        ov.v[2 * k + 1] = E::store(__fmaf_rn(a, s, __fmul_rn(b, c)));
      }
      if constexpr (VEC == 2) {
        ot[e] = ov.v[0];
        ot[e + 1] = ov.v[1];
      } else {
        store_vec<VEC>(ot + e, ov);
      }
    }
    if (cache_angles) __syncthreads();  // the table is rewritten for the next token
  }
}

template <typename T>
void launch_rope(cudaStream_t s, const TensorView& out, const TensorView& x, const TensorView& positions,
                 const TensorView& inv_freq) {
  const int64_t ntok = x.size(0), H = x.size(1), d = x.size(2), half = d / 2;
  // About 2048 elements per block, so one table of angles serves several heads.
  int64_t heads_per_block = std::clamp<int64_t>(2048 / d, 1, H);
  heads_per_block = std::max(heads_per_block, ceil_div(H, 65535));  // gridDim.y <= 65535
  const dim3 grid(unsigned(std::min(ntok, kMaxGridBlocks)), unsigned(ceil_div(H, heads_per_block)));
  const bool cache = half <= kMaxCachedPairs;
  const size_t smem = cache ? size_t(half) * sizeof(float2) : 0;
  const int32_t* p32 = positions.dtype == DType::I32 ? positions.ptr<int32_t>() : nullptr;
  const int64_t* p64 = positions.dtype == DType::I64 ? positions.ptr<int64_t>() : nullptr;
  constexpr int V = kVec16<T>;
  if (d % V == 0 && is_aligned(x.data, 16) && is_aligned(out.data, 16)) {
    rope_kernel<T, V><<<grid, kBlockThreads, smem, s>>>(out.ptr<T>(), x.ptr<T>(), p32, p64,
                                                     inv_freq.ptr<float>(), ntok, H, d,
                                                     heads_per_block, cache);
  } else {
    rope_kernel<T, 2><<<grid, kBlockThreads, smem, s>>>(out.ptr<T>(), x.ptr<T>(), p32, p64,
                                                     inv_freq.ptr<float>(), ntok, H, d,
                                                     heads_per_block, cache);
  }
  LLAMA4_CUDA_CHECK_LAUNCH();
}

// ---- SiLU-gate ----------------------------------------------------------------------------------

// out = round(silu(g)) * u, silu(g) = g / (1 + e^-g). Whole VEC-vectors first, then the tail.
template <typename T, int VEC>
__global__ void __launch_bounds__(kBlockThreads)
    silu_gate_kernel(T* __restrict__ out, const T* __restrict__ gate, const T* __restrict__ up,
                     int64_t n) {
  using E = DevElem<T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / VEC;
  auto f = [](T g, T u) {
    const float gv = E::load(g);
    const float act = E::round(__fdiv_rn(gv, __fadd_rn(1.0f, exp_f32(-gv))));
    return E::store(__fmul_rn(act, E::load(u)));
  };
  for (int64_t v = tid; v < nvec; v += stride) {
    const Vec<T, VEC> g = load_vec<VEC>(gate + v * VEC), u = load_vec<VEC>(up + v * VEC);
    Vec<T, VEC> o;
#pragma unroll
    for (int k = 0; k < VEC; ++k) o.v[k] = f(g.v[k], u.v[k]);
    store_vec<VEC>(out + v * VEC, o);
  }
  for (int64_t i = nvec * VEC + tid; i < n; i += stride) out[i] = f(gate[i], up[i]);
}

template <typename T>
void launch_silu_gate(cudaStream_t s, const TensorView& out, const TensorView& gate, const TensorView& up) {
  const int64_t n = out.numel();
  constexpr int V = kVec16<T>;
  if (is_aligned(out.data, 16) && is_aligned(gate.data, 16) && is_aligned(up.data, 16)) {
    silu_gate_kernel<T, V><<<grid_blocks(n / V, kBlockThreads), kBlockThreads, 0, s>>>(
        out.ptr<T>(), gate.ptr<T>(), up.ptr<T>(), n);
  } else {
    silu_gate_kernel<T, 1><<<grid_blocks(n, kBlockThreads), kBlockThreads, 0, s>>>(
        out.ptr<T>(), gate.ptr<T>(), up.ptr<T>(), n);
  }
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace

void rms_norm(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& weight,
              float eps) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(x.dtype, "rms_norm", launch_rms_norm, scope.stream, out, x, weight, eps);
}

void rope(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& positions,
          const TensorView& inv_freq) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(x.dtype, "rope", launch_rope, scope.stream, out, x, positions, inv_freq);
}

void silu_gate(const Context& ctx, const TensorView& out, const TensorView& gate, const TensorView& up) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(out.dtype, "silu_gate", launch_silu_gate, scope.stream, out, gate, up);
}

}  // namespace llama4::cuda
