// Early-fusion bookkeeping of the engine step: which feature rows each pass consumes.
#include "model/image_rows.h"

#include <algorithm>

#include "llama4/error.h"
#include "llama4/ops.h"

namespace llama4 {

namespace {

bool has_features(const StepRequest& r) { return r.image_features.ndim > 0; }

int64_t count_id(const std::vector<int32_t>& tokens, int64_t from, int64_t n, int64_t id) {
  return std::count(tokens.begin() + from, tokens.begin() + from + n, int32_t(id));
}

}  // namespace

void check_image_features(const StepRequest& r, int64_t id, const TextModel& model) {
  if (!has_features(r)) return;
  const TensorView& f = r.image_features;
  const int64_t D = model.config().hidden_size;
  LLAMA4_CHECK_ARG(id >= 0, "sequence ", r.seq, ": image_features given, but this engine has no "
                   "image_token_id (create it with options image_token_id = the config's image_token_index)");
  LLAMA4_CHECK_TYPE(f.dtype == model.dtype(), "sequence ", r.seq, ": image_features must have the model dtype ",
                    dtype_name(model.dtype()), ", got ", dtype_name(f.dtype));
  LLAMA4_CHECK_TYPE(f.device == model.device(), "sequence ", r.seq, ": image_features are on ",
                    f.device.str(), " but the model is on ", model.device().str());
  LLAMA4_CHECK_ARG(f.ndim == 2 && f.size(1) == D, "sequence ", r.seq, ": image_features must have shape [n, ",
                   D, "], got ", f.shape_str());
  const int64_t n = count_id(r.tokens, 0, int64_t(r.tokens.size()), id);
  LLAMA4_CHECK_ARG(n == f.size(0), "sequence ", r.seq, ": its tokens hold ", n,
                   " image placeholder tokens (id ", id, ") but image_features has ", f.size(0),
                   " rows; each placeholder takes one row");
}

PassImages pass_images(const Context& ctx, const std::vector<StepRequest>& requests, const std::vector<size_t>& which,
                       const std::vector<int64_t>& from, const std::vector<int64_t>& n_new,
                       int64_t image_id, const TextModel& model) {
  PassImages out;
  if (image_id < 0) return out;
  struct Segment {
    const StepRequest* r;
    int64_t first, count;  // the request's feature rows [first, first + count)
  };
  std::vector<Segment> segs;
  int64_t total = 0;
  bool any_rows = false;
  for (size_t b = 0; b < which.size(); ++b) {
    const StepRequest& r = requests[which[b]];
    const int64_t k = count_id(r.tokens, from[b], n_new[b], image_id);
    if (k == 0) continue;
    segs.push_back({&r, count_id(r.tokens, 0, from[b], image_id), k});
    total += k;
    any_rows = any_rows || has_features(r);
  }
  if (!any_rows) return out;  // placeholders (if any) all embed as text
  out.token_id = image_id;
  if (segs.size() == 1) {
    const Segment& s = segs[0];
    out.rows = s.r->image_features.slice0(s.first, s.first + s.count);
    return out;
  }
  const TensorView& table = model.embed_tokens();
  out.owned = ctx.empty({total, table.size(1)}, model.dtype());
  int64_t at = 0;
  for (const Segment& s : segs) {
    const TensorView dst = out.owned.view().slice0(at, at + s.count);
    if (has_features(*s.r)) {
      ops::copy(ctx, dst, s.r->image_features.slice0(s.first, s.first + s.count));
    } else {
      for (int64_t j = 0; j < s.count; ++j) ops::copy(ctx, dst.slice0(j, j + 1), table.slice0(image_id, image_id + 1));
    }
    at += s.count;
  }
  out.rows = out.owned.view();
  return out;
}

}  // namespace llama4
