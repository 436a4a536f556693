// RoPE inverse frequencies, reproducing transformers' fp32 computation (modeling_rope_utils):
// default: inv_freq[j] = 1 / theta^(2j/d); llama3: wavelength-banded rescaling by `factor`.
#include <cmath>

#include "llama4/error.h"
#include "llama4/ops.h"

namespace llama4 {

std::vector<float> rope_inv_freq(int head_dim, double theta, const RopeScaling& s) {
  LLAMA4_CHECK_ARG(head_dim > 0 && head_dim % 2 == 0, "rope: head_dim must be positive and even, got ",
                   head_dim);
  LLAMA4_CHECK_ARG(theta > 0, "rope: rope_theta must be positive, got ", theta);
  std::vector<float> inv(head_dim / 2);
  for (int j = 0; j < head_dim / 2; ++j) {
    const float expo = float(2 * j) / float(head_dim);
    inv[j] = 1.0f / float(std::pow(double(float(theta)), double(expo)));
  }
  if (s.type == RopeScaling::Type::Default) return inv;

  LLAMA4_CHECK_ARG(s.factor > 0, "rope_scaling.factor must be positive, got ", s.factor);
  LLAMA4_CHECK_ARG(s.low_freq_factor > 0 && s.high_freq_factor >= s.low_freq_factor,
                   "rope_scaling needs 0 < low_freq_factor <= high_freq_factor, got low=",
                   s.low_freq_factor, " high=", s.high_freq_factor);
  const float L = float(s.original_max_position_embeddings);
  const float low_wavelen = L / s.low_freq_factor;
  const float high_wavelen = L / s.high_freq_factor;
  const float two_pi = float(2.0 * M_PI);
  for (float& f : inv) {
    // transformers writes `2 * math.pi / inv_freq` and `old_context_len / wavelen`; torch evaluates
    // a Python scalar divided by a tensor as reciprocal(tensor) * scalar (two roundings), so do we.
    const float wavelen = (1.0f / f) * two_pi;
    if (wavelen < high_wavelen) continue;                   // high frequency: unchanged
    if (wavelen > low_wavelen) { f = f / s.factor; continue; }  // low frequency: scaled
    // Medium band. Scout has low == high, where transformers divides by zero (hidden by
    // torch.where); the band is then only the single wavelength == L / low, which we leave as is.
    if (s.high_freq_factor == s.low_freq_factor) continue;
    const float smooth =
        ((1.0f / wavelen) * L - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    f = (1.0f - smooth) * f / s.factor + smooth * f;
  }
  return inv;
}

}  // namespace llama4
