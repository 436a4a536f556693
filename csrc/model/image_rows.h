// Engine-internal helpers for early fusion (not installed): validating a StepRequest's image
// features, and gathering the image rows of one forward pass in its token order.
#pragma once
#include <cstdint>
#include <vector>

#include "llama4/engine.h"

namespace llama4 {

// Checks r.image_features (when set) against the request: model dtype and device, shape [n, D]
// with n = the number of image_token_id tokens in r.tokens (ValueError / TypeError naming the
// sequence otherwise; ValueError if the engine has no image_token_id).
void check_image_features(const StepRequest& r, int64_t image_token_id, const TextModel& model);

// The image rows of one pass. Request which[b] runs tokens [from[b], from[b] + n_new[b]); the
// placeholders it holds there take its next feature rows. Placeholders of requests without
// features embed as text: when they share a pass with image rows, their embedding row is copied
// in, so that one fused embedding call serves the whole pass. A single request's rows are a view
// (no copy); rows of several requests are gathered into one tensor.
struct PassImages {
  Tensor owned;
  TensorView rows;       // [R, D]; undefined for a text-only pass
  int64_t token_id = -1;  // -1 for a text-only pass
};
// Gathers on ctx (the engine's: the model's device and stream).
PassImages pass_images(const Context& ctx, const std::vector<StepRequest>& requests, const std::vector<size_t>& which,
                       const std::vector<int64_t>& from, const std::vector<int64_t>& n_new,
                       int64_t image_token_id, const TextModel& model);

}  // namespace llama4
