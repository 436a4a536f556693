// CUDA twins of the vision encoder's ops (cpu/vision_ops.cpp, cpu/dense_attention.cpp); contracts in
// cuda/vision_ops.h. The vision tower runs once per image, so these favour the CPU's arithmetic over
// speed: LayerNorm's mean and variance in double as on the CPU, GELU with the same erf
// approximation (Abramowitz-Stegun 7.1.26, PyTorch's), attention with fp32 scores, the scale
// applied after the dot product and one rounding of the output. Results agree with the CPU to fp32
// rounding (summation order, exp, and whether a product is fused differ); the data-movement ops
// (add_bias, pixel_shuffle, patchify) are bit-identical.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/elem.cuh"
#include "cuda/reduce.cuh"
#include "cuda/vision_ops.h"
#include "llama4/mathfn.h"

namespace llama4::cuda {

namespace {

// ---- LayerNorm ----------------------------------------------------------------------------------

__device__ __forceinline__ double block_sum_double(double v, double* smem) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = lane < int(blockDim.x / 32) ? smem[lane] : 0.0;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  return v;
}

// One row per block (grid-stride over rows).
template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    layer_norm_kernel(T* __restrict__ out, const T* __restrict__ x, const T* __restrict__ w,
                      const T* __restrict__ b, int64_t rows, int64_t D, float eps) {
  using E = DevElem<T>;
  __shared__ double smem[kBlockThreads / 32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * D;
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) sum += double(E::load(xr[i]));
    const double mean = block_sum_double(sum, smem) / double(D);
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const double c = double(E::load(xr[i])) - mean;
      ss += c * c;
    }
    ss = block_sum_double(ss, smem);
    const float rstd = float(1.0 / sqrt(ss / double(D) + double(eps)));
    const float m = float(mean);
    T* orow = out + r * D;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const float n = __fmul_rn(__fmul_rn(__fsub_rn(E::load(xr[i]), m), rstd), E::load(w[i]));
      orow[i] = E::store(__fadd_rn(n, E::load(b[i])));
    }
  }
}

// ---- GELU ---------------------------------------------------------------------------------------

__device__ __forceinline__ float gelu_f32(float x) {
  const float a = __fmul_rn(x, 0.70710678118654752440f), abs_a = fabsf(a);
  const float t = __fdiv_rn(1.0f, __fmaf_rn(0.3275911f, abs_a, 1.0f));
  float r = __fmaf_rn(1.061405429f, t, -1.453152027f);
  r = __fmaf_rn(r, t, 1.421413741f);
  r = __fmaf_rn(r, t, -0.284496736f);
  r = __fmaf_rn(r, t, 0.254829592f);
  const float e = exp_f32(-__fmul_rn(a, a));
  const float erf_abs = __fmaf_rn(-__fmul_rn(e, t), r, 1.0f);
  return __fmul_rn(__fmul_rn(x, 0.5f), __fadd_rn(1.0f, copysignf(erf_abs, a)));
}

template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    gelu_kernel(T* __restrict__ out, const T* __restrict__ x, int64_t n) {
  using E = DevElem<T>;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = E::store(gelu_f32(E::load(x[i])));
}

// ---- bias add -----------------------------------------------------------------------------------

template <typename T, typename XT>
__global__ void __launch_bounds__(kBlockThreads)
    add_bias_kernel(T* __restrict__ out, const XT* __restrict__ x, const T* __restrict__ bias,
                    int64_t n, int64_t N) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = DevElem<T>::store(__fadd_rn(DevElem<XT>::load(x[i]), DevElem<T>::load(bias[i % N])));
}

// ---- RoPE from cos/sin tables -------------------------------------------------------------------

// One thread per (b, n, h, pair j): interleaved pairs (2j, 2j + 1) turn by the angle of token n.
template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    rope_table_kernel(T* __restrict__ out, const T* __restrict__ x, const float* __restrict__ cos_t,
                      const float* __restrict__ sin_t, int64_t B, int64_t N, int64_t H, int64_t half,
                      int64_t sb, int64_t sn, int64_t sh) {
  using E = DevElem<T>;
  const int64_t total = B * N * H * half;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % half, h = (i / half) % H, n = (i / (half * H)) % N, b = i / (half * H * N);
    const T* xr = x + b * sb + n * sn + h * sh;
    const float c = cos_t[n * half + j], s = sin_t[n * half + j];
    const float a = E::load(xr[2 * j]), bb = E::load(xr[2 * j + 1]);
    T* orow = out + ((b * N + n) * H + h) * (2 * half);
    orow[2 * j] = E::store(__fsub_rn(__fmul_rn(a, c), __fmul_rn(bb, s)));
    orow[2 * j + 1] = E::store(__fadd_rn(__fmul_rn(a, s), __fmul_rn(bb, c)));
  }
}

// ---- dense attention ----------------------------------------------------------------------------

struct Strides4 {
  int64_t b, n, h, x;
};

// One block per (query token, head, tile): the query in shared memory, then its N scores, their
// softmax (max subtracted), and each output element as the p-weighted sum over the N value rows
// (threads take consecutive elements, so the value reads of a step are contiguous).
template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    attention_dense_kernel(T* __restrict__ out, const T* __restrict__ q, const T* __restrict__ k,
                           const T* __restrict__ v, Strides4 qs, Strides4 ks, Strides4 vs, int64_t N,
                           int64_t H, int64_t d, float scale) {
  using E = DevElem<T>;
  extern __shared__ float shared[];
  float* qrow = shared;       // [d]
  float* scores = shared + d;  // [N]
  __shared__ float red[kBlockThreads / 32];
  const int64_t n = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  for (int64_t x = threadIdx.x; x < d; x += blockDim.x)
    qrow[x] = E::load(q[b * qs.b + n * qs.n + h * qs.h + x * qs.x]);
  __syncthreads();
  float local_max = -INFINITY;
  for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
    const T* kr = k + b * ks.b + j * ks.n + h * ks.h;
    float dot = 0.f;
    for (int64_t x = 0; x < d; ++x) dot = __fmaf_rn(qrow[x], E::load(kr[x * ks.x]), dot);
    const float sc = __fmul_rn(dot, scale);
    scores[j] = sc;
    local_max = fmaxf(local_max, sc);
  }
  const float m = row_reduce<kBlockThreads>(local_max, red, MaxNanOp{}, -INFINITY);
  float local_sum = 0.f;
  for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
    const float p = exp_f32(__fsub_rn(scores[j], m));
    scores[j] = p;
    local_sum = __fadd_rn(local_sum, p);
  }
  const float inv_sum = __fdiv_rn(1.0f, row_reduce<kBlockThreads>(local_sum, red, SumOp{}, 0.f));
  __syncthreads();  // every score written before any thread reads all of them
  T* orow = out + ((b * N + n) * H + h) * d;
  for (int64_t x = threadIdx.x; x < d; x += blockDim.x) {
    const T* vc = v + b * vs.b + h * vs.h + x * vs.x;
    float acc = 0.f;
    for (int64_t j = 0; j < N; ++j) acc = __fmaf_rn(scores[j], E::load(vc[j * vs.n]), acc);
    orow[x] = E::store(__fmul_rn(acc, inv_sum));
  }
}

// ---- data movement ------------------------------------------------------------------------------

// Whole elements moved as unsigned integers of their width: a copy, whatever the dtype.
template <int BYTES> struct Word;
template <> struct Word<1> { using type = uint8_t; };
template <> struct Word<2> { using type = uint16_t; };
template <> struct Word<4> { using type = uint32_t; };

// out[b, i*So + j, (n*f + m)*C + c] = x[b, (f*i + n)*S + f*j + m, c]
template <typename W>
__global__ void __launch_bounds__(kBlockThreads)
    pixel_shuffle_kernel(W* __restrict__ out, const W* __restrict__ x, int64_t B, int64_t S, int64_t C,
                         int64_t f, int64_t sb, int64_t sn) {
  const int64_t So = S / f, row = C * f * f, total = B * So * So * row;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % C, nm = (i / C) % (f * f), tok = (i / row) % (So * So), b = i / (row * So * So);
    const int64_t oi = tok / So, oj = tok % So, n = nm / f, m = nm % f;
    const int64_t src = (f * oi + n) * S + f * oj + m;
    out[i] = x[b * sb + src * sn + c];
  }
}

// out[b, py*pw + px, (c*p + ky)*p + kx] = pixels[b, c, py*p + ky, px*p + kx], converted to T.
template <typename T, typename U>
__global__ void __launch_bounds__(kBlockThreads)
    patchify_kernel(T* __restrict__ out, const U* __restrict__ px_data, int64_t B, int64_t C, int64_t ph,
                    int64_t pw, int64_t p, Strides4 s) {
  const int64_t K = C * p * p, total = B * ph * pw * K;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i % K, patch = (i / K) % (ph * pw), b = i / (K * ph * pw);
    const int64_t c = k / (p * p), ky = (k / p) % p, kx = k % p, py = patch / pw, pxi = patch % pw;
    const U v = px_data[b * s.b + c * s.n + (py * p + ky) * s.h + (pxi * p + kx) * s.x];
    out[i] = DevElem<T>::store(DevElem<U>::load(v));
  }
}

// ---- launchers ----------------------------------------------------------------------------------

template <typename T>
void launch_layer_norm(cudaStream_t s, const TensorView& out, const TensorView& x, const TensorView& w,
                       const TensorView& b, float eps) {
  const int64_t D = x.size(-1), rows = x.numel() / D;
  layer_norm_kernel<T><<<grid_blocks(rows, 1), kBlockThreads, 0, s>>>(out.ptr<T>(), x.ptr<T>(), w.ptr<T>(),
                                                                     b.ptr<T>(), rows, D, eps);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_gelu(cudaStream_t s, const TensorView& out, const TensorView& x) {
  const int64_t n = x.numel();
  gelu_kernel<T><<<grid_blocks(n, kBlockThreads), kBlockThreads, 0, s>>>(out.ptr<T>(), x.ptr<T>(), n);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_add_bias(cudaStream_t s, const TensorView& out, const TensorView& x, const TensorView& bias) {
  const int64_t n = out.numel(), N = out.size(-1);
  const unsigned grid = grid_blocks(n, kBlockThreads);
  if (x.dtype == DType::F32)
    add_bias_kernel<T, float><<<grid, kBlockThreads, 0, s>>>(out.ptr<T>(), x.ptr<float>(), bias.ptr<T>(), n, N);
  else
    add_bias_kernel<T, T><<<grid, kBlockThreads, 0, s>>>(out.ptr<T>(), x.ptr<T>(), bias.ptr<T>(), n, N);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_rope_table(cudaStream_t s, const TensorView& out, const TensorView& x, const TensorView& cos_t,
                       const TensorView& sin_t) {
  const int64_t B = x.size(0), N = x.size(1), H = x.size(2), half = x.size(3) / 2;
  rope_table_kernel<T><<<grid_blocks(B * N * H * half, kBlockThreads), kBlockThreads, 0, s>>>(
      out.ptr<T>(), x.ptr<T>(), cos_t.ptr<float>(), sin_t.ptr<float>(), B, N, H, half, x.stride(0),
      x.stride(1), x.stride(2));
  LLAMA4_CUDA_CHECK_LAUNCH();
}

Strides4 strides_of(const TensorView& t) { return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}; }

template <typename T>
void launch_attention_dense(cudaStream_t s, const TensorView& out, const TensorView& q, const TensorView& k,
                            const TensorView& v, float scale) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), d = q.size(3);
  const size_t smem = size_t(N + d) * sizeof(float);
  LLAMA4_CHECK_ARG(smem <= 48 * 1024, "attention_dense: ", N, " tokens of head_dim ", d,
                   " need more shared memory than the CUDA kernel's 48 KiB (at most ~12000 tokens per tile)");
  LLAMA4_CHECK_ARG(N <= 0x7fffffff && H <= 65535 && B <= 65535, "attention_dense: grid too large for ",
                   q.shape_str());
  const dim3 grid{unsigned(N), unsigned(H), unsigned(B)};
  attention_dense_kernel<T><<<grid, kBlockThreads, smem, s>>>(out.ptr<T>(), q.ptr<T>(), k.ptr<T>(), v.ptr<T>(),
                                                             strides_of(q), strides_of(k), strides_of(v), N, H,
                                                             d, scale);
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <int BYTES>
void launch_pixel_shuffle(cudaStream_t s, const TensorView& out, const TensorView& x, int64_t f) {
  using W = typename Word<BYTES>::type;
  const int64_t B = x.size(0), C = x.size(2), S = int64_t(llround(sqrt(double(x.size(1)))));
  pixel_shuffle_kernel<W><<<grid_blocks(out.numel(), kBlockThreads), kBlockThreads, 0, s>>>(
      static_cast<W*>(out.data), static_cast<const W*>(x.data), B, S, C, f, x.stride(0), x.stride(1));
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <typename T, typename U>
void launch_patchify_from(cudaStream_t s, const TensorView& out, const TensorView& pixels, int64_t p) {
  const int64_t B = pixels.size(0), C = pixels.size(1), ph = pixels.size(2) / p, pw = pixels.size(3) / p;
  patchify_kernel<T, U><<<grid_blocks(out.numel(), kBlockThreads), kBlockThreads, 0, s>>>(
      out.ptr<T>(), pixels.ptr<U>(), B, C, ph, pw, p, strides_of(pixels));
  LLAMA4_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_patchify(cudaStream_t s, const TensorView& out, const TensorView& pixels, int64_t p) {
  switch (pixels.dtype) {
    case DType::F32: launch_patchify_from<T, float>(s, out, pixels, p); break;
    case DType::BF16: launch_patchify_from<T, bf16>(s, out, pixels, p); break;
    case DType::F16: launch_patchify_from<T, f16>(s, out, pixels, p); break;
    default: throw TypeError(detail::concat("patchify: unsupported pixel dtype ", dtype_name(pixels.dtype)));
  }
}

}  // namespace

void layer_norm(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& weight,
                const TensorView& bias, float eps) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(x.dtype, "layer_norm", launch_layer_norm, scope.stream, out, x, weight, bias, eps);
}

void gelu(const Context& ctx, const TensorView& out, const TensorView& x) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(x.dtype, "gelu", launch_gelu, scope.stream, out, x);
}

void add_bias(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& bias) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(out.dtype, "add_bias", launch_add_bias, scope.stream, out, x, bias);
}

void rope_table(const Context& ctx, const TensorView& out, const TensorView& x, const TensorView& cos,
                const TensorView& sin) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(x.dtype, "rope_table", launch_rope_table, scope.stream, out, x, cos, sin);
}

void attention_dense(const Context& ctx, const TensorView& out, const TensorView& q, const TensorView& k,
                     const TensorView& v, float scale) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(q.dtype, "attention_dense", launch_attention_dense, scope.stream, out, q, k, v, scale);
}

void pixel_shuffle(const Context& ctx, const TensorView& out, const TensorView& x, int64_t factor) {
  const OpScope scope(ctx);
  switch (element_size(x.dtype)) {
    case 1: launch_pixel_shuffle<1>(scope.stream, out, x, factor); break;
    case 2: launch_pixel_shuffle<2>(scope.stream, out, x, factor); break;
    case 4: launch_pixel_shuffle<4>(scope.stream, out, x, factor); break;
    default:
      throw TypeError(detail::concat("pixel_shuffle: unsupported dtype ", dtype_name(x.dtype)));
  }
}

void patchify(const Context& ctx, const TensorView& out, const TensorView& pixels, int64_t patch) {
  const OpScope scope(ctx);
  LLAMA4_CUDA_DISPATCH_ACT(out.dtype, "patchify", launch_patchify, scope.stream, out, pixels, patch);
}

}  // namespace llama4::cuda
