// The INT4 (W4A16) grouped GEMM of the MoE experts on Hopper for prefill-sized groups: CUTLASS's
// mixed-input ptr-array grouped kernel (sm_90a), int4 weights x bf16 activations -> bf16, one group
// per expert, group-wise bf16 scales along K. What it computes (llama4/moe_int4_config.h):
//   out[r, n] = bf16_rne( sum_k float(x[r, k]) * float(bf16_rne(q[e, n, k] * s[e, n, k / G])) )
// i.e. "dequantize to bf16, then the bf16 matmul" (tensor-core fp32 accumulation): the mainloop
// converts each int4 to bf16 in registers and multiplies it by its group's bf16 scale (a bf16
// product, rounded once) before the wgmma.
//
// CUTLASS's mixed-input mainloop keeps the narrow type in registers and requires it as operand A,
// so the GEMM is swapped as the FP8 decode path is: per expert it computes out^T = W . x^T with
//   A = W   [n, k] int4, K-major (the op's [E, n, k / 2] bytes as they are)
//   B = x^T [k, m] bf16, column-major (the token rows of the expert as they are)
//   D = out^T [n, m] column-major = out [m, n] row-major (the same memory)
// and the scales as an [n, k / G] column-major (n contiguous) tensor: the caller passes them
// transposed (CUTLASS's scale operand must be MN-major).
//
// Tile 128 (weight rows) x 128 (tokens) x 64 (K: 128 bytes of bf16), cooperative schedule (two
// consumer warp groups split the 128 weight rows), cluster 1x1. Problem sizes stay on the device: a
// one-block kernel writes the per-group sizes, pointers and strides from the expert offsets, and
// CUTLASS runs with no host problem shapes (grid = one persistent CTA per SM), so nothing waits for
// the host. Groups with no rows get no tiles. The initialized GEMM is cached across calls (the
// plumbing shared with the bf16 and FP8 grouped GEMMs: cuda/cutlass_sm90a.cuh).
#include <cuda_runtime.h>

#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/cutlass_sm90a.cuh"
#include "cuda/moe_int4_gemm_sm90a.h"

#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/operations.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>

namespace llama4::cuda::sm90a {

namespace {

using namespace cute;
using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;  // per group (M, N, K)
using Int4 = cutlass::int4b_t;
using Bf16 = cutlass::bfloat16_t;
constexpr auto kRne = cutlass::FloatRoundStyle::round_to_nearest;
constexpr int kAlignInt4 = 32;  // elements per 16-byte TMA access
constexpr int kAlignBf16 = 8;

struct Int4GroupedGemm {
  using TileShape = cute::Shape<_128, _128, cute::Int<kInt4GemmTileK>>;
  using Cluster = cute::Shape<_1, _1, _1>;
  using LayoutW = cutlass::layout::RowMajor;     // A = W [n, k]: k contiguous
  using LayoutX = cutlass::layout::ColumnMajor;  // B = x^T [k, m] column-major = x [m, k] row-major
  using LayoutD = cutlass::layout::ColumnMajor;  // D = out^T [n, m] column-major = out [m, n]

  // D = bf16_rne(1 * acc): no C operand.
  using Fusion = cutlass::epilogue::fusion::LinearCombination<Bf16, float, void, float, kRne>;
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, Cluster,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, LayoutD*, kAlignBf16,
      Bf16, LayoutD*, kAlignBf16,
      cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative, Fusion>::CollectiveOp;
  // The scaled operand is a tuple {int4, scale type}: ConvertAndScale mode.
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      cute::tuple<Int4, Bf16>, LayoutW*, kAlignInt4,
      Bf16, LayoutX*, kAlignBf16, float, TileShape, Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<
          static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using StrideW = typename Kernel::InternalStrideA;   // (k, 1, 0)
  using StrideX = typename Kernel::InternalStrideB;   // (k, 1, 0)
  using StrideD = typename Kernel::InternalStrideD;   // (1, n, 0)
  using StrideS = typename Mainloop::NonVoidStrideScale;  // (1, n, n k / G): scale [n, k / G], n contiguous
  static_assert(Mainloop::KernelConversionMode == Mainloop::ConversionMode::ConvertAndScale,
                "the mainloop must scale the converted weights");
};
using G = Int4GroupedGemm;

// The per-group argument arrays CUTLASS reads (device memory, E entries each). A = W, B = x^T.
struct GroupArgs {
  ProblemShape::UnderlyingProblemShape* problems;
  const Int4** ptr_a;
  const Bf16** ptr_b;
  const Bf16** ptr_s;
  Bf16** ptr_d;
  G::StrideW* stride_a;
  G::StrideX* stride_b;
  G::StrideS* stride_s;
  G::StrideD* stride_d;
};

// Carves the arrays from `base` (nullptr: only measures); returns the bytes used.
size_t carve_args(char* base, int E, GroupArgs* out) {
  Carver c(base);
  GroupArgs a{};
  c.take(a.problems, E);
  c.take(a.ptr_a, E);
  c.take(a.ptr_b, E);
  c.take(a.ptr_s, E);
  c.take(a.ptr_d, E);
  c.take(a.stride_a, E);
  c.take(a.stride_b, E);
  c.take(a.stride_s, E);
  c.take(a.stride_d, E);
  if (out) *out = a;
  return c.bytes();
}

// One thread per expert: its rows [r0, r1) of x / out (offsets clamped to [0, R]). Swap-AB:
// GEMM (n, m, k) with A = W, B = x^T, D = out^T column-major.
__global__ void build_group_args_kernel(GroupArgs g, GroupedGemmInt4 p) {
  for (int e = threadIdx.x; e < p.experts; e += blockDim.x) {
    int64_t r0, r1;
    group_rows(p.expert_offsets, e, p.rows, r0, r1);
    const int64_t groups = p.k / p.group;
    // Byte offsets: int4 pointers are raw addresses (CUTLASS does the sub-byte arithmetic).
    const auto* w = reinterpret_cast<const Int4*>(static_cast<const char*>(p.w) + int64_t(e) * p.n * (p.k / 2));
    set_tn_group<true>(g, e, int(r1 - r0), p.n, p.k, static_cast<const Bf16*>(p.x) + r0 * p.k, w,
                       static_cast<Bf16*>(p.out) + r0 * p.n);
    g.ptr_s[e] = static_cast<const Bf16*>(p.w_scale_t) + int64_t(e) * groups * p.n;
    G::StrideS ss{};
    get<1>(ss) = p.n;
    get<2>(ss) = groups * p.n;  // packed, as CUTLASS's examples (one batch: never stepped)
    g.stride_s[e] = ss;
  }
}

G::Gemm::Arguments make_arguments(const GroupArgs& g, int experts, int group, int device, int sm_count) {
  G::Gemm::Arguments args{};
  args.mode = cutlass::gemm::GemmUniversalMode::kGrouped;
  args.problem_shape = {experts, g.problems, nullptr};  // sizes on the device only
  args.mainloop.ptr_A = g.ptr_a;
  args.mainloop.dA = g.stride_a;
  args.mainloop.ptr_B = g.ptr_b;
  args.mainloop.dB = g.stride_b;
  args.mainloop.ptr_S = g.ptr_s;
  args.mainloop.dS = g.stride_s;
  args.mainloop.chunk_size = group;
  args.mainloop.ptr_Z = nullptr;
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
  args.hw_info.sm_count = sm_count;
  return args;
}

}  // namespace

size_t grouped_gemm_int4_workspace_bytes(int device, int experts) {
  DeviceGuard guard(device);
  const size_t args = carve_args(nullptr, experts, nullptr);
  GroupArgs g{};
  const auto arguments = make_arguments(g, experts, kInt4GemmTileK, device, sm_count_of(device));
  return args + align256(G::Gemm::get_workspace_size(arguments));
}

void grouped_gemm_int4(const GroupedGemmInt4& p, void* workspace, size_t workspace_bytes, int device,
                       cudaStream_t stream) {
  constexpr const char* op = "moe_grouped_gemm_int4";
  static InitializedGemms<G::Gemm> cache;
  DeviceGuard guard(device);
  require_sm90(device, op, "the CUTLASS INT4 grouped GEMM");
  // The mainloop's own preconditions, which can_implement checks only with host problem shapes.
  LLAMA4_CHECK(p.n % 8 == 0 && p.group % kInt4GemmTileK == 0 && p.k % p.group == 0,
               "moe_grouped_gemm_int4: the CUTLASS kernel needs n % 8 == 0 and the group size a "
               "multiple of ", kInt4GemmTileK, " dividing k; got n = ", p.n, ", k = ", p.k,
               ", group = ", p.group);
  char* ws = static_cast<char*>(workspace);
  GroupArgs g{};
  const size_t args_bytes = carve_args(ws, p.experts, &g);
  auto make = [&] { return make_arguments(g, p.experts, p.group, device, sm_count_of(device)); };
  const size_t need = args_bytes + align256(G::Gemm::get_workspace_size(make()));
  LLAMA4_CHECK(workspace_bytes >= need, op, ": workspace of ", workspace_bytes, " bytes, need ", need);
  build_group_args_kernel<<<1, 256, 0, stream>>>(g, p);
  LLAMA4_CUDA_CHECK_LAUNCH();
  // The group size is the one host value the arguments hold besides the workspace's arrays.
  const auto gemm = cache.get(device, p.experts, ws, p.group, op, make, ws + args_bytes, stream);
  check_status(gemm->run(stream), op, "run");
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace llama4::cuda::sm90a
