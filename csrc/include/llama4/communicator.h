// The communicator of a model that spans several ranks (DESIGN.md: the execution context carries
// it): all_reduce, broadcast and all_gather over the ranks of one tensor-parallel group.
//   gloo   CPU ranks (processes), gloo's TCP transport; tensors in host memory. Built when CMake
//          finds Debian's libgloo-dev (make_gloo_communicator raises otherwise).
//   nccl   GPU ranks, one GPU each; NCCL is loaded at run time (dlopen of libnccl.so.2, from the
//          nvidia-nccl-cu13 wheel or the system) so the library works without it. Collectives are
//          queued on the context's stream and never wait for the host (CUDA-graph capturable);
//          wait() bounds the time a rank waits for its peers.
// Rendezvous goes through a Store (a key-value table every rank can reach): FileStore (a folder
// on a shared file system; one host, or hosts sharing the folder), or the caller's own (Python
// wraps torch.distributed's TCPStore, the one torchrun starts).
// A peer that died or stopped answering makes every collective fail within `timeout_s` with a
// RankError naming the peer when it can be told (a process on this host that is gone or stopped).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llama4/error.h"
#include "llama4/tensor.h"

namespace llama4 {

class Context;

// A collective failed: a peer rank exited, hung past the timeout, or the transport broke.
// rank(): the peer blamed (-1 when it cannot be told).
class RankError : public Error {
 public:
  RankError(int rank, const std::string& message) : Error(message), rank_(rank) {}
  int rank() const { return rank_; }

 private:
  int rank_;
};

// A key-value table for the rendezvous; get() waits until the key is set.
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::string& value) = 0;
  // The value of `key` once some rank has set it; RankError after timeout_s seconds.
  virtual std::string get(const std::string& key, double timeout_s) = 0;
};

// One file per key in `dir` (created if missing), written to a temporary name and renamed, so a
// reader never sees half a value.
class FileStore : public Store {
 public:
  explicit FileStore(std::string dir);
  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key, double timeout_s) override;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

struct CommOptions {
  int rank = 0;
  int world_size = 1;
  double timeout_s = 60;           // a collective fails after this long
  // Joining the group (rendezvous, identities, NCCL's initialisation) fails after this long: ranks
  // finish loading their shards at different times, so this is far longer than a collective's.
  double rendezvous_timeout_s = 1800;
  std::string host = "127.0.0.1";  // gloo: the address this rank listens on
  std::string prefix = "llama4";   // key prefix in the store (several groups may share a store)
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  int rank() const { return rank_; }
  int size() const { return size_; }
  double timeout_s() const { return timeout_s_; }
  virtual const char* backend() const = 0;  // "gloo" or "nccl"

  // t = the sum of every rank's t, in place. float32 or bfloat16 (bf16: each partial sum rounded
  // to bf16 as it travels, as NCCL and gloo do), contiguous, on ctx's device.
  virtual void all_reduce(const Context& ctx, const TensorView& t) = 0;
  // t = root's t on every rank, in place; any dtype, contiguous. NCCL: t may also be host memory
  // (staged through the GPU, which waits for the copy: for per-step metadata, not weights).
  virtual void broadcast(const Context& ctx, const TensorView& t, int root) = 0;
  // out = the ranks' `in`, one after the other (rank order): in [n...], out [size * n...] of in's
  // dtype, both contiguous. NCCL: both may also be host memory (staged through the GPU).
  virtual void all_gather(const Context& ctx, const TensorView& out, const TensorView& in) = 0;
  // Waits until the collectives queued on ctx's stream have finished, at most timeout_s (then
  // RankError). A no-op for gloo, whose collectives finish before they return.
  virtual void wait(const Context& ctx) {}

  // Collectives run so far and the wall time spent in them (waiting for slower ranks included):
  // gloo counts every call; NCCL's calls only queue work, so it counts the time wait() waited.
  int64_t calls() const { return calls_; }
  double seconds() const { return seconds_; }

 protected:
  Communicator(int rank, int size, double timeout_s) : rank_(rank), size_(size), timeout_s_(timeout_s) {}
  // Every rank's "host pid" (set at rendezvous), to name a dead or stopped peer after a failure.
  void publish_identity(std::shared_ptr<Store> store, const std::string& prefix, double timeout_s);
  // `what` failed: a RankError naming the first peer on this host that is gone or stopped without
  // having failed itself (a rank that failed records so in the store first, so the peers blame
  // the rank that caused it, not the ones that gave up after it), else one saying that a peer did
  // not answer (with the transport's message).
  [[noreturn]] void fail(const std::string& what, const std::string& cause) const;

 private:
  int rank_, size_;
  double timeout_s_;

 protected:
  int64_t calls_ = 0;
  double seconds_ = 0;

 private:
  std::vector<std::string> peers_;  // "host pid" per rank
  std::shared_ptr<Store> store_;
  std::string prefix_;
};

// Gloo over TCP (CPU ranks); waits for every rank to join (at most options.timeout_s).
std::shared_ptr<Communicator> make_gloo_communicator(std::shared_ptr<Store> store, const CommOptions& options);
// NCCL on cuda:`device` (one GPU per rank); rank 0 creates the unique id and shares it through the
// store. ValueError naming the library when NCCL cannot be loaded.
std::shared_ptr<Communicator> make_nccl_communicator(std::shared_ptr<Store> store, const CommOptions& options,
                                                     int device);
bool gloo_available();   // this build has gloo
bool nccl_available();   // this build has CUDA and libnccl.so.2 loads
std::string nccl_library_error();  // why NCCL did not load ("" when it did)

}  // namespace llama4
