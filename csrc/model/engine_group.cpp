// Several ranks (EngineOptions::comm): rank 0 schedules, and before each forward pass broadcasts
// what the pass needs (token ids, positions, page tables, slots, logits rows, the image placeholder
// id, and the KV page copies forks made since the last pass); ranks 1..N-1 run the same pass on
// their shard (follow()). The message: a header of 8 int64
//   kind (1 pass, 2 keep-alive, 3 shutdown), T tokens, S sequences, MP pages per sequence row,
//   R logits rows, image_token_id, C page copies, 0
// then, for a pass, one int32 buffer: ids[T] query_seq[T] query_pos[T] slots0[T] slots1[T]
// page_table0[S*MP] page_table1[S*MP] rows[R] copies[3C]. Image features stay on rank 0 (only the
// rank that adds them to the embedding needs them). While rank 0 is idle its keep-alive thread
// sends a header every timeout/4, so the followers' wait stays bounded: a dead or hung rank 0 (or
// any rank) turns into a RankError within the communicator's timeout on every other rank.
#include <chrono>
#include <condition_variable>
#include <thread>

#include "llama4/communicator.h"
#include "model/decode_graphs.h"
#include "llama4/engine.h"
#include "llama4/error.h"
#include "llama4/ops.h"

namespace llama4 {

namespace {
enum Kind : int64_t { kPass = 1, kKeepAlive = 2, kShutdown = 3 };
constexpr int kHeader = 8;

std::vector<int32_t> host_ints(const Context& ctx, const Tensor& t) {
  const Tensor h = ops::to_device(ctx, t, Device::cpu());
  return std::vector<int32_t>(h.ptr<int32_t>(), h.ptr<int32_t>() + h.numel());
}

Tensor ints(const int32_t* p, const Shape& shape, const Context& ctx, Device device) {
  Tensor t = Tensor::empty(shape, DType::I32, Device::cpu());
  std::copy(p, p + t.numel(), t.ptr<int32_t>());
  return ops::to_device(ctx, t, device);
}
}  // namespace

struct Engine::Group {
  Communicator* comm = nullptr;
  Context ctx;
  std::mutex mutex;  // one message at a time: step() holds it for all its passes
  std::condition_variable wake;
  bool stop = false;
  std::chrono::steady_clock::time_point last_sent = std::chrono::steady_clock::now();
  std::exception_ptr keepalive_error;  // a failed keep-alive: the next step() raises it
  std::string broken;                  // why the ranks are out of step (an error mid-pass on rank 0)
  bool released = false;               // the followers were told to stop
  std::thread keepalive;

  void send_header(const int64_t (&h)[kHeader]) {
    Tensor t = Tensor::empty({kHeader}, DType::I64, Device::cpu());
    std::copy(h, h + kHeader, t.ptr<int64_t>());
    comm->broadcast(ctx, t, 0);
    last_sent = std::chrono::steady_clock::now();
  }

  void run_keepalive() {
    const auto period = std::chrono::duration<double>(comm->timeout_s() / 4);
    std::unique_lock<std::mutex> lock(mutex);
    while (!stop) {
      wake.wait_for(lock, std::chrono::duration_cast<std::chrono::milliseconds>(period));
      if (stop || keepalive_error) continue;
      if (std::chrono::steady_clock::now() - last_sent < period) continue;
      try {
        send_header({kKeepAlive, 0, 0, 0, 0, 0, 0, 0});
      } catch (...) {
        keepalive_error = std::current_exception();
      }
    }
  }
};

void Engine::start_group() {
  if (!options_.comm || options_.comm->size() == 1 || options_.comm->rank() != 0) return;
  cache_->record_page_copies(true);
  group_.reset(new Group);
  group_->comm = options_.comm.get();
  group_->ctx = ctx_;
  group_->keepalive = std::thread([g = group_.get()] { g->run_keepalive(); });
}

void Engine::GroupDeleter::operator()(Group* g) const { delete g; }

Engine::Engine(Engine&&) noexcept = default;

Engine::~Engine() { release_followers(); }

void Engine::release_followers() {
  if (!group_ || group_->released) return;
  {
    std::lock_guard<std::mutex> lock(group_->mutex);
    group_->stop = true;
    group_->released = true;
    if (!group_->keepalive_error && group_->broken.empty()) {  // else the others are stuck or gone
      try {
        group_->send_header({kShutdown, 0, 0, 0, 0, 0, 0, 0});
      } catch (const std::exception&) {  // a follower is gone already: nothing to tell it
      }
    }
  }
  group_->wake.notify_all();
  group_->keepalive.join();
}

int Engine::rank() const { return ctx_.rank(); }
int Engine::world_size() const { return ctx_.world_size(); }

std::unique_lock<std::mutex> Engine::lock_group() {
  if (!group_) return {};
  std::unique_lock<std::mutex> lock(group_->mutex);
  if (group_->released)
    throw RankError(-1, "Engine.step: the other ranks were released (the model was closed)");
  if (group_->keepalive_error) std::rethrow_exception(group_->keepalive_error);
  if (!group_->broken.empty())
    throw RankError(-1, "Engine.step: an earlier step failed on rank 0 in the middle of a forward pass (" +
                            group_->broken + "); the other ranks are out of step: load the model again");
  return lock;
}

Tensor Engine::forward_pass(const Tensor& ids, const KVCache::StepPlan& plan, const std::vector<int32_t>& rows,
                            const TensorView& image_rows, int64_t image_token_id) {
  try {
    return model_.forward(ctx_, ops::to_device(ctx_, ids, model_.device()), *cache_, plan, rows, image_rows,
                          image_token_id);
  } catch (const std::exception& e) {
    if (group_) {
      group_->broken = e.what();
      group_->stop = true;  // no keep-alive into the middle of a pass
    }
    throw;
  }
}

void Engine::send_pass(const Tensor& ids, const KVCache::StepPlan& plan, const std::vector<int32_t>& rows,
                       int64_t image_token_id) {
  const int64_t T = ids.numel(), S = plan.page_table[0].size(0), MP = plan.page_table[0].size(1);
  const std::vector<KVCache::PageCopy> copies = cache_->take_page_copies();
  const int64_t R = int64_t(rows.size()), C = int64_t(copies.size());
  std::vector<int32_t> body(ids.ptr<int32_t>(), ids.ptr<int32_t>() + T);
  for (const Tensor* t : {&plan.query_seq, &plan.query_pos, &plan.slots[0], &plan.slots[1], &plan.page_table[0],
                          &plan.page_table[1]}) {
    const std::vector<int32_t> v = host_ints(ctx_, *t);
    body.insert(body.end(), v.begin(), v.end());
  }
  body.insert(body.end(), rows.begin(), rows.end());
  for (const KVCache::PageCopy& c : copies) body.insert(body.end(), {c.group, c.from, c.to});
  group_->send_header({kPass, T, S, MP, R, image_token_id, C, 0});
  options_.comm->broadcast(ctx_, TensorView(body.data(), DType::I32, {int64_t(body.size())}), 0);
}

void Engine::follow() {
  LLAMA4_CHECK_ARG(options_.comm && rank() != 0, "Engine.follow: only ranks 1..N-1 of several follow rank 0 "
                   "(this engine is rank ", rank(), " of ", world_size(), ")");
  Communicator& comm = *options_.comm;
  const Device dev = model_.device();
  for (;;) {
    Tensor header = Tensor::empty({kHeader}, DType::I64, Device::cpu());
    comm.broadcast(ctx_, header, 0);
    const int64_t* h = header.ptr<int64_t>();
    if (h[0] == kShutdown) return;
    if (h[0] == kKeepAlive) continue;
    LLAMA4_CHECK(h[0] == kPass, "Engine.follow: unknown message kind ", h[0], " from rank 0");
    const int64_t T = h[1], S = h[2], MP = h[3], R = h[4], image_token_id = h[5], C = h[6];
    std::vector<int32_t> body(size_t(5 * T + 2 * S * MP + R + 3 * C));
    comm.broadcast(ctx_, TensorView(body.data(), DType::I32, {int64_t(body.size())}), 0);
    const int32_t* p = body.data();
    const int32_t* copies = p + 5 * T + 2 * S * MP + R;
    for (int64_t i = 0; i < C; ++i) cache_->copy_page(copies[3 * i], copies[3 * i + 1], copies[3 * i + 2]);
    const Tensor ids = ints(p, {T}, ctx_, dev);
    KVCache::StepPlan plan;
    plan.query_seq = ints(p + T, {T}, ctx_, dev);
    plan.query_pos = ints(p + 2 * T, {T}, ctx_, dev);
    plan.slots[0] = ints(p + 3 * T, {T}, ctx_, dev);
    plan.slots[1] = ints(p + 4 * T, {T}, ctx_, dev);
    plan.page_table[0] = ints(p + 5 * T, {S, MP}, ctx_, dev);
    plan.page_table[1] = ints(p + 5 * T + S * MP, {S, MP}, ctx_, dev);
    const std::vector<int32_t> rows(p + 5 * T + 2 * S * MP, p + 5 * T + 2 * S * MP + R);
    model_.forward(ctx_, ids, *cache_, plan, rows, TensorView(), image_token_id);
    comm.wait(ctx_);  // bounded: a GPU stream stuck in a collective raises here
  }
}

}  // namespace llama4
