// The execution context every op runs in (DESIGN.md: "Every op runs in an execution context"):
//   device   where the op's tensors live (cpu or cuda:N); an op rejects tensors on another device
//            (copies between the host and ctx's GPU are the one exception)
//   stream   the CUDA stream the op's kernels and copies are queued on (a cudaStream_t, opaque
//            here so this header needs no CUDA): work on one context runs in order and nothing in
//            an op waits for the host, except a copy into host memory
//   memory   empty()/zeros() temporaries come from a stream-ordered caching allocator (a per-device
//            CUDA memory pool that keeps what it reserved): memory freed by work queued on a stream
//            is reused by later work without cudaMalloc, cudaFree or a synchronisation; on the CPU,
//            blocks of 1 MiB and more are kept and reused (no page faults on a step's activations)
//   comm     when the model spans several ranks, the communicator of their group
//            (llama4/communicator.h); none for a single rank
// Contexts are cheap values (a device, a stream handle, a shared communicator); the pool behind
// them is per device.
// From Python the stream is torch's current stream, exchanged through the DLPack stream handshake
// (csrc/python/tensor_bridge.h); C++ callers pass their own or take the per-thread default stream.
#pragma once
#include <cstdint>
#include <memory>

#include "llama4/tensor.h"

namespace llama4 {

class Communicator;

class Context {
 public:
  // The legacy default stream (handle 0) and the per-thread default stream (cudaStreamPerThread),
  // spelled without CUDA headers.
  static void* legacy_stream() { return nullptr; }
  static void* per_thread_stream() { return reinterpret_cast<void*>(uintptr_t(2)); }

  Context() = default;  // the CPU
  static Context cpu() { return Context(); }
  // cuda:index with its work queued on `stream` (a cudaStream_t; by default the per-thread default
  // stream, which never waits for other threads' work).
  static Context cuda(int index, void* stream = per_thread_stream());
  // cpu, or cuda:N on the per-thread default stream.
  static Context on(Device device);

  Device device() const { return device_; }
  bool is_cuda() const { return device_.is_cuda(); }
  void* stream() const { return stream_; }  // a cudaStream_t; nullptr on the CPU and for stream 0

  // The same device and stream with `comm` for collectives (nullptr: none).
  Context with_communicator(std::shared_ptr<Communicator> comm) const {
    Context c = *this;
    c.comm_ = std::move(comm);
    return c;
  }
  Communicator* communicator() const { return comm_.get(); }
  // Rank and size of the group (0 and 1 without a communicator).
  int rank() const;
  int world_size() const;

  // Temporaries on this context's device. CUDA: from the device's pool, stream-ordered on
  // stream(): the memory may be used by work queued on stream() right away, and when the last
  // Tensor owning it goes away it returns to the pool after the work queued on stream() (and on
  // any stream it was handed to through DLPack) so far.
  Tensor empty(const Shape& shape, DType dtype) const;
  Tensor zeros(const Shape& shape, DType dtype) const;  // zero-filled on stream()
  // Zero-fills a contiguous tensor of this device, queued on stream().
  void zero(const TensorView& t) const;

  // Waits until the work queued on stream() has finished (a no-op on the CPU). Only for callers
  // that hand results to the host by other means than ops::copy (which waits by itself).
  void synchronize() const;

 private:
  Device device_;
  void* stream_ = nullptr;
  std::shared_ptr<Communicator> comm_;
};

}  // namespace llama4
