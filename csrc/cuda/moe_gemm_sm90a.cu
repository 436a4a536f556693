// The FP8 grouped GEMM of the MoE experts on Hopper: CUTLASS ptr-array grouped kernels (sm_90a),
// e4m3 x e4m3 -> bf16 with fp32 accumulation, one group per expert. Contract (llama4/moe_fp8.h):
//   out[r, n] = bf16_rne( (float(sum_k a[r, k] * w[e, n, k]) * w_scale[e, n]) * a_scale[r] )
// for the rows r in [off[e], off[e + 1]) of expert e: a [R, K] and out [R, N] row-major, w [E, N, K]
// (nn.Linear layout), so both operands are K-major ("TN", what FP8 wgmma needs).
//
// The two compiled configurations (TOOLCHAIN.md §2/§5; the choice: moe_gemm_config in
// ops/moe_gemm_config.cpp):
//   Prefill  cooperative 128x128x128, cluster 1x2 (the A tile multicast to 2 CTAs along N).
//   Decode   swap-AB ping-pong 64x32x128, cluster 1x1: computes out^T = w . a^T, so the weights
//            fill the 64-row M tile and an expert's few tokens the 32-column N tile. out^T
//            column-major is out row-major: the same memory, no transpose anywhere.
// The non-"FastAccum" schedules: the mainloop adds the tensor cores' partial sums into fp32
// registers every 4 k-blocks (CUTLASS's FP8 promotion), so long K sums keep fp32 precision.
//
// Epilogue (an EVT, stock CUTLASS nodes with one pointer per group): (acc * w_scale) * a_scale,
// fp32, then one round-to-nearest-even to bf16 — the CPU emulation's exact order. The w_scale
// vector runs along the GEMM's N (Sm90RowBroadcast), a_scale along M (Sm90ColBroadcast); swap-AB
// exchanges them. Problem sizes stay on the device: a one-block kernel writes the per-group sizes,
// pointers and strides from the expert offsets, and CUTLASS runs with no host problem shapes
// (grid = one persistent CTA per SM), so nothing waits for the host. Groups with no rows get no
// tiles. The initialized GEMM is cached across calls (the plumbing shared with the bf16 and INT4
// grouped GEMMs: cuda/cutlass_sm90a.cuh).
#include <cuda_runtime.h>

#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/cutlass_sm90a.cuh"
#include "cuda/moe_gemm_sm90a.h"

#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>

namespace llama4::cuda::sm90a {

namespace {

using namespace cute;
namespace fusion = cutlass::epilogue::fusion;
using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;  // per group (M, N, K)
using Fp8 = cutlass::float_e4m3_t;
using Bf16 = cutlass::bfloat16_t;
constexpr auto kRne = cutlass::FloatRoundStyle::round_to_nearest;
constexpr int kAlignFp8 = 16;   // elements per 16-byte TMA access
constexpr int kAlignBf16 = 8;

template <class TileShape_, class ClusterShape, class KernelSchedule, class EpilogueSchedule, bool kSwap>
struct Fp8GroupedGemm {
  using TileShape = TileShape_;
  using Cluster = ClusterShape;
  static constexpr bool kSwapAB = kSwap;
  using LayoutA = cutlass::layout::RowMajor;     // [M, K]: K contiguous
  using LayoutB = cutlass::layout::ColumnMajor;  // [K, N] column-major = [N, K] with K contiguous
  using LayoutD = std::conditional_t<kSwap, cutlass::layout::ColumnMajor, cutlass::layout::RowMajor>;

  // Scale vectors, one pointer per group: ColScale varies with the GEMM row, RowScale with the
  // column. Alignment 1: a_scale + off[e] is only 4-byte aligned.
  using ColScale = fusion::Sm90ColBroadcast<0, TileShape, float*, float, cute::Stride<_1, _0, _0>, 1>;
  using RowScale = fusion::Sm90RowBroadcast<0, TileShape, float*, float, cute::Stride<_0, _1, _0>, 1>;
  using WScale = std::conditional_t<kSwap, ColScale, RowScale>;
  using AScale = std::conditional_t<kSwap, RowScale, ColScale>;
  using Evt = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiplies, Bf16, float, kRne>, AScale,
                              fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiplies, float, float, kRne>,
                                              WScale, fusion::Sm90AccFetch>>;

  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, LayoutD*, kAlignBf16,  // no C operand
      Bf16, LayoutD*, kAlignBf16, EpilogueSchedule, Evt>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Fp8, LayoutA*, kAlignFp8, Fp8, LayoutB*,
      kAlignFp8, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<
          static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      KernelSchedule>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using StrideA = typename Kernel::InternalStrideA;  // cute::Stride<int64_t, _1, _0>: (K, 1)
  using StrideB = typename Kernel::InternalStrideB;  // cute::Stride<int64_t, _1, _0>: (K, 1)
  using StrideD = typename Kernel::InternalStrideD;  // row-major (N, 1) / column-major (1, N)
};

using Prefill = Fp8GroupedGemm<cute::Shape<_128, _128, _128>, cute::Shape<_1, _2, _1>,
                               cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                               cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative, false>;
using Decode = Fp8GroupedGemm<cute::Shape<_64, _32, _128>, cute::Shape<_1, _1, _1>,
                              cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpong,
                              cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong, true>;

// The per-group argument arrays CUTLASS reads (device memory, E entries each).
template <class G>
struct GroupArgs {
  typename ProblemShape::UnderlyingProblemShape* problems;
  const Fp8** ptr_a;
  const Fp8** ptr_b;
  Bf16** ptr_d;
  const float** col_scale;  // scale vector along the GEMM rows
  const float** row_scale;  // scale vector along the GEMM columns
  typename G::StrideA* stride_a;
  typename G::StrideB* stride_b;
  typename G::StrideD* stride_d;
};

// Carves the arrays from `base` (nullptr: only measures); returns the bytes used.
template <class G>
size_t carve_args(char* base, int E, GroupArgs<G>* out) {
  Carver c(base);
  GroupArgs<G> a{};
  c.take(a.problems, E);
  c.take(a.ptr_a, E);
  c.take(a.ptr_b, E);
  c.take(a.ptr_d, E);
  c.take(a.col_scale, E);
  c.take(a.row_scale, E);
  c.take(a.stride_a, E);
  c.take(a.stride_b, E);
  c.take(a.stride_d, E);
  if (out) *out = a;
  return c.bytes();
}

// One thread per expert: rows [r0, r1) of a/out (offsets clamped to [0, R]).
template <class G>
__global__ void build_group_args_kernel(GroupArgs<G> g, GroupedGemmFp8 p) {
  for (int e = threadIdx.x; e < p.experts; e += blockDim.x) {
    int64_t r0, r1;
    group_rows(p.expert_offsets, e, p.rows, r0, r1);
    const float* a_scale = p.a_scale + r0;
    const float* w_scale = p.w_scale + int64_t(e) * p.n;
    set_tn_group<G::kSwapAB>(g, e, int(r1 - r0), p.n, p.k, static_cast<const Fp8*>(p.a) + r0 * p.k,
                             static_cast<const Fp8*>(p.w) + int64_t(e) * p.n * p.k,
                             static_cast<Bf16*>(p.out) + r0 * p.n);
    // The scale along the GEMM's rows and the one along its columns (swap-AB exchanges them).
    g.col_scale[e] = G::kSwapAB ? w_scale : a_scale;
    g.row_scale[e] = G::kSwapAB ? a_scale : w_scale;
  }
}

template <class G>
typename G::Gemm::Arguments make_arguments(const GroupArgs<G>& g, int experts, int device, int sm_count) {
  typename G::Gemm::Arguments args{};
  args.mode = cutlass::gemm::GemmUniversalMode::kGrouped;
  args.problem_shape = {experts, g.problems, nullptr};  // sizes on the device only
  args.mainloop.ptr_A = g.ptr_a;
  args.mainloop.dA = g.stride_a;
  args.mainloop.ptr_B = g.ptr_b;
  args.mainloop.dB = g.stride_b;
  auto& f = args.epilogue.thread;  // {AScale, {WScale, Acc, mul}, mul}
  if constexpr (G::kSwapAB) {
    f.op_0.ptr_row = g.row_scale;
    f.op_1.op_0.ptr_col = g.col_scale;
  } else {
    f.op_0.ptr_col = g.col_scale;
    f.op_1.op_0.ptr_row = g.row_scale;
  }
  args.epilogue.ptr_C = nullptr;
  args.epilogue.dC = nullptr;
  args.epilogue.ptr_D = g.ptr_d;
  args.epilogue.dD = g.stride_d;
  args.hw_info.device_id = device;
  args.hw_info.sm_count = sm_count;
  return args;
}

template <class G>
size_t workspace_bytes_of(int device, int experts) {
  const size_t args = carve_args<G>(nullptr, experts, nullptr);
  GroupArgs<G> g{};
  const auto arguments = make_arguments<G>(g, experts, device, sm_count_of(device));
  return args + align256(G::Gemm::get_workspace_size(arguments));
}

template <class G>
void run(const GroupedGemmFp8& p, char* workspace, size_t workspace_bytes, int device,
         cudaStream_t stream) {
  constexpr const char* op = "moe_grouped_gemm_fp8";
  static InitializedGemms<typename G::Gemm> cache;
  GroupArgs<G> g{};
  const size_t args_bytes = carve_args<G>(workspace, p.experts, &g);
  auto make = [&] { return make_arguments<G>(g, p.experts, device, sm_count_of(device)); };
  const size_t need = args_bytes + align256(G::Gemm::get_workspace_size(make()));
  LLAMA4_CHECK(workspace_bytes >= need, op, ": workspace of ", workspace_bytes, " bytes, need ", need);
  build_group_args_kernel<G><<<1, 256, 0, stream>>>(g, p);
  LLAMA4_CUDA_CHECK_LAUNCH();
  const auto gemm = cache.get(device, p.experts, workspace, 0, op, make, workspace + args_bytes, stream);
  check_status(gemm->run(stream), op, "run");
  LLAMA4_CUDA_CHECK_LAUNCH();
}

// The compiled tiles must be the ones the heuristic describes (it is what tests and logs print).
template <class G>
bool matches(const MoeGemmConfig& c) {
  using T = typename G::TileShape;
  using C = typename G::Cluster;
  return c.swap_ab == G::kSwapAB && c.tile_m == size<0>(T{}) && c.tile_n == size<1>(T{}) &&
         c.tile_k == size<2>(T{}) && c.cluster_m == size<0>(C{}) && c.cluster_n == size<1>(C{});
}

}  // namespace

size_t grouped_gemm_fp8_workspace_bytes(int device, int experts) {
  DeviceGuard guard(device);
  const size_t a = workspace_bytes_of<Prefill>(device, experts);
  const size_t b = workspace_bytes_of<Decode>(device, experts);
  return a > b ? a : b;
}

void grouped_gemm_fp8(const GroupedGemmFp8& p, const MoeGemmConfig& config, void* workspace,
                      size_t workspace_bytes, int device, cudaStream_t stream) {
  DeviceGuard guard(device);
  require_sm90(device, "moe_grouped_gemm_fp8", "the FP8 grouped GEMM");
  char* ws = static_cast<char*>(workspace);
  if (config.swap_ab) {
    LLAMA4_CHECK(matches<Decode>(config), "moe_grouped_gemm_fp8: no kernel compiled for ", config.name());
    run<Decode>(p, ws, workspace_bytes, device, stream);
  } else {
    LLAMA4_CHECK(matches<Prefill>(config), "moe_grouped_gemm_fp8: no kernel compiled for ", config.name());
    run<Prefill>(p, ws, workspace_bytes, device, stream);
  }
}

}  // namespace llama4::cuda::sm90a
