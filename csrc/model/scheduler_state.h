// The scheduler's private state (not installed): requests, their samples, the inbox that other
// threads write into. Shared by scheduler.cpp (admission, scheduling) and scheduler_step.cpp
// (the step: forward, sampling, postprocessing).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "llama4/scheduler.h"

namespace llama4 {

struct Scheduler::Request {
  int64_t id = 0;
  GenerationRequest r;
  uint64_t seed = 0;          // the sampling seed, or one drawn for this request
  int32_t live = 0;           // samples not yet finished
  bool started = false;       // its n samples exist (the prompt's first draw happened)
  int64_t image_rows = 0;     // rows of r.image_features (0: text only)
};

// One sample of a request: the tokens it holds (prompt, then generated) and how many of them are
// in the KV cache. The newest generated token enters the cache with the next step.
struct Scheduler::Sequence {
  Request* req = nullptr;
  int32_t sample = 0;
  int64_t kv = -1;              // KV cache sequence; -1 while waiting (holds no pages)
  std::vector<int32_t> tokens;  // prompt + generated
  int64_t prompt_len = 0;
  int64_t computed = 0;         // tokens[0, computed) are in the cache
  int64_t image_rows_done = 0;  // image feature rows taken by the computed tokens
  int64_t generated() const { return int64_t(tokens.size()) - prompt_len; }
};

struct Scheduler::Inbox {
  std::mutex mutex;
  std::vector<std::unique_ptr<Request>> added;
  std::vector<std::pair<int64_t, int32_t>> cancelled;  // (request id, sample or -1 for all)
  std::unordered_set<int64_t> live;  // ids added and not yet finished or cancelled
  int64_t next_id = 0;
  SchedulerStats published;          // stats() for other threads, updated after each step
};

}  // namespace llama4
