// CUDA FP8 e4m3 row-wise quantize / dequantize and dtype casts, with the contracts of cpu/quant.h
// (validated by ops/quant.cpp and ops/memory.cpp; contiguous tensors on one CUDA device):
//   quantize_fp8_rowwise    x: [R, K] f32/bf16/f16 -> q: [R, K] e4m3, scale: [R] f32
//   dequantize_fp8_rowwise  q: [R, K] e4m3, scale: [R] f32 -> out: [R, K] f32/bf16/f16
//   cast                    src -> dst, any pair of f32/bf16/f16/e4m3, same numel
// Bit-identical to the CPU: the row max is order-independent (NaN-propagating, as the CPU's), the
// divisions and products are the CPU's (correctly rounded _rn intrinsics), and every conversion
// goes through llama4/numeric.h.
// (A NaN stays NaN, but its sign and payload may differ: GPU arithmetic returns a canonical NaN.)
#include "cuda/common.cuh"
#include "cuda/elem.cuh"
#include "cuda/fp8_rowwise.cuh"
#include "cuda/quant.h"
#include "cuda/reduce.cuh"

namespace llama4::cuda {

namespace {


// ---- quantize -----------------------------------------------------------------------------------

// One row per warp or per block, as rms_norm_kernel. Pass 1: amax = max |x| over the row (NaN if
// any element is); pass 2: q = e4m3(clamp(x * (448 / amax), -448, 448)). K % VEC == 0.
template <typename T, int VEC, int ROW_THREADS>
__global__ void __launch_bounds__(kBlockThreads)
    quantize_fp8_rowwise_kernel(fp8e4m3* __restrict__ q, float* __restrict__ scale,
                                const T* __restrict__ x, int64_t R, int64_t K, float scale_ub) {
  using E = DevElem<T>;
  constexpr int kRowsPerBlock = kBlockThreads / ROW_THREADS;
  __shared__ float smem[kBlockThreads / 32];
  const int lane = threadIdx.x % ROW_THREADS;
  const int64_t nvec = K / VEC;
  for (int64_t r0 = int64_t(blockIdx.x) * kRowsPerBlock; r0 < R;
       r0 += int64_t(gridDim.x) * kRowsPerBlock) {
    const int64_t row = r0 + threadIdx.x / ROW_THREADS;
    if (ROW_THREADS == 32 && row >= R) continue;  // whole warps only: no barrier in this mode
    const T* xr = x + row * K;
    fp8e4m3* qr = q + row * K;
    float amax = 0.f;
    for (int64_t v = lane; v < nvec; v += ROW_THREADS) {
      const Vec<T, VEC> xv = load_vec<VEC>(xr + v * VEC);
#pragma unroll
      for (int k = 0; k < VEC; ++k) amax = MaxNanOp{}(amax, fabsf(E::load(xv.v[k])));
    }
    // A NaN anywhere makes amax, the scale and the whole row NaN (as the CPU and torch's amax).
    amax = row_reduce<ROW_THREADS>(amax, smem, MaxNanOp{}, 0.f);
    const float inv = fp8_inverse_scale(amax, scale_ub);
    for (int64_t v = lane; v < nvec; v += ROW_THREADS) {
      const Vec<T, VEC> xv = load_vec<VEC>(xr + v * VEC);
      Vec<fp8e4m3, VEC> qv;
#pragma unroll
      for (int k = 0; k < VEC; ++k) qv.v[k] = fp8_quantize(E::load(xv.v[k]), inv);
      store_vec<VEC>(qr + v * VEC, qv);
    }
    if (lane == 0) scale[row] = __fdiv_rn(1.0f, inv);
  }
}

template <typename T, int VEC>
void launch_quantize_vec(cudaStream_t s, fp8e4m3* q, float* scale, const T* x, int64_t R, int64_t K,
                         float ub) {
  if (K / VEC <= 32 * 8) {
    quantize_fp8_rowwise_kernel<T, VEC, 32>
        <<<grid_blocks(R, kBlockThreads / 32), kBlockThreads, 0, s>>>(q, scale, x, R, K, ub);
  } else {
    quantize_fp8_rowwise_kernel<T, VEC, kBlockThreads>
        <<<grid_blocks(R, 1), kBlockThreads, 0, s>>>(q, scale, x, R, K, ub);
  }
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_quantize(cudaStream_t st, const TensorView& q_out, const TensorView& scale_out,
                     const TensorView& x, float scale_ub) {
  const int64_t R = x.size(0), K = x.size(1);
  constexpr int V = kVec16<T>;
  auto* q = q_out.ptr<fp8e4m3>();
  auto* s = scale_out.ptr<float>();
  if (K % V == 0 && is_aligned(x.data, 16) && is_aligned(q, V)) {
    launch_quantize_vec<T, V>(st, q, s, x.ptr<T>(), R, K, scale_ub);
  } else {
    launch_quantize_vec<T, 1>(st, q, s, x.ptr<T>(), R, K, scale_ub);
  }
}

// ---- dequantize ---------------------------------------------------------------------------------

// out[r, k] = float(q[r, k]) * scale[r]. Flat over the R*K elements; with VEC > 1, K % VEC == 0 so
// a vector lies in one row.
template <typename T, int VEC>
__global__ void __launch_bounds__(kBlockThreads)
    dequantize_fp8_rowwise_kernel(T* __restrict__ out, const fp8e4m3* __restrict__ q,
                                  const float* __restrict__ scale, int64_t n, int64_t K) {
  using E = DevElem<T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / VEC;
  for (int64_t v = tid; v < nvec; v += stride) {
    const float s = scale[v * VEC / K];
    const Vec<fp8e4m3, VEC> qv = load_vec<VEC>(q + v * VEC);
    Vec<T, VEC> ov;
#pragma unroll
    for (int k = 0; k < VEC; ++k) ov.v[k] = E::store(__fmul_rn(fp8e4m3_to_f32(qv.v[k].bits), s));
    store_vec<VEC>(out + v * VEC, ov);
  }
  for (int64_t i = nvec * VEC + tid; i < n; i += stride)
    out[i] = E::store(__fmul_rn(fp8e4m3_to_f32(q[i].bits), scale[i / K]));
}

template <typename T>
void launch_dequantize(cudaStream_t s, const TensorView& out, const TensorView& q,
                       const TensorView& scale) {
  const int64_t n = q.numel(), K = q.size(1);
  constexpr int V = kVec16<T>;
  auto* qp = q.ptr<fp8e4m3>();
  if (K % V == 0 && is_aligned(out.data, 16) && is_aligned(qp, V)) {
    dequantize_fp8_rowwise_kernel<T, V><<<grid_blocks(n / V, kBlockThreads), kBlockThreads, 0, s>>>(
        out.ptr<T>(), qp, scale.ptr<float>(), n, K);
  } else {
    dequantize_fp8_rowwise_kernel<T, 1><<<grid_blocks(n, kBlockThreads), kBlockThreads, 0, s>>>(
        out.ptr<T>(), qp, scale.ptr<float>(), n, K);
  }
  LLAMA4_CUDA_CHECK_LAUNCH();
}

// ---- cast ---------------------------------------------------------------------------------------

// dst[i] = D(float(src[i])): whole VEC-vectors, then the tail.
template <typename S, typename D, int VEC>
__global__ void __launch_bounds__(kBlockThreads)
    cast_kernel(D* __restrict__ dst, const S* __restrict__ src, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / VEC;
  for (int64_t v = tid; v < nvec; v += stride) {
    const Vec<S, VEC> sv = load_vec<VEC>(src + v * VEC);
    Vec<D, VEC> dv;
#pragma unroll
    for (int k = 0; k < VEC; ++k) dv.v[k] = DevElem<D>::store(DevElem<S>::load(sv.v[k]));
    store_vec<VEC>(dst + v * VEC, dv);
  }
  for (int64_t i = nvec * VEC + tid; i < n; i += stride)
    dst[i] = DevElem<D>::store(DevElem<S>::load(src[i]));
}

template <typename S, typename D>
void launch_cast(cudaStream_t s, const TensorView& dst, const TensorView& src) {
  const int64_t n = src.numel();
  // 16 bytes of the wider type per vector.
  constexpr int V = int(16 / (sizeof(S) > sizeof(D) ? sizeof(S) : sizeof(D)));
  if (is_aligned(src.data, V * sizeof(S)) && is_aligned(dst.data, V * sizeof(D))) {
    cast_kernel<S, D, V><<<grid_blocks(n / V, kBlockThreads), kBlockThreads, 0, s>>>(
        dst.ptr<D>(), src.ptr<S>(), n);
  } else {
    cast_kernel<S, D, 1><<<grid_blocks(n, kBlockThreads), kBlockThreads, 0, s>>>(dst.ptr<D>(),
                                                                           src.ptr<S>(), n);
  }
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <typename S>
void launch_cast_from(cudaStream_t s, const TensorView& dst, const TensorView& src) {
  switch (dst.dtype) {
    case DType::F32: launch_cast<S, float>(s, dst, src); break;
    case DType::BF16: launch_cast<S, bf16>(s, dst, src); break;
    case DType::F16: launch_cast<S, f16>(s, dst, src); break;
    case DType::F8E4M3: launch_cast<S, fp8e4m3>(s, dst, src); break;
    default:
      throw TypeError(
          detail::concat("cast: unsupported destination dtype ", dtype_name(dst.dtype)));
  }
}

}  // namespace

void quantize_fp8_rowwise(const Context& ctx, const TensorView& q_out, const TensorView& scale_out,
                          const TensorView& x, float scale_ub) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(x.dtype, "quantize_fp8_rowwise", launch_quantize, scope.stream, q_out,
                           scale_out, x, scale_ub);
}

void dequantize_fp8_rowwise(const Context& ctx, const TensorView& out, const TensorView& q,
                            const TensorView& scale) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(out.dtype, "dequantize_fp8_rowwise", launch_dequantize, scope.stream, out,
                           q, scale);
}

void cast(const Context& ctx, const TensorView& dst, const TensorView& src) {
  const OpScope scope(ctx);
  const cudaStream_t s = scope.stream;
  switch (src.dtype) {
    case DType::F32: launch_cast_from<float>(s, dst, src); break;
    case DType::BF16: launch_cast_from<bf16>(s, dst, src); break;
    case DType::F16: launch_cast_from<f16>(s, dst, src); break;
    case DType::F8E4M3: launch_cast_from<fp8e4m3>(s, dst, src); break;
    default:
      throw TypeError(detail::concat("cast: unsupported source dtype ", dtype_name(src.dtype)));
  }
}

}  // namespace llama4::cuda
