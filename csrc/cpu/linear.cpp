// CPU linear layer. On CPUs with AVX512-BF16: few rows (decode, M <= kGemvMaxRows) through the
// AVX-512 weight-streaming GEMV of cpu/gemv.cpp (bf16 x bf16 and fp32 x fp32), bf16 x bf16 with
// many rows through the packed GEMM of cpu/gemm_bf16.cpp (writing fp32 or bf16 out directly). Otherwise (and fp32 x fp32 with many rows) two paths:
//  - few rows (decode, M <= kSmallM): a weight-streaming kernel. Each weight row is read once,
//    converted to fp32 in registers (bf16 -> fp32 is a 16-bit shift) and dotted with all M
//    activation rows. Decode is bound by weight bandwidth, so bf16 weights halve its cost.
//  - many rows (prefill): OpenBLAS sgemm; bf16 weights are widened to fp32 in blocks of rows
//    first, a cost amortized over the M rows.
// linear_kn takes the same paths for weights [K, N] (cpu/gemv_kn.h, the packed GEMM's pack_kn,
// sgemm without the transpose, and AVX2 kernels that gather eight columns at a time).
#include "cpu/linear.h"

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "cpu/blas.h"
#include "cpu/elem.h"
#include "cpu/gemm_bf16.h"
#include "cpu/gemv.h"
#include "cpu/gemv_kn.h"

namespace llama4::cpu {

namespace {

constexpr int kSmallM = 8;

// 8 weights starting at p, widened to fp32.
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const bf16* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(s);
}

// out[m, n] = sum_k xf[m, k] * w[n, k] for M <= kSmallM; xf is fp32 [M, K] contiguous.
template <typename WT, int M>
void gemv_rows(float* outf, const float* xf, const WT* w, int64_t N, int64_t K) {
  const int64_t K8 = K / 8 * 8;
#pragma omp parallel for schedule(static) if (N * K > 65536)
  for (int64_t n = 0; n < N; ++n) {
    const WT* wr = w + n * K;
    __m256 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K8; k += 8) {
      const __m256 wv = load8(wr + k);
      for (int m = 0; m < M; ++m) acc[m] = _mm256_fmadd_ps(_mm256_loadu_ps(xf + m * K + k), wv, acc[m]);
    }
    for (int m = 0; m < M; ++m) {
      float s = hsum(acc[m]);
      for (int64_t k = K8; k < K; ++k) s += xf[m * K + k] * Elem<WT>::load(wr, k);
      outf[m * N + n] = s;
    }
  }
}

template <typename WT>
void gemv_small(float* outf, const float* xf, const WT* w, int M, int64_t N, int64_t K) {
  switch (M) {
    case 1: gemv_rows<WT, 1>(outf, xf, w, N, K); break;
    case 2: gemv_rows<WT, 2>(outf, xf, w, N, K); break;
    case 3: gemv_rows<WT, 3>(outf, xf, w, N, K); break;
    case 4: gemv_rows<WT, 4>(outf, xf, w, N, K); break;
    case 5: gemv_rows<WT, 5>(outf, xf, w, N, K); break;
    case 6: gemv_rows<WT, 6>(outf, xf, w, N, K); break;
    case 7: gemv_rows<WT, 7>(outf, xf, w, N, K); break;
    default: gemv_rows<WT, 8>(outf, xf, w, N, K); break;
  }
}

// The same with w [K, N] (row stride ldw): out[m, n..n+7] gathers x[m, k] * w[k, n..n+7] over k
// in order, eight columns at a time.
template <typename WT, int M>
void gemv_rows_kn(float* outf, const float* xf, const WT* w, int64_t ldw, int64_t N, int64_t K) {
  const int64_t N8 = N / 8 * 8;
#pragma omp parallel for schedule(static) if (N * K > 65536)
  for (int64_t n = 0; n < N8; n += 8) {
    __m256 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; ++k) {
      const __m256 wv = load8(w + k * ldw + n);
      for (int m = 0; m < M; ++m) acc[m] = _mm256_fmadd_ps(_mm256_set1_ps(xf[m * K + k]), wv, acc[m]);
    }
    for (int m = 0; m < M; ++m) _mm256_storeu_ps(outf + m * N + n, acc[m]);
  }
  for (int64_t n = N8; n < N; ++n)
    for (int m = 0; m < M; ++m) {
      float s = 0.f;
      for (int64_t k = 0; k < K; ++k) s += xf[m * K + k] * Elem<WT>::load(w + k * ldw, n);
      outf[m * N + n] = s;
    }
}

template <typename WT>
void gemv_small_kn(float* outf, const float* xf, const WT* w, int64_t ldw, int M, int64_t N, int64_t K) {
  switch (M) {
    case 1: gemv_rows_kn<WT, 1>(outf, xf, w, ldw, N, K); break;
    case 2: gemv_rows_kn<WT, 2>(outf, xf, w, ldw, N, K); break;
    case 3: gemv_rows_kn<WT, 3>(outf, xf, w, ldw, N, K); break;
    case 4: gemv_rows_kn<WT, 4>(outf, xf, w, ldw, N, K); break;
    case 5: gemv_rows_kn<WT, 5>(outf, xf, w, ldw, N, K); break;
    case 6: gemv_rows_kn<WT, 6>(outf, xf, w, ldw, N, K); break;
    case 7: gemv_rows_kn<WT, 7>(outf, xf, w, ldw, N, K); break;
    default: gemv_rows_kn<WT, 8>(outf, xf, w, ldw, N, K); break;
  }
}

// fp32 copy of x (contiguous [M, K]), converting bf16 when needed.
std::vector<float> widen_rows(const TensorView& x) {
  const int64_t M = x.size(0), K = x.size(1), ld = x.stride(0);
  std::vector<float> xf(size_t(M * K));
  for (int64_t m = 0; m < M; ++m) {
    if (x.dtype == DType::F32) {
      std::copy_n(x.ptr<float>() + m * ld, K, xf.data() + m * K);
    } else {
      const bf16* xr = x.ptr<bf16>() + m * ld;
      for (int64_t k = 0; k < K; ++k) xf[size_t(m * K + k)] = bf16_to_f32(xr[k].bits);
    }
  }
  return xf;
}

void store_out(const TensorView& out, const float* outf, int64_t count) {
  if (out.dtype == DType::F32) {
    if (out.ptr<float>() != outf) std::copy_n(outf, count, out.ptr<float>());
    return;
  }
  bf16* o = out.ptr<bf16>();
#pragma omp parallel for schedule(static) if (count > 65536)
  for (int64_t i = 0; i < count; ++i) o[i].bits = f32_to_bf16(outf[i]);
}

// Prefill path for bf16 weights: widen blocks of weight rows to fp32, then sgemm.
void gemm_bf16_weights(float* outf, const float* xf, const bf16* w, int64_t M, int64_t N, int64_t K) {
  const int64_t block = std::max<int64_t>(64, (int64_t(8) << 20) / std::max<int64_t>(K, 1));  // ~32 MB
  std::vector<float> wf(size_t(std::min(block, N) * K));
  for (int64_t n0 = 0; n0 < N; n0 += block) {
    const int64_t nb = std::min(block, N - n0);
    const bf16* src = w + n0 * K;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nb * K; ++i) wf[size_t(i)] = bf16_to_f32(src[i].bits);
    blas::sgemm_nt(int(M), int(nb), int(K), xf, int(K), wf.data(), int(K), outf + n0, int(N));
  }
}

// The same for w [K, N] (row stride ldw): widen blocks of columns (all K rows), then sgemm.
void gemm_bf16_weights_kn(float* outf, const float* xf, const bf16* w, int64_t ldw, int64_t M, int64_t N,
                          int64_t K) {
  const int64_t block = std::max<int64_t>(64, (int64_t(8) << 20) / std::max<int64_t>(K, 1));  // ~32 MB
  std::vector<float> wf(size_t(std::min(block, N) * K));
  for (int64_t n0 = 0; n0 < N; n0 += block) {
    const int64_t nb = std::min(block, N - n0);
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < nb; ++j) wf[size_t(k * nb + j)] = bf16_to_f32(w[k * ldw + n0 + j].bits);
    blas::sgemm_nn(int(M), int(nb), int(K), xf, int(K), wf.data(), int(nb), outf + n0, int(N));
  }
}

}  // namespace

void linear(const TensorView& out, const TensorView& x, const TensorView& w) {
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  if (has_avx512_bf16() && M <= kGemvMaxRows && x.dtype == w.dtype) {
    if (x.dtype == DType::BF16) {
      if (out.dtype == DType::F32) gemv_bf16(out.ptr<float>(), x.ptr<bf16>(), x.stride(0), w.ptr<bf16>(), M, N, K);
      else gemv_bf16(out.ptr<bf16>(), x.ptr<bf16>(), x.stride(0), w.ptr<bf16>(), M, N, K);
      return;
    }
    if (x.dtype == DType::F32 && out.dtype == DType::F32) {
      gemv_f32(out.ptr<float>(), x.ptr<float>(), x.stride(0), w.ptr<float>(), M, N, K);
      return;
    }
  }
  if (x.dtype == DType::BF16 && w.dtype == DType::BF16 && has_avx512_bf16()) {
    if (out.dtype == DType::F32) gemm_bf16_avx512(out.ptr<float>(), x.ptr<bf16>(), x.stride(0), w.ptr<bf16>(), M, N, K);
    else gemm_bf16_avx512(out.ptr<bf16>(), x.ptr<bf16>(), x.stride(0), w.ptr<bf16>(), M, N, K);
    return;
  }
  const bool direct = out.dtype == DType::F32;  // write fp32 results straight into out
  std::vector<float> scratch(direct ? 0 : size_t(M * N));
  float* outf = direct ? out.ptr<float>() : scratch.data();
  const bool x_plain_f32 = x.dtype == DType::F32;
  std::vector<float> xf_buf;
  if (!x_plain_f32 || M <= kSmallM) xf_buf = widen_rows(x);
  const float* xf = xf_buf.empty() ? x.ptr<float>() : xf_buf.data();
  const int lda = xf_buf.empty() ? int(x.stride(0)) : int(K);

  if (M <= kSmallM) {
    if (w.dtype == DType::F32) {
      gemv_small(outf, xf, w.ptr<float>(), int(M), N, K);
    } else {
      gemv_small(outf, xf, w.ptr<bf16>(), int(M), N, K);
    }
  } else if (w.dtype == DType::F32) {
    blas::sgemm_nt(int(M), int(N), int(K), xf, lda, w.ptr<float>(), int(K), outf, int(N));
  } else {
    gemm_bf16_weights(outf, xf, w.ptr<bf16>(), M, N, K);
  }
  store_out(out, outf, M * N);
}

void linear_kn(const TensorView& out, const TensorView& x, const TensorView& w) {
  const int64_t M = x.size(0), K = x.size(1), N = w.size(1), ldw = w.stride(0);
  if (has_avx512_bf16() && M <= kGemvMaxRows && x.dtype == w.dtype) {
    if (x.dtype == DType::BF16) {
      if (out.dtype == DType::F32) gemv_kn_bf16(out.ptr<float>(), x.ptr<bf16>(), x.stride(0), w.ptr<bf16>(), ldw, M, N, K);
      else gemv_kn_bf16(out.ptr<bf16>(), x.ptr<bf16>(), x.stride(0), w.ptr<bf16>(), ldw, M, N, K);
      return;
    }
    if (x.dtype == DType::F32 && out.dtype == DType::F32) {
      gemv_kn_f32(out.ptr<float>(), x.ptr<float>(), x.stride(0), w.ptr<float>(), ldw, M, N, K);
      return;
    }
  }
  if (x.dtype == DType::BF16 && w.dtype == DType::BF16 && has_avx512_bf16()) {
    if (out.dtype == DType::F32) gemm_bf16_avx512_kn(out.ptr<float>(), x.ptr<bf16>(), x.stride(0), w.ptr<bf16>(), ldw, M, N, K);
    else gemm_bf16_avx512_kn(out.ptr<bf16>(), x.ptr<bf16>(), x.stride(0), w.ptr<bf16>(), ldw, M, N, K);
    return;
  }
  const bool direct = out.dtype == DType::F32;
  std::vector<float> scratch(direct ? 0 : size_t(M * N));
  float* outf = direct ? out.ptr<float>() : scratch.data();
  std::vector<float> xf_buf;
  if (x.dtype != DType::F32 || M <= kSmallM) xf_buf = widen_rows(x);
  const float* xf = xf_buf.empty() ? x.ptr<float>() : xf_buf.data();
  const int lda = xf_buf.empty() ? int(x.stride(0)) : int(K);
  if (M <= kSmallM) {
    if (w.dtype == DType::F32) {
      gemv_small_kn(outf, xf, w.ptr<float>(), ldw, int(M), N, K);
    } else {
      gemv_small_kn(outf, xf, w.ptr<bf16>(), ldw, int(M), N, K);
    }
  } else if (w.dtype == DType::F32) {
    blas::sgemm_nn(int(M), int(N), int(K), xf, lda, w.ptr<float>(), int(ldw), outf, int(N));
  } else {
    gemm_bf16_weights_kn(outf, xf, w.ptr<bf16>(), ldw, M, N, K);
  }
  store_out(out, outf, M * N);
}

}  // namespace llama4::cpu
