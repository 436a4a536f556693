// CUDA strided copy on one device: dst[i...] = src[i...] for tensors of the same shape and dtype
// with any strides (up to kMaxDims dimensions, negative and zero strides included) and any element
// size. Two contiguous tensors are one cudaMemcpyAsync; otherwise the layout is simplified
// (cuda/strided_layout.h) and the kernel maps each flat word index to both offsets.
#include "cuda/common.cuh"
#include "cuda/memory.h"
#include "cuda/strided_layout.h"

namespace llama4::cuda {

namespace {

// One word per thread and grid-stride step. Index is uint32_t when every flat index fits, which
// makes the per-dimension divisions several times cheaper than 64-bit ones.
template <typename W, typename Index>
__global__ void __launch_bounds__(kBlockThreads)
    copy_strided_kernel(W* __restrict__ dst, const W* __restrict__ src, Layout L, Index n) {
  const Index stride = Index(gridDim.x) * blockDim.x;
  for (Index i = Index(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    Index rem = i;
    int64_t so = 0, dof = 0;
#pragma unroll
    for (int d = kLayoutDims - 1; d >= 0; --d) {
      if (d >= L.nd) continue;
      const Index size = Index(L.shape[d]);
      const Index idx = rem % size;
      rem /= size;
      so += int64_t(idx) * L.src_stride[d];
      dof += int64_t(idx) * L.dst_stride[d];
    }
    dst[dof] = src[so];
  }
}

template <typename W>
void launch(cudaStream_t s, void* dst, const void* src, const Layout& L, int64_t n) {
  const unsigned blocks = grid_blocks(n, kBlockThreads);
  // With n <= 2^31, i + stride stays below 2^32, so the 32-bit loop cannot wrap.
  if (n <= (int64_t(1) << 31)) {
    copy_strided_kernel<W, uint32_t><<<blocks, kBlockThreads, 0, s>>>(
        static_cast<W*>(dst), static_cast<const W*>(src), L, uint32_t(n));
  } else {
    copy_strided_kernel<W, int64_t><<<blocks, kBlockThreads, 0, s>>>(
        static_cast<W*>(dst), static_cast<const W*>(src), L, n);
  }
  LLAMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace

void copy_strided(const Context& ctx, const TensorView& dst, const TensorView& src) {
  const int64_t numel = src.numel();
  if (numel == 0) return;
  const OpScope scope(ctx);
  const cudaStream_t s = scope.stream;
  if (dst.is_contiguous() && src.is_contiguous()) {
    LLAMA4_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, size_t(numel) * element_size(src.dtype),
                                      cudaMemcpyDeviceToDevice, s));
    return;
  }
  const Layout L = plan_strided_copy(dst, src);
  int64_t n = 1;
  for (int d = 0; d < L.nd; ++d) n *= L.shape[d];
  switch (L.word) {
    case 1: launch<uint8_t>(s, dst.data, src.data, L, n); break;
    case 2: launch<uint16_t>(s, dst.data, src.data, L, n); break;
    case 4: launch<uint32_t>(s, dst.data, src.data, L, n); break;
    case 8: launch<uint2>(s, dst.data, src.data, L, n); break;
    case 16: launch<uint4>(s, dst.data, src.data, L, n); break;
    default:
      throw Error(detail::concat("copy: unsupported element size ", L.word, " bytes (", __FILE__,
                                 ":", __LINE__, ")"));
  }
}

}  // namespace llama4::cuda
