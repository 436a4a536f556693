// The CUDA INT4 grouped GEMM over experts (cuda/moe_int4.h): runs the kernel the caller names
// (ops/moe_int4.cpp passes moe_int4_gemm_config's choice). Nothing is read back to the host: the
// expert offsets stay on the device for both kernels, so a step can be captured in a CUDA graph.
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "cuda/moe_int4.h"
#include "cuda/moe_int4_gemm_sm90a.h"
#include "cuda/moe_int4_kernels.h"

namespace llama4::cuda {

namespace {

int64_t group_size_of(const TensorView& w, const TensorView& w_scale) {
  return w.size(2) * 2 / w_scale.size(2);
}

// The scratch of a call: the caller's workspace, or a stream-ordered temporary of ctx.
struct Workspace {
  Tensor owned;
  char* base;
  Workspace(const Context& ctx, void* given, size_t bytes)
      : owned(given ? Tensor() : ctx.empty({int64_t(bytes)}, DType::U8)),
        base(static_cast<char*>(given ? given : owned.data())) {}
};

}  // namespace

size_t moe_grouped_gemm_int4_workspace_bytes(int device, int64_t experts) {
  return sm90a::grouped_gemm_int4_workspace_bytes(device, int(experts));
}

void moe_grouped_gemm_int4(const Context& ctx, const TensorView& out, const TensorView& x,
                           const TensorView& w, const TensorView& w_scale,
                           const TensorView& expert_offsets, void* workspace, MoeInt4Kernel kernel) {
  constexpr const char* op = "moe_grouped_gemm_int4";
  const int device = x.device.index;
  const int64_t E = w.size(0), N = w.size(1), K = x.size(1), G = group_size_of(w, w_scale);
  LLAMA4_CHECK_ARG(E <= kMoeInt4CudaMaxExperts, op, ": on CUDA the experts must be at most ",
                   kMoeInt4CudaMaxExperts, ", got ", E);
  LLAMA4_CHECK_ARG(K <= INT32_MAX && N <= INT32_MAX, op, ": on CUDA N and K must fit in int32, got N = ",
                   N, ", K = ", K);
  LLAMA4_CHECK_ARG(K % 32 == 0 && G % 32 == 0 && K % G == 0, op, ": on CUDA K and the group size must be "
                   "multiples of 32 and the group size must divide K, got K = ", K, ", group size ", G);
  for (const TensorView* t : {&x, &w})
    LLAMA4_CHECK_ARG(is_aligned(t->data, 16), op, ": on CUDA 'x' and 'w' must be 16-byte aligned");
  const OpScope scope(ctx);
  int4::GroupedInt4 p;
  p.x = x.data;
  p.w = static_cast<const uint8_t*>(w.data);
  p.w_scale = w_scale.data;
  p.out = out.data;
  p.expert_offsets = expert_offsets.ptr<int32_t>();
  p.experts = int(E);
  p.rows = x.size(0);
  p.n = int(N);
  p.k = int(K);
  p.group = int(G);
  if (kernel == MoeInt4Kernel::Gemv) {
    int4::grouped_gemv(scope.stream, p, device);
    return;
  }
  LLAMA4_CHECK_ARG(N % 8 == 0 && G % kMoeInt4CutlassGroupMultiple == 0, op, ": the cutlass kernel "
                   "needs N % 8 == 0 and a group size that is a multiple of ", kMoeInt4CutlassGroupMultiple,
                   ", got N = ", N, ", group size ", G);
  LLAMA4_CHECK_ARG(is_aligned(out.data, 16), op, ": the cutlass kernel needs 'out' 16-byte aligned");
  // CUTLASS reads the scales n-contiguous: [E, K / G, N], written for the experts with rows.
  const Tensor scale_t = ctx.empty({E, K / G, N}, DType::BF16);
  int4::transpose_scales(scope.stream, p, scale_t.data());
  const size_t bytes = moe_grouped_gemm_int4_workspace_bytes(device, E);
  Workspace ws(ctx, workspace, bytes);
  sm90a::GroupedGemmInt4 g;
  g.x = p.x;
  g.w = p.w;
  g.w_scale_t = scale_t.data();
  g.out = p.out;
  g.expert_offsets = p.expert_offsets;
  g.experts = p.experts;
  g.rows = p.rows;
  g.n = p.n;
  g.k = p.k;
  g.group = p.group;
  sm90a::grouped_gemm_int4(g, ws.base, bytes, device, scope.stream);
}

}  // namespace llama4::cuda
