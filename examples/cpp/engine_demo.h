// Embedding the serving engine in a C++ application: a tiny random Llama 4 text model (one
// chunked-attention RoPE layer with MoE, one global NoPE layer with a dense MLP) built from weights
// in memory, run through llama4::Engine with two sequences in one step (a prefill and a decode).
// Checks: finite logits of the right shape, and that a batched step gives each sequence the same
// logits as running it alone. Returns the number of failed checks.
#pragma once

int run_engine_demo();
