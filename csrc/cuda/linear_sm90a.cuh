// The dense bf16 GEMM of linear on Hopper (CUTLASS 3.x, sm_90a): out [m, n] = x [m, k] . w [n, k]^T,
// bf16 inputs, fp32 accumulation, one round-to-nearest-even to bf16 or fp32. Layouts: x row-major
// with a row stride (A, K-major), w as B column-major [k, n] = [n, k] K-contiguous (the nn.Linear
// layout as stored), out row-major: a "TN" GEMM, what wgmma reads straight from swizzled shared
// memory. Epilogue: D = 1 * acc with no C operand, stored through TMA.
//
// The configurations (which one runs: linear_kernel in llama4/linear_config.h) are specialized
// here and each instantiated in its own linear_*_sm90a.cu, so the front end (most of a CUTLASS
// translation unit's 40 s / 3 GB) runs for them in parallel.
#pragma once
#include <cuda_runtime.h>

#include "cuda/cutlass_sm90a.cuh"
#include "cuda/linear_sm90a.h"

#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/operations.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>

namespace llama4::cuda::sm90a {

namespace dense {

using namespace cute;
using Bf16 = cutlass::bfloat16_t;

// Tile, cluster and schedules of each configuration (see llama4/linear_config.h for why).
template <LinearKernel kKernel>
struct Config;
template <>
struct Config<LinearKernel::CutlassSmall> {
  using Tile = cute::Shape<_64, _64, _64>;
  using Cluster = cute::Shape<_1, _8, _1>;
  using Kernel = cutlass::gemm::KernelTmaWarpSpecialized;
  using Epilogue = cutlass::epilogue::TmaWarpSpecialized;
};
template <>
struct Config<LinearKernel::CutlassMedium> {
  using Tile = cute::Shape<_64, _128, _64>;
  using Cluster = cute::Shape<_2, _1, _1>;
  using Kernel = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
  using Epilogue = cutlass::epilogue::TmaWarpSpecialized;
};
template <>
struct Config<LinearKernel::CutlassLarge> {
  using Tile = cute::Shape<_128, _128, _64>;
  using Cluster = cute::Shape<_2, _1, _1>;
  using Kernel = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
  using Epilogue = cutlass::epilogue::TmaWarpSpecialized;
};

template <LinearKernel kKernel, class Out>
struct Gemm {
  using C = Config<kKernel>;
  static constexpr int kAlignIn = 8;                   // 16 bytes of bf16: the TMA unit
  static constexpr int kAlignOut = 16 / sizeof(Out);   // 8 bf16 or 4 fp32
  using LayoutX = cutlass::layout::RowMajor;           // A [m, k], k contiguous
  using LayoutW = cutlass::layout::ColumnMajor;        // B [k, n] column-major = w [n, k]
  using LayoutOut = cutlass::layout::RowMajor;
  // D = round(1 * acc): no C operand is read.
  using Fusion = cutlass::epilogue::fusion::LinearCombination<Out, float, void, float,
                                                              cutlass::FloatRoundStyle::round_to_nearest>;
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, typename C::Tile, typename C::Cluster,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, LayoutOut, kAlignOut,
      Out, LayoutOut, kAlignOut, typename C::Epilogue, Fusion>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Bf16, LayoutX, kAlignIn, Bf16, LayoutW,
      kAlignIn, float, typename C::Tile, typename C::Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<
          static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      typename C::Kernel>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<cute::Shape<int, int, int, int>, Mainloop, Epilogue>;
  using Adapter = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using StrideX = typename Kernel::StrideA;  // (ldx, _1, batch)
  using StrideW = typename Kernel::StrideB;  // (k, _1, batch)
  using StrideOut = typename Kernel::StrideD;  // (n, _1, batch)
};

}  // namespace dense

template <LinearKernel kKernel, bool kF32Out>
void dense_gemm_bf16_config(const DenseGemmBf16& p, const Context& ctx, int device, cudaStream_t stream) {
  constexpr const char* op = "linear";
  using Out = std::conditional_t<kF32Out, float, dense::Bf16>;
  using G = dense::Gemm<kKernel, Out>;
  require_sm90(device, op, "the CUTLASS bf16 GEMM");
  typename G::StrideX sx{};
  typename G::StrideW sw{};
  typename G::StrideOut so{};
  cute::get<0>(sx) = p.ldx;
  cute::get<2>(sx) = p.ldx * p.m;
  cute::get<0>(sw) = p.k;
  cute::get<2>(sw) = int64_t(p.n) * p.k;
  cute::get<0>(so) = p.n;
  cute::get<2>(so) = int64_t(p.m) * p.n;
  typename G::Adapter::Arguments args{};
  args.mode = cutlass::gemm::GemmUniversalMode::kGemm;
  args.problem_shape = {p.m, p.n, p.k, 1};
  args.mainloop.ptr_A = static_cast<const dense::Bf16*>(p.x);
  args.mainloop.dA = sx;
  args.mainloop.ptr_B = static_cast<const dense::Bf16*>(p.w);
  args.mainloop.dB = sw;
  auto& f = args.epilogue.thread;
  f.alpha = 1.f;
  f.beta = 0.f;
  args.epilogue.ptr_C = nullptr;
  args.epilogue.dC = {};
  args.epilogue.ptr_D = static_cast<Out*>(p.out);
  args.epilogue.dD = so;
  args.hw_info.device_id = device;
  args.hw_info.sm_count = sm_count_of(device);
  check_status(G::Adapter::can_implement(args), op, "can_implement");
  // The persistent and plain warp-specialized kernels need no workspace today; if a CUTLASS
  // version asks for one, it is a stream-ordered temporary of the context.
  const size_t ws_bytes = G::Adapter::get_workspace_size(args);
  const Tensor ws = ws_bytes ? ctx.empty({int64_t(ws_bytes)}, DType::U8) : Tensor();
  // Params hold TMA descriptors of these very pointers, so every call initializes (host only:
  // the descriptors are encoded on the host and passed by value to the launch).
  typename G::Adapter gemm;
  check_status(gemm.initialize(args, ws_bytes ? ws.data() : nullptr, stream), op, "initialize");
  check_status(gemm.run(stream), op, "run");
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace llama4::cuda::sm90a
