// CPU INT4 grouped GEMM: dispatch between the AVX-512 kernel (cpu/moe_int4_avx512.cpp) and the
// portable one here, and the int4 quantizer. Both kernels compute the per-group form of
// llama4/moe_int4.h; the portable one sums each group in k order in fp32, the AVX-512 one in 16
// lanes, so they agree within fp32 summation error (the tests bound both against float64).
#include "cpu/moe_int4.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "cpu/gemm_bf16.h"
#include "llama4/error.h"
#include "llama4/moe_int4.h"

namespace llama4::cpu {

namespace {
// The signed int4 values of a packed byte: k = 2j in the low nibble, k = 2j + 1 in the high one.
inline int low_nibble(uint8_t b) { return int(int8_t(uint8_t(b << 4))) >> 4; }
inline int high_nibble(uint8_t b) { return int(int8_t(b)) >> 4; }
}  // namespace

void moe_grouped_gemm_int4_portable(const Int4Gemm& a) {
  const int64_t KB = a.K / 2, NG = a.K / a.G, work = a.E * a.N;
#pragma omp parallel for schedule(static) if (work * a.K > 65536)
  for (int64_t j = 0; j < work; ++j) {
    const int64_t e = j / a.N, n = j % a.N;
    const uint8_t* wr = a.w + j * KB;
    const bf16* sr = a.w_scale + j * NG;
    for (int64_t r = a.off[e]; r < a.off[e + 1]; ++r) {
      const bf16* xr = a.x + r * a.K;
      float total = 0.f;
      for (int64_t g = 0; g < NG; ++g) {
        float acc = 0.f;
        for (int64_t k = g * a.G; k < (g + 1) * a.G; k += 2) {
          const uint8_t b = wr[k / 2];
          acc += bf16_to_f32(xr[k].bits) * float(low_nibble(b));
          acc += bf16_to_f32(xr[k + 1].bits) * float(high_nibble(b));
        }
        total += acc * bf16_to_f32(sr[g].bits);
      }
      a.out[r * a.N + n].bits = f32_to_bf16(total);
    }
  }
}

void moe_grouped_gemm_int4(const TensorView& out, const TensorView& x, const TensorView& w,
                           const TensorView& w_scale, const TensorView& expert_offsets) {
  const Int4Gemm a{out.ptr<bf16>(), x.ptr<bf16>(), w.ptr<uint8_t>(), w_scale.ptr<bf16>(),
                   expert_offsets.ptr<int32_t>(), w.size(0), w.size(1), w.size(2) * 2,
                   w.size(2) * 2 / w_scale.size(2)};
  if (has_avx512_bf16()) moe_grouped_gemm_int4_avx512(a);
  else moe_grouped_gemm_int4_portable(a);
}

void quantize_int4_grouped(const TensorView& q_out, const TensorView& scale_out, const TensorView& w,
                           int64_t group) {
  const int64_t K = w.size(w.ndim - 1), rows = K > 0 ? w.numel() / K : 0, NG = K / group;
  const bool is_bf16 = w.dtype == DType::BF16;
  const void* src = w.data;
  uint8_t* q = q_out.ptr<uint8_t>();
  bf16* s = scale_out.ptr<bf16>();
  int64_t bad = -1;  // a row holding a non-finite value (reported after the parallel loop)
#pragma omp parallel for schedule(static) if (rows * K > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    float v[kMoeInt4MaxQuantGroup];  // one group's values (the op checked the group size)
    for (int64_t g = 0; g < NG; ++g) {
      const int64_t k0 = r * K + g * group;
      float amax = 0.f;
      bool finite = true;
      for (int64_t i = 0; i < group; ++i) {
        v[i] = is_bf16 ? bf16_to_f32(static_cast<const bf16*>(src)[k0 + i].bits)
                       : static_cast<const float*>(src)[k0 + i];
        finite = finite && std::isfinite(v[i]);
        amax = std::max(amax, std::fabs(v[i]));
      }
      if (!finite) {
#pragma omp critical(llama4_int4_bad)
        bad = bad < 0 ? r : std::min(bad, r);
        amax = 0.f;
      }
      const uint16_t sb = f32_to_bf16(amax / 7.f);
      const float scale = bf16_to_f32(sb);
      s[r * NG + g].bits = sb;
      uint8_t* qr = q + k0 / 2;
      for (int64_t i = 0; i < group; i += 2) {
        int lo = 0, hi = 0;
        if (scale != 0.f) {
          lo = int(std::clamp(std::nearbyint(v[i] / scale), -8.f, 7.f));
          hi = int(std::clamp(std::nearbyint(v[i + 1] / scale), -8.f, 7.f));
        }
        qr[i / 2] = uint8_t((lo & 0xF) | ((hi & 0xF) << 4));
      }
    }
  }
  if (bad >= 0)
    throw ValueError("quantize_int4_grouped: row " + std::to_string(bad) + " of 'w' holds a non-finite value");
}

}  // namespace llama4::cpu
