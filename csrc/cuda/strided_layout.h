// Layout simplification for the CUDA strided copy (host code, no CUDA): the pair (dst, src) of
// same-shape views becomes an equivalent list of at most kMaxDims + 1 dimensions over "words":
// size-1 dimensions dropped, dimensions contiguous in both merged, the innermost contiguous run
// widened to 2/4/8/16-byte words when sizes, strides and pointers allow, or elements split into
// bytes when a base pointer is not aligned to the element size. Copying word i of the flat
// row-major index space from src to dst then equals copying the tensors.
#pragma once
#include <cstdint>

#include "llama4/tensor.h"

namespace llama4::cuda {

inline bool is_aligned_to(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % uint64_t(bytes) == 0;
}

// One more dimension than a tensor can have: splitting misaligned elements into bytes adds one.
constexpr int kLayoutDims = kMaxDims + 1;

struct Layout {
  int nd = 0;                            // dimensions after simplification, outermost first
  int64_t shape[kLayoutDims] = {};
  int64_t src_stride[kLayoutDims] = {};  // in words
  int64_t dst_stride[kLayoutDims] = {};
  int64_t word = 1;                      // bytes per copied word
};

inline Layout simplify(const TensorView& dst, const TensorView& src) {
  Layout L;
  L.word = int64_t(element_size(src.dtype));
  for (int d = 0; d < src.ndim; ++d) {
    if (src.shape[d] == 1) continue;
    const int i = L.nd;
    if (i > 0 && L.src_stride[i - 1] == src.strides[d] * src.shape[d] &&
        L.dst_stride[i - 1] == dst.strides[d] * src.shape[d]) {
      // The previous (outer) dimension steps exactly over this one in both tensors: merge.
      L.shape[i - 1] *= src.shape[d];
      L.src_stride[i - 1] = src.strides[d];
      L.dst_stride[i - 1] = dst.strides[d];
      continue;
    }
    L.shape[i] = src.shape[d];
    L.src_stride[i] = src.strides[d];
    L.dst_stride[i] = dst.strides[d];
    L.nd = i + 1;
  }
  if (L.nd == 0) {  // a single element
    L.nd = 1;
    L.shape[0] = 1;
    L.src_stride[0] = L.dst_stride[0] = 1;
  }
  return L;
}

// Elements at addresses not aligned to their size (possible with foreign DLPack views) are copied
// byte by byte: an innermost dimension of `word` bytes is added.
inline void split_into_bytes(Layout& L) {
  for (int d = 0; d < L.nd; ++d) {
    L.src_stride[d] *= L.word;
    L.dst_stride[d] *= L.word;
  }
  L.shape[L.nd] = L.word;
  L.src_stride[L.nd] = L.dst_stride[L.nd] = 1;
  ++L.nd;
  L.word = 1;
}

// Copy words of up to 16 bytes when the innermost run is contiguous in both tensors and every
// stride and both base pointers allow it.
inline void widen(Layout& L, const void* dst, const void* src) {
  const int last = L.nd - 1;
  if (L.src_stride[last] != 1 || L.dst_stride[last] != 1) return;
  for (int64_t bytes = 16; bytes > L.word; bytes /= 2) {
    if (bytes % L.word) continue;
    const int64_t f = bytes / L.word;
    bool ok = L.shape[last] % f == 0 && is_aligned_to(dst, bytes) && is_aligned_to(src, bytes);
    for (int d = 0; ok && d < last; ++d) ok = L.src_stride[d] % f == 0 && L.dst_stride[d] % f == 0;
    if (!ok) continue;
    L.shape[last] /= f;
    for (int d = 0; d < last; ++d) {
      L.src_stride[d] /= f;
      L.dst_stride[d] /= f;
    }
    L.word = bytes;
    return;
  }
}

// All three steps; returns the layout to launch.
inline Layout plan_strided_copy(const TensorView& dst, const TensorView& src) {
  Layout L = simplify(dst, src);
  if (!is_aligned_to(dst.data, L.word) || !is_aligned_to(src.data, L.word)) {
    split_into_bytes(L);
  } else {
    widen(L, dst.data, src.data);
  }
  return L;
}

}  // namespace llama4::cuda
