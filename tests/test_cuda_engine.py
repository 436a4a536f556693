"""The whole text model on CUDA against the CPU engine, on the tiny random checkpoints
(tests/tiny_checkpoints.py): weights uploaded once, KV cache on the GPU, every op a CUDA kernel.

fp32: prompt logits and 32 greedy decode steps (crossing chunk boundaries, temperature tuning on)
agree with the CPU engine to 1e-4 with identical tokens; a batched mixed prefill/decode step too.
bf16, and bf16 with FP8 or INT4 routed experts: the CUDA engine's error against the fp32 reference
is at most 1.25x the CPU engine's (both engines round at the same points; only summation orders differ).
Marked `cuda` (skipped without a GPU).
"""
from __future__ import annotations

import pytest
import torch

import llama4_native as l4
import tiny_checkpoints as tc

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not (l4.cuda_available() and torch.cuda.is_available()),
        reason="needs the CUDA backend, a CUDA GPU and a CUDA build of torch",
    ),
]

NAMES = list(tc.TINY_CONFIGS)
PROMPT_LEN = 21
DECODE_STEPS = 32


def _prompt(seed: int, vocab: int, n: int = PROMPT_LEN) -> list[int]:
    """Text ids: below the tiny vocabulary's image tokens (Model.logits refuses a <|patch|> without
    an image)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, min(vocab, tc.IMAGE_IDS["boi_token_index"]), (n,), generator=g).tolist()


@pytest.mark.parametrize("name", NAMES)
def test_fp32_prompt_and_greedy_decode_match_cpu_engine(tiny_checkpoint, name):
    folder, _ = tiny_checkpoint(name)
    cpu = l4.load(folder, dtype="float32")
    gpu = l4.load(folder, device="cuda", dtype="float32")
    prompt = _prompt(1, cpu.vocab_size)

    got = gpu.logits(prompt)
    assert got.device.type == "cuda"
    err = (got.cpu() - cpu.logits(prompt)).abs().max().item()
    assert err <= 1e-4, f"prompt logits differ by {err:.2e}"

    want = cpu.generate(input_ids=prompt, max_new_tokens=DECODE_STEPS, temperature=0.0, return_logits=True)
    res = gpu.generate(input_ids=prompt, max_new_tokens=DECODE_STEPS, temperature=0.0, return_logits=True)
    err = (res.logits.cpu() - want.logits).abs().max().item()
    print(f"{name}: CUDA vs CPU over the prompt and {DECODE_STEPS} decode steps: max|dlogit| = {err:.2e}")
    assert res.token_ids == want.token_ids
    assert err <= 1e-4


def test_batched_mixed_step_matches_cpu(tiny_checkpoint):
    """One step with a decode, a whole prefill and a prefill chunk without logits, on both."""
    folder, _ = tiny_checkpoint("scout")
    models = [l4.load(folder, dtype="float32"), l4.load(folder, device="cuda", dtype="float32")]
    a, b, c = (_prompt(s, 512, n) for s, n in ((1, 13), (2, 30), (3, 9)))
    outs = []
    for m in models:
        sa, sb, sc = m._new_sequence(), m._new_sequence(), m._new_sequence()
        m._step([(sa, a[:-1], False)])
        outs.append(m._step([(sa, a[-1:], True), (sb, b, True), (sc, c, False)]).cpu())
    assert outs[0].shape == outs[1].shape
    assert (outs[0] - outs[1]).abs().max().item() <= 1e-4


def _assert_cuda_error_within_cpu_error(label, ref32, cpu, gpu, first_seed):
    """Errors against the fp32 reference (the CPU fp32 engine) over 16 prompts: the CUDA engine's
    max and median within 1.25x the CPU engine's."""
    err_gpu, err_cpu = [], []
    for seed in range(16):
        prompt = _prompt(first_seed + seed, ref32.vocab_size)
        ref = ref32.logits(prompt)
        err_cpu.append((cpu.logits(prompt) - ref).abs().amax(-1))
        err_gpu.append((gpu.logits(prompt).cpu() - ref).abs().amax(-1))
    g, c = torch.cat(err_gpu), torch.cat(err_cpu)
    print(f"{label} |dlogit| vs fp32 over {g.numel()} positions: max CUDA {g.max():.3e}, "
          f"CPU {c.max():.3e}; median {g.median():.3e} vs {c.median():.3e}")
    assert g.max() <= 1.25 * c.max()
    assert g.median() <= 1.25 * c.median()


@pytest.mark.parametrize("name", ["scout", "maverick", "scout_text"])
def test_bf16_error_within_cpu_bf16_error(tiny_checkpoint, name):
    """bf16: a bf16 run occasionally routes a token to another expert; over many positions both
    engines see such flips alike."""
    folder, _ = tiny_checkpoint(name)
    ref32 = l4.load(folder, dtype="float32")
    _assert_cuda_error_within_cpu_error(f"{name}: bf16", ref32, l4.load(folder, dtype="bfloat16"),
                                        l4.load(folder, device="cuda", dtype="bfloat16"), 100)


@pytest.mark.parametrize("name", ["scout", "maverick"])
def test_fp8_experts_error_within_cpu_fp8_error(tiny_checkpoint, name):
    """FP8 routed experts quantized at load (the CUTLASS grouped GEMMs on Hopper): both engines
    quantize the same weights to the same e4m3 values and the activations by the same rule;
    summation orders differ."""
    folder, _ = tiny_checkpoint(name)
    ref32 = l4.load(folder, dtype="float32")
    cpu8 = l4.load(folder, dtype="bfloat16", quantization="fp8")
    gpu8 = l4.load(folder, device="cuda", dtype="bfloat16", quantization="fp8")
    assert gpu8.fp8_layers == cpu8.fp8_layers == list(ref32.config.text.moe_layers)
    _assert_cuda_error_within_cpu_error(f"{name}: FP8 experts", ref32, cpu8, gpu8, 200)


@pytest.mark.parametrize("name", ["scout_i32", "maverick_i32"])
def test_int4_experts_error_within_cpu_int4_error(tiny_checkpoint, name):
    """INT4 routed experts, shared experts and (maverick) dense MLPs quantized at load (groups of 32:
    the CUDA decode kernel's any-shape path; the dense ones through ops.linear_int4): both engines
    hold the same int4 values and scales (quantized on the host) and bf16 activations; only the
    GEMMs' summation orders differ."""
    folder, _ = tiny_checkpoint(name)
    ref32 = l4.load(folder, dtype="float32")
    kw = dict(dtype="bfloat16", quantization="int4", int4_group_size=32)
    cpu4, gpu4 = l4.load(folder, **kw), l4.load(folder, device="cuda", **kw)
    assert gpu4.int4_layers == cpu4.int4_layers == list(ref32.config.text.moe_layers)
    assert gpu4.int4_mlp_layers == cpu4.int4_mlp_layers == list(range(ref32.config.text.num_hidden_layers))
    _assert_cuda_error_within_cpu_error(f"{name}: INT4 experts", ref32, cpu4, gpu4, 300)


def test_load_rejects_bad_devices(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout_text")
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        l4.load(folder, device="gpu")
    with pytest.raises(ValueError, match="CUDA devices are visible"):
        l4.load(folder, device=f"cuda:{torch.cuda.device_count()}")


def test_seeded_sampling_on_the_gpu_draws_the_cpu_tokens(tiny_checkpoint):
    """The scheduler samples where the logits are (only tokens and logprobs come back to the host):
    the CUDA sampler uses the CPU sampler's counter-based random numbers, and the logits agree to
    1e-4, so the same seed draws the same tokens, n samples and penalties included."""
    folder, _ = tiny_checkpoint("scout_text")
    cpu = l4.load(folder, dtype="float32")
    gpu = l4.load(folder, device="cuda", dtype="float32")
    prompt = _prompt(5, cpu.vocab_size)
    kw = dict(input_ids=prompt, max_new_tokens=16, temperature=0.8, top_k=40, top_p=0.95, seed=11, n=2,
              logprobs=3, repetition_penalty=1.1)
    want, got = cpu.generate(**kw), gpu.generate(**kw)
    assert [s.token_ids for s in got.samples] == [s.token_ids for s in want.samples]
    for g, w in zip(got.samples, want.samples):
        for a, b in zip(g.logprobs, w.logprobs):
            assert abs(a.logprob - b.logprob) <= 1e-4 and [t for t, _ in a.top] == [t for t, _ in b.top]
