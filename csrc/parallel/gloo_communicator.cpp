// Gloo communicator (CPU ranks): gloo's TCP transport, a full mesh built through the Store, and
// gloo's collectives on host tensors. Every call finishes (or fails) before it returns.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/broadcast.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

#include <chrono>
#include <cstring>

#include "llama4/communicator.h"
#include "llama4/context.h"
#include "llama4/numeric.h"

namespace llama4 {

namespace {

// gloo's Store interface over ours.
class GlooStore : public gloo::rendezvous::Store {
 public:
  GlooStore(std::shared_ptr<llama4::Store> store, std::string prefix, double timeout_s)
      : store_(std::move(store)), prefix_(std::move(prefix)), timeout_s_(timeout_s) {}
  void set(const std::string& key, const std::vector<char>& data) override {
    store_->set(prefix_ + key, std::string(data.begin(), data.end()));
  }
  std::vector<char> get(const std::string& key) override {
    const std::string v = store_->get(prefix_ + key, timeout_s_);
    return std::vector<char>(v.begin(), v.end());
  }
  void wait(const std::vector<std::string>& keys) override {
    for (const std::string& k : keys) store_->get(prefix_ + k, timeout_s_);
  }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds&) override { wait(keys); }

 private:
  std::shared_ptr<llama4::Store> store_;
  std::string prefix_;
  double timeout_s_;
};

void sum_f32(void* c, const void* a, const void* b, size_t n) {
  auto* out = static_cast<float*>(c);
  const auto* x = static_cast<const float*>(a);
  const auto* y = static_cast<const float*>(b);
  for (size_t i = 0; i < n; ++i) out[i] = x[i] + y[i];
}

// bf16 sum, each partial rounded to bf16 (round to nearest even), as the sum travels the ring.
void sum_bf16(void* c, const void* a, const void* b, size_t n) {
  auto* out = static_cast<uint16_t*>(c);
  const auto* x = static_cast<const uint16_t*>(a);
  const auto* y = static_cast<const uint16_t*>(b);
  for (size_t i = 0; i < n; ++i) out[i] = f32_to_bf16(bf16_to_f32(x[i]) + bf16_to_f32(y[i]));
}

class GlooCommunicator : public Communicator {
 public:
  GlooCommunicator(std::shared_ptr<Store> store, const CommOptions& o)
      : Communicator(o.rank, o.world_size, o.timeout_s),
        timeout_(std::chrono::milliseconds(int64_t(o.timeout_s * 1000))) {
    gloo::transport::tcp::attr attr;
    attr.hostname = o.host;
    auto device = gloo::transport::tcp::CreateDevice(attr);
    auto ctx = std::make_shared<gloo::rendezvous::Context>(o.rank, o.world_size);
    // The context's timeout bounds the rendezvous; every collective sets its own (timeout_).
    ctx->setTimeout(std::chrono::milliseconds(int64_t(o.rendezvous_timeout_s * 1000)));
    GlooStore gs(store, o.prefix + "/gloo/", o.rendezvous_timeout_s);
    try {
      ctx->connectFullMesh(gs, device);
    } catch (const RankError&) {
      throw;
    } catch (const std::exception& e) {
      throw RankError(-1, detail::concat("gloo rendezvous of rank ", o.rank, " of ", o.world_size,
                                         " failed: ", e.what()));
    }
    context_ = ctx;
    publish_identity(std::move(store), o.prefix, o.rendezvous_timeout_s);
  }

  const char* backend() const override { return "gloo"; }

  void all_reduce(const Context& ctx, const TensorView& t) override {
    check(ctx, "all_reduce", t);
    LLAMA4_CHECK_TYPE(t.dtype == DType::F32 || t.dtype == DType::BF16,
                      "all_reduce: the tensor must be float32 or bfloat16, got ", dtype_name(t.dtype));
    if (size() == 1 || t.numel() == 0) return;
    gloo::AllreduceOptions opts(context_);
    opts.setTimeout(timeout_);
    if (t.dtype == DType::F32) {
      opts.setOutput(static_cast<float*>(t.data), size_t(t.numel()));
      opts.setReduceFunction(&sum_f32);
    } else {
      opts.setOutput(static_cast<uint16_t*>(t.data), size_t(t.numel()));
      opts.setReduceFunction(&sum_bf16);
    }
    run("all_reduce", [&] { gloo::allreduce(opts); });
  }

  void broadcast(const Context& ctx, const TensorView& t, int root) override {
    check(ctx, "broadcast", t);
    LLAMA4_CHECK_ARG(0 <= root && root < size(), "broadcast: root must be in [0, ", size(), "), got ", root);
    if (size() == 1 || t.nbytes() == 0) return;
    gloo::BroadcastOptions opts(context_);
    opts.setTimeout(timeout_);
    opts.setRoot(root);
    opts.setOutput(static_cast<uint8_t*>(t.data), size_t(t.nbytes()));
    run("broadcast", [&] { gloo::broadcast(opts); });
  }

  void all_gather(const Context& ctx, const TensorView& out, const TensorView& in) override {
    check(ctx, "all_gather", in);
    check(ctx, "all_gather", out);
    LLAMA4_CHECK_TYPE(out.dtype == in.dtype, "all_gather: 'out' must have dtype ", dtype_name(in.dtype),
                      ", got ", dtype_name(out.dtype));
    LLAMA4_CHECK_ARG(out.numel() == in.numel() * size(), "all_gather: 'out' must hold ", size(), " x ",
                     in.numel(), " elements, got shape ", out.shape_str());
    if (size() == 1) {
      if (in.nbytes()) std::memcpy(out.data, in.data, size_t(in.nbytes()));
      return;
    }
    if (in.nbytes() == 0) return;
    gloo::AllgatherOptions opts(context_);
    opts.setTimeout(timeout_);
    opts.setInput(static_cast<uint8_t*>(in.data), size_t(in.nbytes()));
    opts.setOutput(static_cast<uint8_t*>(out.data), size_t(out.nbytes()));
    run("all_gather", [&] { gloo::allgather(opts); });
  }

 private:
  void check(const Context& ctx, const char* op, const TensorView& t) const {
    LLAMA4_CHECK_TYPE(t.device.is_cpu() && !ctx.is_cuda(), op,
                      ": the gloo communicator takes CPU tensors in a CPU context, got a tensor on ",
                      t.device.str());
    LLAMA4_CHECK_ARG(t.is_contiguous(), op, ": the tensor must be contiguous, got shape ", t.shape_str());
  }
  template <typename F>
  void run(const char* what, F&& f) {
    const auto start = std::chrono::steady_clock::now();
    try {
      f();
    } catch (const std::exception& e) {
      fail(what, e.what());
    }
    ++calls_;
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  std::chrono::milliseconds timeout_;
  std::shared_ptr<gloo::Context> context_;
};

}  // namespace

bool gloo_available() { return true; }

std::shared_ptr<Communicator> make_gloo_communicator(std::shared_ptr<Store> store, const CommOptions& options) {
  LLAMA4_CHECK_ARG(store != nullptr, "make_gloo_communicator: no store");
  LLAMA4_CHECK_ARG(options.world_size >= 1 && 0 <= options.rank && options.rank < options.world_size,
                   "make_gloo_communicator: rank ", options.rank, " is outside world size ", options.world_size);
  LLAMA4_CHECK_ARG(options.timeout_s > 0, "make_gloo_communicator: timeout_s must be positive, got ", options.timeout_s);
  LLAMA4_CHECK_ARG(options.rendezvous_timeout_s > 0, "make_gloo_communicator: rendezvous_timeout_s must be positive, got ",
                   options.rendezvous_timeout_s);
  return std::make_shared<GlooCommunicator>(std::move(store), options);
}

}  // namespace llama4
