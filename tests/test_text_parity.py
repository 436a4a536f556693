"""The C++ text engine against transformers on tiny random checkpoints (tests/tiny_checkpoints.py).

fp32: prompt logits and 48 greedy decode steps (crossing several chunk boundaries: chunk 8,
floor_scale 4 so temperature tuning is active) agree to 1e-4 with identical tokens.
bf16: our error against the fp32 reference is at most twice transformers' own bf16 error.
"""
from __future__ import annotations

import pytest
import torch

import llama4_native as l4
import tiny_checkpoints as tc

NAMES = list(tc.TINY_CONFIGS)
PROMPT_LEN = 21  # > 2 chunks of 8, ends mid-chunk
DECODE_STEPS = 48


def _prompt(seed: int, vocab: int) -> list[int]:
    """Text ids: below the tiny vocabulary's image tokens (a <|patch|> without an image is refused)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, min(vocab, tc.IMAGE_IDS["boi_token_index"]), (PROMPT_LEN,), generator=g).tolist()


def _hf_greedy(model, prompt: list[int], steps: int):
    """transformers' own incremental decoding: its cache, one token per forward."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config.get_text_config())
    ids = torch.tensor([prompt])
    tokens, rows = [], []
    with torch.inference_mode():
        for _ in range(steps):
            logits = model(input_ids=ids, past_key_values=cache, use_cache=True).logits[0, -1].float()
            rows.append(logits)
            tok = int(logits.argmax())
            tokens.append(tok)
            ids = torch.tensor([[tok]])
    return tokens, torch.stack(rows)


@pytest.mark.parametrize("name", NAMES)
def test_fp32_prompt_logits_match_transformers(tiny_checkpoint, name):
    folder, hf = tiny_checkpoint(name)
    model = l4.load(folder, dtype="float32")
    prompt = _prompt(0, model.vocab_size)
    ours = model.logits(prompt)
    with torch.inference_mode():
        ref = hf(input_ids=torch.tensor([prompt])).logits[0].float()
    assert ours.shape == ref.shape == (PROMPT_LEN, model.vocab_size)
    err = (ours - ref).abs().max().item()
    print(f"{name}: prompt max|dlogit| = {err:.2e} (logit scale {ref.abs().max().item():.1f})")
    assert err <= 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_fp32_greedy_decode_matches_transformers(tiny_checkpoint, name):
    folder, hf = tiny_checkpoint(name)
    model = l4.load(folder, dtype="float32")
    prompt = _prompt(1, model.vocab_size)
    res = model.generate(input_ids=prompt, max_new_tokens=DECODE_STEPS, temperature=0.0,
                         return_logits=True, stop_token_ids=[])  # transformers' loop never stops early
    ref_tokens, ref_logits = _hf_greedy(hf, prompt, DECODE_STEPS)
    err = (res.logits - ref_logits).abs().max().item()
    print(f"{name}: {DECODE_STEPS} decode steps max|dlogit| = {err:.2e}, "
          f"{len(set(ref_tokens))} distinct tokens")
    assert res.token_ids == ref_tokens
    assert res.logits.shape == (DECODE_STEPS, model.vocab_size)
    assert err <= 1e-4


@pytest.mark.parametrize("name", ["scout", "maverick", "scout_text"])
def test_bf16_error_within_twice_transformers_bf16_error(tiny_checkpoint, name):
    """Errors against the fp32 reference over 32 prompts (672 positions). A bf16 run occasionally
    routes a token to a different expert than fp32 does (router logits within a bf16 ulp), which
    shows as an isolated large error at that position (a few percent of positions, for us and for
    transformers alike); the two flip at different positions, so a single short prompt compares
    luck. Over 672 positions both the max and the median must be within twice transformers'."""
    from transformers import AutoModelForCausalLM, Llama4ForConditionalGeneration

    folder, hf32 = tiny_checkpoint(name)
    cls = Llama4ForConditionalGeneration if tc.TINY_CONFIGS[name]["arch"] == "conditional" else AutoModelForCausalLM
    hf16 = cls.from_pretrained(folder, dtype=torch.bfloat16).eval()  # keeps complex buffers intact
    ours16 = l4.load(folder, dtype="bfloat16")
    vocab = hf32.config.get_text_config().vocab_size
    err_ours, err_hf = [], []
    for seed in range(32):
        prompt = _prompt(100 + seed, vocab)
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            ref = hf32(input_ids=ids).logits[0].float()
            theirs = hf16(input_ids=ids).logits[0].float()
        err_ours.append((ours16.logits(prompt) - ref).abs().amax(-1))
        err_hf.append((theirs - ref).abs().amax(-1))
    ours, hf = torch.cat(err_ours), torch.cat(err_hf)
    print(f"{name}: bf16 |dlogit| vs fp32 reference over {ours.numel()} positions: "
          f"max llama4_native {ours.max():.3e}, transformers {hf.max():.3e}; "
          f"median {ours.median():.3e} vs {hf.median():.3e}")
    assert ours.max() <= 2 * hf.max()
    assert ours.median() <= 2 * hf.median()


def test_batched_step_matches_single_sequences(tiny_checkpoint):
    """One engine step with sequences of different lengths, prefill and decode mixed, gives each
    sequence the logits it gets alone."""
    folder, _ = tiny_checkpoint("scout")
    model = l4.load(folder, dtype="float32")
    a, b, c = _prompt(3, 512)[:5], _prompt(4, 512), _prompt(5, 512)[:13]
    alone = [model.logits(p) for p in (a, b, c)]
    sa, sb, sc = (model._new_sequence() for _ in range(3))
    model._step([(sa, a[:-1], False)])  # sa: prefilled earlier, now decodes its last token
    out = model._step([(sa, a[-1:], True), (sb, b, True), (sc, c, False)])
    assert out.shape == (1 + len(b) + 1, model.vocab_size)
    torch.testing.assert_close(out[0], alone[0][-1], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[1:1 + len(b)], alone[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[-1], alone[2][-1], rtol=0, atol=1e-5)
    for s in (sa, sb, sc):
        model._free_sequence(s)
