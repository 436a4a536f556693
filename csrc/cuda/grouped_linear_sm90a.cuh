// The bf16 grouped GEMM of grouped_linear (the MoE experts) on Hopper: CUTLASS ptr-array grouped
// kernels (sm_90a), bf16 x bf16 -> bf16 with fp32 accumulation, one group per expert:
//   out[r, :] = bf16_rne( x[r, :] . w[e]^T )   for the rows r in [offsets[e], offsets[e + 1])
// x [R, K] and out [R, N] row-major, w [E, N, K] (nn.Linear layout): both operands K-major ("TN").
//
// Two configurations (linear_kernel in llama4/linear_config.h picks one; each is instantiated in
// its own grouped_linear_*_sm90a.cu):
//   CutlassGrouped        cooperative 128x128x64, cluster 1x2 (the x tile multicast to 2 CTAs
//                         along N), for prefill-sized groups;
//   CutlassGroupedSwapAB  ping-pong 64x32x64, cluster 1x1, computing out^T = w . x^T: the weights
//                         fill the 64-row M tile and an expert's few tokens the 32-column N tile;
//                         out^T column-major is out row-major, so nothing is transposed.
// The FP8 grouped GEMM (moe_gemm_sm90a.cu) has the same two shapes with K tiles of 128 bytes;
// both share cuda/cutlass_sm90a.cuh: per-group arguments built on the device from the device
// offsets (no host copy, no host wait), a persistent grid with no host problem shapes (groups
// with no rows get no tiles), and the initialized GEMM cached across calls.
#pragma once
#include <cuda_runtime.h>

#include <type_traits>

#include "cuda/cutlass_sm90a.cuh"
#include "cuda/linear_sm90a.h"

#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/operations.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>

namespace llama4::cuda::sm90a {

namespace grouped_bf16 {

using namespace cute;
using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;  // per group (M, N, K)
using Bf16 = cutlass::bfloat16_t;
constexpr int kAlign = 8;  // bf16 elements per 16-byte TMA access

template <bool kSwap>
struct Config;
template <>
struct Config<false> {
  using Tile = cute::Shape<_128, _128, _64>;
  using Cluster = cute::Shape<_1, _2, _1>;
  using Kernel = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative;
  using Epilogue = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative;
};
template <>
struct Config<true> {
  using Tile = cute::Shape<_64, _32, _64>;
  using Cluster = cute::Shape<_1, _1, _1>;
  using Kernel = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpong;
  using Epilogue = cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong;
};

template <bool kSwap>
struct Gemm {
  using C = Config<kSwap>;
  static constexpr bool kSwapAB = kSwap;
  using LayoutA = cutlass::layout::RowMajor;     // [M, K]: K contiguous
  using LayoutB = cutlass::layout::ColumnMajor;  // [K, N] column-major = [N, K] with K contiguous
  using LayoutD = std::conditional_t<kSwap, cutlass::layout::ColumnMajor, cutlass::layout::RowMajor>;
  // D = bf16_rne(1 * acc): no C operand.
  using Fusion = cutlass::epilogue::fusion::LinearCombination<Bf16, float, void, float,
                                                              cutlass::FloatRoundStyle::round_to_nearest>;
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, typename C::Tile, typename C::Cluster,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, LayoutD*, kAlign,
      Bf16, LayoutD*, kAlign, typename C::Epilogue, Fusion>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Bf16, LayoutA*, kAlign, Bf16, LayoutB*,
      kAlign, float, typename C::Tile, typename C::Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<
          static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      typename C::Kernel>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Adapter = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using StrideA = typename Kernel::InternalStrideA;  // (K, 1, 0)
  using StrideB = typename Kernel::InternalStrideB;  // (K, 1, 0)
  using StrideD = typename Kernel::InternalStrideD;  // row-major (N, 1) / column-major (1, N)
};

// The per-group argument arrays CUTLASS reads (device memory, `groups` entries each).
template <class G>
struct GroupArgs {
  typename ProblemShape::UnderlyingProblemShape* problems;
  const Bf16** ptr_a;
  const Bf16** ptr_b;
  Bf16** ptr_d;
  typename G::StrideA* stride_a;
  typename G::StrideB* stride_b;
  typename G::StrideD* stride_d;
};

// Carves the arrays from `base` (nullptr: only measures); returns the bytes used.
template <class G>
size_t carve_args(char* base, int groups, GroupArgs<G>* out) {
  Carver c(base);
  GroupArgs<G> a{};
  c.take(a.problems, groups);
  c.take(a.ptr_a, groups);
  c.take(a.ptr_b, groups);
  c.take(a.ptr_d, groups);
  c.take(a.stride_a, groups);
  c.take(a.stride_b, groups);
  c.take(a.stride_d, groups);
  if (out) *out = a;
  return c.bytes();
}

// One thread per group.
template <class G>
__global__ void build_group_args_kernel(GroupArgs<G> g, GroupedGemmBf16 p) {
  for (int e = threadIdx.x; e < p.groups; e += blockDim.x) {
    int64_t r0, r1;
    group_rows(p.offsets, e, p.rows, r0, r1);
    set_tn_group<G::kSwapAB>(g, e, int(r1 - r0), p.n, p.k, static_cast<const Bf16*>(p.x) + r0 * p.k,
                             static_cast<const Bf16*>(p.w) + int64_t(e) * p.n * p.k,
                             static_cast<Bf16*>(p.out) + r0 * p.n);
  }
}

template <class G>
typename G::Adapter::Arguments make_arguments(const GroupArgs<G>& g, int groups, int device) {
  typename G::Adapter::Arguments args{};
  args.mode = cutlass::gemm::GemmUniversalMode::kGrouped;
  args.problem_shape = {groups, g.problems, nullptr};  // sizes on the device only
  args.mainloop.ptr_A = g.ptr_a;
  args.mainloop.dA = g.stride_a;
  args.mainloop.ptr_B = g.ptr_b;
  args.mainloop.dB = g.stride_b;
  auto& f = args.epilogue.thread;
  f.alpha = 1.f;
  f.beta = 0.f;
  f.alpha_ptr = nullptr;
  f.beta_ptr = nullptr;
  f.alpha_ptr_array = nullptr;
  f.beta_ptr_array = nullptr;
  args.epilogue.ptr_C = nullptr;
  args.epilogue.dC = nullptr;
  args.epilogue.ptr_D = g.ptr_d;
  args.epilogue.dD = g.stride_d;
  args.hw_info.device_id = device;
  args.hw_info.sm_count = sm_count_of(device);
  return args;
}

}  // namespace grouped_bf16

template <bool kSwapAB>
size_t grouped_gemm_bf16_config_workspace_bytes(int device, int groups) {
  using G = grouped_bf16::Gemm<kSwapAB>;
  DeviceGuard guard(device);
  grouped_bf16::GroupArgs<G> g{};
  const size_t args = grouped_bf16::carve_args<G>(nullptr, groups, nullptr);
  return args + align256(G::Adapter::get_workspace_size(grouped_bf16::make_arguments<G>(g, groups, device)));
}

template <bool kSwapAB>
void grouped_gemm_bf16_config(const GroupedGemmBf16& p, void* workspace, size_t workspace_bytes,
                              int device, cudaStream_t stream) {
  constexpr const char* op = "grouped_linear";
  using G = grouped_bf16::Gemm<kSwapAB>;
  static InitializedGemms<typename G::Adapter> cache;
  DeviceGuard guard(device);
  require_sm90(device, op, "the CUTLASS bf16 grouped GEMM");
  char* ws = static_cast<char*>(workspace);
  grouped_bf16::GroupArgs<G> g{};
  const size_t args_bytes = grouped_bf16::carve_args<G>(ws, p.groups, &g);
  auto make = [&] { return grouped_bf16::make_arguments<G>(g, p.groups, device); };
  const size_t need = args_bytes + align256(G::Adapter::get_workspace_size(make()));
  LLAMA4_CHECK(workspace_bytes >= need, op, ": workspace of ", workspace_bytes, " bytes, need ", need);
  grouped_bf16::build_group_args_kernel<G><<<1, 256, 0, stream>>>(g, p);
  LLAMA4_CUDA_CHECK_LAUNCH();
  const auto gemm = cache.get(device, p.groups, ws, 0, op, make, ws + args_bytes, stream);
  check_status(gemm->run(stream), op, "run");
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace llama4::cuda::sm90a
