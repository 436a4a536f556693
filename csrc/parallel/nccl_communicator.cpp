// NCCL communicator (GPU ranks, one GPU each). libnccl.so.2 is opened at run time (dlopen): from
// LLAMA4_NCCL_LIBRARY when set (Python sets it to the nvidia-nccl-cu13 wheel's copy), else the
// loader's search path. So neither the build nor `import llama4_native` needs NCCL.
// Collectives are queued on the context's stream and never wait for the host; wait() polls the
// stream and NCCL's asynchronous error until timeout_s, then aborts the communicator (a peer that
// died or hangs would otherwise block the GPU forever) and raises RankError.
// The few NCCL declarations below are NCCL 2's stable C ABI (nccl.h), spelled here so that the
// header is not needed at build time either.
#include <dlfcn.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "cuda/runtime.h"
#include "llama4/communicator.h"
#include "llama4/context.h"

namespace llama4 {

namespace {

// ---- NCCL's C ABI (nccl.h, NCCL >= 2.14) ----
using ncclComm_t = struct ncclComm*;
struct ncclUniqueId {
  char internal[128];
};
using ncclResult_t = int;  // 0 ncclSuccess, 7 ncclInProgress
constexpr ncclResult_t kNcclSuccess = 0, kNcclInProgress = 7;
using ncclDataType_t = int;
constexpr ncclDataType_t kNcclUint8 = 1, kNcclFloat32 = 7, kNcclBfloat16 = 9;
constexpr int kNcclSum = 0;
// ncclConfig_t as NCCL 2.14 defined it (NCCL_CONFIG_INITIALIZER of that version). Later versions
// append fields and read a config by its `version`, so this prefix stays valid.
struct NcclConfigV21400 {
  size_t size = sizeof(NcclConfigV21400);
  unsigned int magic = 0xcafebeef;  // NCCL_API_MAGIC
  unsigned int version = 21400;     // NCCL_VERSION(2, 14, 0)
  int blocking = kUndefInt, cga_cluster_size = kUndefInt, min_ctas = kUndefInt, max_ctas = kUndefInt;
  const char* net_name = nullptr;
  static constexpr int kUndefInt = -2147483647 - 1;  // NCCL_CONFIG_UNDEF_INT (INT_MIN)
};

struct NcclApi {
  ncclResult_t (*GetVersion)(int*) = nullptr;
  ncclResult_t (*GetUniqueId)(ncclUniqueId*) = nullptr;
  ncclResult_t (*CommInitRankConfig)(ncclComm_t*, int, ncclUniqueId, int, NcclConfigV21400*) = nullptr;
  ncclResult_t (*CommDestroy)(ncclComm_t) = nullptr;
  ncclResult_t (*CommAbort)(ncclComm_t) = nullptr;
  ncclResult_t (*CommGetAsyncError)(ncclComm_t, ncclResult_t*) = nullptr;
  const char* (*GetErrorString)(ncclResult_t) = nullptr;
  ncclResult_t (*AllReduce)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, void*) = nullptr;
  ncclResult_t (*Broadcast)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, void*) = nullptr;
  ncclResult_t (*AllGather)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, void*) = nullptr;
  std::string error;  // why loading failed ("" when it worked)
};

template <typename F>
bool bind(void* lib, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  return fn != nullptr;
}

const NcclApi& nccl() {
  static const NcclApi api = [] {
    NcclApi a;
    const char* env = std::getenv("LLAMA4_NCCL_LIBRARY");
    const std::string path = env && *env ? env : "libnccl.so.2";
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      a.error = "cannot load NCCL (" + path + "): " + (e ? e : "unknown error") +
                "; install the nvidia-nccl-cu13 wheel or set LLAMA4_NCCL_LIBRARY";
      return a;
    }
    const bool ok = bind(lib, "ncclGetVersion", a.GetVersion) && bind(lib, "ncclGetUniqueId", a.GetUniqueId) &&
                    bind(lib, "ncclCommInitRankConfig", a.CommInitRankConfig) && bind(lib, "ncclCommDestroy", a.CommDestroy) &&
                    bind(lib, "ncclCommAbort", a.CommAbort) &&
                    bind(lib, "ncclCommGetAsyncError", a.CommGetAsyncError) &&
                    bind(lib, "ncclGetErrorString", a.GetErrorString) && bind(lib, "ncclAllReduce", a.AllReduce) &&
                    bind(lib, "ncclBroadcast", a.Broadcast) && bind(lib, "ncclAllGather", a.AllGather);
    if (!ok) a.error = path + " lacks an NCCL 2 entry point (" + (dlerror() ? "dlsym failed" : "") + ")";
    return a;
  }();
  return api;
}

std::string hex(const void* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<const unsigned char*>(p)[i];
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

void unhex(const std::string& s, void* p, size_t n) {
  LLAMA4_CHECK(s.size() == 2 * n, "NCCL unique id in the store has ", s.size(), " hex digits, expected ", 2 * n);
  auto v = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i < n; ++i) static_cast<unsigned char*>(p)[i] = static_cast<unsigned char>(v(s[2 * i]) * 16 + v(s[2 * i + 1]));
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<Store> store, const CommOptions& o, int device)
      : Communicator(o.rank, o.world_size, o.timeout_s), device_(device) {
    const NcclApi& api = nccl();
    ncclUniqueId id;
    const std::string key = o.prefix + "/nccl/unique_id";
    if (o.rank == 0) {
      check(api.GetUniqueId(&id), "ncclGetUniqueId");
      store->set(key, hex(&id, sizeof(id)));
    } else {
      unhex(store->get(key, o.rendezvous_timeout_s), &id, sizeof(id));
    }
    // Every rank has started (a missing one is a RankError after timeout_s) and can be named if it
    // dies during the initialisation below.
    publish_identity(std::move(store), o.prefix, o.rendezvous_timeout_s);
    cuda::set_device(device);
    // Non-blocking initialisation, polled with the timeout: a blocking one waits forever for a peer
    // that died after the rendezvous.
    NcclConfigV21400 config;
    config.blocking = 0;
    check(api.CommInitRankConfig(&comm_, o.world_size, id, o.rank, &config), "ncclCommInitRankConfig",
          o.rendezvous_timeout_s);
  }
  ~NcclCommunicator() override {
    if (comm_ && !aborted_) nccl().CommDestroy(comm_);
  }

  const char* backend() const override { return "nccl"; }

  void all_reduce(const Context& ctx, const TensorView& t) override {
    check_tensor(ctx, "all_reduce", t);
    LLAMA4_CHECK_TYPE(t.dtype == DType::F32 || t.dtype == DType::BF16,
                      "all_reduce: the tensor must be float32 or bfloat16, got ", dtype_name(t.dtype));
    if (t.numel() == 0) return;  // world size 1 still goes through NCCL (the path the tests check)
    check(nccl().AllReduce(t.data, t.data, size_t(t.numel()), t.dtype == DType::F32 ? kNcclFloat32 : kNcclBfloat16,
                           kNcclSum, comm_, ctx.stream()),
          "ncclAllReduce");
  }

  void broadcast(const Context& ctx, const TensorView& t, int root) override {
    LLAMA4_CHECK_ARG(0 <= root && root < size(), "broadcast: root must be in [0, ", size(), "), got ", root);
    LLAMA4_CHECK_ARG(t.is_contiguous(), "broadcast: the tensor must be contiguous, got shape ", t.shape_str());
    if (t.nbytes() == 0) return;
    if (t.device.is_cpu()) {  // host metadata: staged through the GPU
      Tensor staged = ctx.empty({int64_t(t.nbytes())}, DType::U8);
      cuda::memcpy(staged.data(), t.data, size_t(t.nbytes()), 0, device_, ctx.stream());
      broadcast(ctx, staged.view(), root);
      wait(ctx);
      cuda::memcpy(t.data, staged.data(), size_t(t.nbytes()), 1, device_, ctx.stream());
      return;
    }
    check_tensor(ctx, "broadcast", t);
    check(nccl().Broadcast(t.data, t.data, size_t(t.nbytes()), kNcclUint8, root, comm_, ctx.stream()),
          "ncclBroadcast");
  }

  void all_gather(const Context& ctx, const TensorView& out, const TensorView& in) override {
    if (in.device.is_cpu() && out.device.is_cpu() && in.is_contiguous() && out.is_contiguous()) {  // host metadata
      Tensor a = ctx.empty({int64_t(in.nbytes())}, DType::U8), b = ctx.empty({int64_t(out.nbytes())}, DType::U8);
      cuda::memcpy(a.data(), in.data, size_t(in.nbytes()), 0, device_, ctx.stream());
      all_gather(ctx, b.view(), a.view());
      wait(ctx);
      cuda::memcpy(out.data, b.data(), size_t(out.nbytes()), 1, device_, ctx.stream());
      return;
    }
    check_tensor(ctx, "all_gather", in);
    check_tensor(ctx, "all_gather", out);
    LLAMA4_CHECK_TYPE(out.dtype == in.dtype, "all_gather: 'out' must have dtype ", dtype_name(in.dtype),
                      ", got ", dtype_name(out.dtype));
    LLAMA4_CHECK_ARG(out.numel() == in.numel() * size(), "all_gather: 'out' must hold ", size(), " x ",
                     in.numel(), " elements, got shape ", out.shape_str());
    if (in.nbytes() == 0) return;
    check(nccl().AllGather(in.data, out.data, size_t(in.nbytes()), kNcclUint8, comm_, ctx.stream()),
          "ncclAllGather");
  }

  void wait(const Context& ctx) override {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::duration<double>(timeout_s());
    for (;;) {
      if (cuda::stream_done(device_, ctx.stream())) {
        ++calls_;
        seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        return;
      }
      ncclResult_t async = kNcclSuccess;
      nccl().CommGetAsyncError(comm_, &async);
      if (async != kNcclSuccess && async != kNcclInProgress) {
        abort();
        fail("collective", nccl().GetErrorString(async));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        abort();
        fail("collective", "the GPU stream did not finish within the timeout; the communicator was aborted");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

 private:
  void check_tensor(const Context& ctx, const char* op, const TensorView& t) const {
    LLAMA4_CHECK_TYPE(t.device.is_cuda() && t.device.index == device_ && ctx.device() == t.device, op,
                      ": the NCCL communicator of cuda:", device_, " takes tensors on it in its context, got ",
                      t.device.str(), " in a context on ", ctx.device().str());
    LLAMA4_CHECK_ARG(t.is_contiguous(), op, ": the tensor must be contiguous, got shape ", t.shape_str());
  }
  // A call on the non-blocking communicator may return ncclInProgress (initialisation, a
  // collective that sets up its connections on first use): NCCL takes no other call until the
  // communicator's state leaves it, so wait for that, at most timeout_s.
  void check(ncclResult_t r, const char* what) { check(r, what, timeout_s()); }
  void check(ncclResult_t r, const char* what, double timeout_s) {
    if (r == kNcclInProgress) r = settle(what, timeout_s);
    if (r == kNcclSuccess) return;
    const std::string msg = nccl().GetErrorString ? nccl().GetErrorString(r) : "NCCL error";
    if (comm_) {
      abort();
      fail(what, msg);
    }
    throw RankError(-1, std::string(what) + " failed: " + msg);
  }
  ncclResult_t settle(const char* what, double timeout_s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    for (;;) {
      ncclResult_t state = kNcclSuccess;
      const ncclResult_t r = nccl().CommGetAsyncError(comm_, &state);
      if (r != kNcclSuccess) return r;
      if (state != kNcclInProgress) return state;
      if (std::chrono::steady_clock::now() > deadline) {
        abort();
        fail(what, "did not complete within the timeout (a peer rank did not join or answer); the communicator was aborted");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  void abort() {
    if (comm_ && !aborted_) nccl().CommAbort(comm_);
    aborted_ = true;
  }

  int device_;
  ncclComm_t comm_ = nullptr;
  bool aborted_ = false;
};

}  // namespace

bool nccl_available() { return cuda::device_count() > 0 && nccl().error.empty(); }

std::string nccl_library_error() { return nccl().error; }

std::shared_ptr<Communicator> make_nccl_communicator(std::shared_ptr<Store> store, const CommOptions& options,
                                                     int device) {
  LLAMA4_CHECK_ARG(store != nullptr, "make_nccl_communicator: no store");
  LLAMA4_CHECK_ARG(options.world_size >= 1 && 0 <= options.rank && options.rank < options.world_size,
                   "make_nccl_communicator: rank ", options.rank, " is outside world size ", options.world_size);
  LLAMA4_CHECK_ARG(options.timeout_s > 0, "make_nccl_communicator: timeout_s must be positive, got ", options.timeout_s);
  LLAMA4_CHECK_ARG(options.rendezvous_timeout_s > 0, "make_nccl_communicator: rendezvous_timeout_s must be positive, got ",
                   options.rendezvous_timeout_s);
  LLAMA4_CHECK_TYPE(cuda::device_count() > device && device >= 0, "make_nccl_communicator: no CUDA device ", device,
                    " (", cuda::device_count(), " visible)");
  if (!nccl().error.empty()) throw ValueError("make_nccl_communicator: " + nccl().error);
  return std::make_shared<NcclCommunicator>(std::move(store), options, device);
}

}  // namespace llama4
