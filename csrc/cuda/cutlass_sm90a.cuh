// Plumbing shared by the CUTLASS sm_90a kernels (the bf16 dense GEMM and the bf16 / FP8 / INT4
// ptr-array grouped GEMMs): included only by *_sm90a.cu files, which CMake compiles for 90a alone.
//
// The grouped GEMMs keep their problem sizes on the device. Each call:
//   1. carves its per-group argument arrays (sizes, pointers, strides) from a device workspace;
//   2. a one-block kernel fills them from the device expert offsets (one thread per group), so the
//      host never reads the offsets and never waits;
//   3. runs CUTLASS with no host problem shapes (a persistent grid of one CTA per SM).
// CUTLASS's Params (the kernel's by-value argument block: the addresses of those arrays and TMA
// descriptor templates) depend only on (device, group count, workspace address, the kernel's own
// constants), not on the offsets or the data, so an initialized GEMM is cached under that key and
// later calls only launch: no host-side TMA descriptor encoding or attribute calls per call.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda/common.cuh"

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>

// Plain sm_90 compiles CUTLASS's wgmma/TMA kernels to empty stubs that abort at run time
// (TOOLCHAIN.md §2).
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "CUTLASS sm_90a kernels must be compiled for sm_90a only (arch 90a, never 90)"
#endif
#if !defined(CUTLASS_ARCH_MMA_MODIFIABLE_TMA_SM90_SUPPORTED)
#error "CUTLASS does not enable the SM90 TMA / ptr-array kernels: needs CUDA >= 12.3"
#endif

namespace llama4::cuda::sm90a {

constexpr size_t align256(size_t n) { return (n + 255) / 256 * 256; }

// Hands out 256-byte aligned arrays from one device buffer (base == nullptr: only measures).
class Carver {
 public:
  explicit Carver(char* base) : base_(base) {}
  template <class T>
  void take(T*& p, size_t count) {
    p = reinterpret_cast<T*>(base_ ? base_ + bytes_ : nullptr);
    bytes_ += align256(sizeof(T) * count);
  }
  size_t bytes() const { return bytes_; }

 private:
  char* base_;
  size_t bytes_ = 0;
};

inline int sm_count_of(int device) {
  int n = 0;
  LLAMA4_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
  return n;
}

// The kernels are sm_90a SASS only: on any other GPU they could not even load. TypeError, as for
// other unsupported inputs (`op` names the caller, `what` the kernel).
inline void require_sm90(int device, const char* op, const char* what) {
  int major = 0, minor = 0;
  LLAMA4_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  LLAMA4_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  LLAMA4_CHECK_TYPE(major == 9 && minor == 0, op, ": ", what, " is built for sm_90a (H100/H200); cuda:",
                    device, " is sm_", major, minor);
}

inline void check_status(cutlass::Status s, const char* op, const char* what) {
  LLAMA4_CHECK(s == cutlass::Status::kSuccess, op, ": CUTLASS ", what, " failed: ",
               cutlassGetStatusString(s));
}

// Rows [r0, r1) of group e: the offsets clamped to [0, rows] and made non-decreasing, so bad
// offsets can only drop rows, never address outside the buffers.
__device__ __forceinline__ void group_rows(const int32_t* offsets, int e, int64_t rows, int64_t& r0,
                                           int64_t& r1) {
  const int64_t lo = offsets[e], hi = offsets[e + 1];
  r0 = lo < 0 ? 0 : (lo > rows ? rows : lo);
  r1 = hi < r0 ? r0 : (hi > rows ? rows : hi);
}

// One group of a "TN" grouped GEMM: rows [m, k] (K-major) times w [n, k]^T (K-major) into out
// [m, n] row-major. Plain: GEMM (m, n, k) with A = rows, B = w, D row-major. Swap-AB: GEMM
// (n, m, k) with A = w, B = rows, D = out^T column-major (the same memory as out row-major), so
// the weights fill the 64-row M tile and an expert's few tokens the narrow N tile.
// Args needs problems / ptr_a / ptr_b / ptr_d / stride_a / stride_b / stride_d arrays.
template <bool kSwapAB, class Args, class TRows, class TW, class TD>
__device__ __forceinline__ void set_tn_group(const Args& g, int e, int m, int n, int k, TRows rows,
                                             TW w, TD out) {
  using Problem = std::remove_reference_t<decltype(g.problems[0])>;
  using StrideA = std::remove_reference_t<decltype(g.stride_a[0])>;
  using StrideB = std::remove_reference_t<decltype(g.stride_b[0])>;
  using StrideD = std::remove_reference_t<decltype(g.stride_d[0])>;
  StrideA sa{};
  StrideB sb{};
  StrideD sd{};
  cute::get<0>(sa) = k;
  cute::get<0>(sb) = k;
  g.problems[e] = kSwapAB ? Problem{n, m, k} : Problem{m, n, k};
  if constexpr (kSwapAB) {
    g.ptr_a[e] = w;
    g.ptr_b[e] = rows;
    cute::get<1>(sd) = n;  // column-major (1, n)
  } else {
    g.ptr_a[e] = rows;
    g.ptr_b[e] = w;
    cute::get<0>(sd) = n;  // row-major (n, 1)
  }
  g.ptr_d[e] = out;
  g.stride_a[e] = sa;
  g.stride_b[e] = sb;
  g.stride_d[e] = sd;
}

// Initialized CUTLASS GEMMs (GemmUniversalAdapter: it holds the Params) for one kernel type, keyed
// by (device, groups, workspace address, extra: any other host value the arguments hold). The
// most recently used entries are kept (a stream-ordered pool hands a few workspace addresses back
// in turn); an evicted GEMM still running on another thread stays alive through its shared_ptr.
template <class Gemm>
class InitializedGemms {
 public:
  // The GEMM for this key, initialized from make_arguments() on a miss (can_implement checked).
  template <class MakeArguments>
  std::shared_ptr<Gemm> get(int device, int groups, const void* workspace, int64_t extra,
                            const char* op, MakeArguments&& make_arguments, void* cutlass_workspace,
                            cudaStream_t stream) {
    const Key key{device, groups, workspace, extra};
    {
      const std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < entries_.size(); ++i) {
        if (entries_[i].first == key) {
          auto hit = entries_[i];
          entries_.erase(entries_.begin() + int64_t(i));
          entries_.push_back(hit);
          return hit.second;
        }
      }
    }
    const auto arguments = make_arguments();
    auto gemm = std::make_shared<Gemm>();
    check_status(Gemm::can_implement(arguments), op, "can_implement");
    // Grouped kernels' workspace needs no device-side initialization (their TMA descriptors are
    // written per CTA inside the kernel), so the stream here only orders nothing; it is passed for
    // CUTLASS's interface.
    check_status(gemm->initialize(arguments, cutlass_workspace, stream), op, "initialize");
    const std::lock_guard<std::mutex> lock(mu_);
    if (entries_.size() >= kMaxEntries) entries_.erase(entries_.begin());
    entries_.emplace_back(key, gemm);
    return gemm;
  }

 private:
  struct Key {
    int device;
    int groups;
    const void* workspace;
    int64_t extra;
    bool operator==(const Key& o) const {
      return device == o.device && groups == o.groups && workspace == o.workspace && extra == o.extra;
    }
  };
  static constexpr size_t kMaxEntries = 16;
  std::mutex mu_;
  std::vector<std::pair<Key, std::shared_ptr<Gemm>>> entries_;
};

}  // namespace llama4::cuda::sm90a
