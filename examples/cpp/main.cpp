// llama4_native from C++: prints what the library was built with, then runs RMSNorm and FP8
// row-wise quantization on a small tensor and checks the results against values worked out by
// hand. Uses only the public headers <llama4/...>; exits non-zero if any result is wrong.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

#include <llama4/build_info.h>
#include <llama4/numeric.h>
#include <llama4/ops.h>
#include <llama4/tensor.h>

#include "engine_demo.h"

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "WRONG: %s\n", what);
    ++failures;
  }
}

void print_build_info() {
  const llama4::BuildInfo info = llama4::build_info();
  std::printf("llama4_native %s\n", info.version.c_str());
  std::printf("backends:");
  for (const std::string& b : info.backends) std::printf(" %s", b.c_str());
  std::printf("\ncuda available: %s\n", llama4::cuda_available() ? "yes" : "no");
  std::printf("blas: %s\ncompiler: %s\ncpu threads: %d\n", info.blas.c_str(), info.compiler.c_str(),
              info.cpu_threads);
}

// x: [2, 4] float32. Row 0 has mean square (1 + 4 + 9 + 1) / 4 = 3.75, row 1 is constant 2.
void run_rms_norm() {
  std::vector<float> x = {1, -2, 3, -1, 2, 2, 2, 2};
  std::vector<float> weight = {1, 2, 0.5f, 1};
  llama4::Tensor out = llama4::Tensor::empty({2, 4}, llama4::DType::F32);
  llama4::ops::rms_norm(llama4::Context::cpu(), out,
                        llama4::TensorView(x.data(), llama4::DType::F32, {2, 4}),
                        llama4::TensorView(weight.data(), llama4::DType::F32, {4}), 1e-6f);
  const float* o = out.ptr<float>();
  std::printf("rms_norm:");
  for (int i = 0; i < 8; ++i) std::printf(" %.6f", o[i]);
  std::printf("\n");
  const double inv0 = 1.0 / std::sqrt(3.75 + 1e-6), inv1 = 1.0 / std::sqrt(4.0 + 1e-6);
  bool ok = true;
  for (int i = 0; i < 4; ++i) {
    ok &= std::fabs(o[i] - x[i] * inv0 * weight[i]) < 1e-5;
    ok &= std::fabs(o[4 + i] - 2 * inv1 * weight[i]) < 1e-5;
  }
  expect(ok, "rms_norm values");
}

// One row [1, -2, 4]: amax 4, so q = x * 112 -> [112, -224, 448] (e4m3 0x6E, 0xF6, 0x7E), scale 1/112.
void run_quantize() {
  std::vector<float> x = {1, -2, 4};
  llama4::Tensor q = llama4::Tensor::empty({1, 3}, llama4::DType::F8E4M3);
  llama4::Tensor scale = llama4::Tensor::empty({1}, llama4::DType::F32);
  llama4::ops::quantize_fp8_rowwise(llama4::Context::cpu(), q, scale,
                                    llama4::TensorView(x.data(), llama4::DType::F32, {1, 3}), 0.0f);
  const uint8_t* qp = q.ptr<uint8_t>();
  const float s = scale.ptr<float>()[0];
  std::printf("quantize_fp8: q = 0x%02X 0x%02X 0x%02X scale = %.9g dequantized =", qp[0], qp[1],
              qp[2], s);
  for (int i = 0; i < 3; ++i) std::printf(" %g", llama4::fp8e4m3_to_f32(qp[i]) * s);
  std::printf("\n");
  expect(qp[0] == 0x6E && qp[1] == 0xF6 && qp[2] == 0x7E, "quantize_fp8 codes");
  expect(s == 1.0f / 112.0f, "quantize_fp8 scale");
  for (int i = 0; i < 3; ++i) expect(llama4::fp8e4m3_to_f32(qp[i]) * s == x[i], "quantize_fp8 round trip");
}

}  // namespace

int main() {
  try {
    print_build_info();
    run_rms_norm();
    run_quantize();
    if (run_engine_demo() != 0) expect(false, "engine batched vs alone");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  if (failures) return 1;
  std::printf("all results correct\n");
  return 0;
}
