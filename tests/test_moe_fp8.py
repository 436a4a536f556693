"""FP8 MoE on the CPU (llama4/moe_fp8.h): the grouped GEMM's configuration heuristic, the CPU
emulation bit for bit against plain PyTorch (fp8_reference.py), and FP8 accuracy against bf16 for one
MoE layer."""
from __future__ import annotations

import math

import pytest
import torch

import fp8_reference as ref
from llama4_native import ops

E4M3 = torch.float8_e4m3fn


def _assert_bits(got: torch.Tensor, want: torch.Tensor) -> None:
    """Same dtype/shape, same bits, NaN where the reference has NaN."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    gn, wn = got.float().isnan(), want.float().isnan()
    ints = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[got.element_size()]
    same = (got.view(ints) == want.view(ints)) | (gn & wn)
    if not bool(same.all()):
        bad = (~same).nonzero()[0].tolist()
        raise AssertionError(f"{int((~same).sum())} of {same.numel()} differ; first at {bad}: "
                             f"{got[tuple(bad)].item()} vs {want[tuple(bad)].item()}")


def _codes(shape, gen, nan=False) -> torch.Tensor:
    """Random e4m3 values over every finite code (subnormals included); NaN codes only if asked."""
    c = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    if not nan:
        c[(c & 0x7F) == 0x7F] = 0x3E  # NaN code -> 1.75
    return c.view(E4M3)


def _offsets(counts) -> torch.Tensor:
    return torch.tensor([0] + list(torch.tensor(counts).cumsum(0).tolist()), dtype=torch.int32)


# ---- the tile-configuration heuristic -------------------------------------------------------------

# (rows, experts, swap_ab): rows = tokens x top_k; swap-AB while the mean rows per possibly busy
# expert, ceil(rows / min(rows, experts)), is at most 32 (one 32-token tile).
CONFIG_CASES = [
    (1, 16, True),           # decode, one token
    (0, 16, True),           # empty step
    (64, 128, True),         # Maverick decode batch of 64: one row per expert on average
    (16 * 32, 16, True),     # Scout, 512 rows: 32 per expert
    (16 * 32 + 1, 16, False),
    (4096, 128, True),       # 32 per expert
    (4097, 128, False),
    (8192, 16, False),       # prefill
    (33, 1, False),          # one expert: all rows in it
]


@pytest.mark.parametrize("rows,experts,swap", CONFIG_CASES)
def test_gemm_config_heuristic(rows, experts, swap):
    c = ops.moe_gemm_config(rows, experts)
    print(f"rows {rows:5d} experts {experts:3d}: {c['name']}")
    assert c["swap_ab"] == swap
    if swap:  # the two compiled kernels (cuda/moe_gemm_sm90a.cu)
        assert (c["tile"], c["cluster"], c["schedule"]) == ((64, 32, 128), (1, 1), "pingpong")
    else:
        assert (c["tile"], c["cluster"], c["schedule"]) == ((128, 128, 128), (1, 2), "cooperative")


def test_gemm_config_rejects_bad_sizes():
    with pytest.raises(ValueError, match="experts >= 1"):
        ops.moe_gemm_config(4, 0)


# ---- the grouped GEMM ----------------------------------------------------------------------------

# Expert row counts: empty experts first, in the middle and last; up to 32 rows take the streaming
# path (in chunks of 8 rows), more the table + dgemm path. K = 100 leaves a tail after the 8-wide
# vector loop.
GEMM_CASES = [
    ([0, 3, 0, 1, 8, 0], 40, 100),
    ([9, 0, 31, 130], 24, 64),
    ([1], 8, 16),
    ([600, 2], 16, 48),  # 600 rows: more than one 512-row chunk
]


@pytest.mark.parametrize("counts,N,K", GEMM_CASES)
def test_grouped_gemm_bit_exact_vs_torch(counts, N, K):
    g = torch.Generator().manual_seed(sum(counts) + N + K)
    E, R = len(counts), sum(counts)
    a, w = _codes((R, K), g), _codes((E, N, K), g)
    a_scale = torch.rand(R, generator=g) * 3 + 1e-3
    w_scale = torch.rand(E, N, generator=g) * 1e-2 + 1e-5
    off = _offsets(counts)
    got = ops.moe_grouped_gemm_fp8(a, a_scale, w, w_scale, off)
    want = ref.grouped_gemm(a, a_scale, w, w_scale, off)
    _assert_bits(got, want)
    # How often an fp32 matmul (one summation order) would have landed on another bf16 value.
    f32 = torch.cat([((a[int(off[e]):int(off[e + 1])].float() @ w[e].float().T) * w_scale[e]
                      * a_scale[int(off[e]):int(off[e + 1]), None]).to(torch.bfloat16) for e in range(E)])
    print(f"counts {counts}: fp32-matmul formulation differs in {int((f32 != want).sum())} of "
          f"{want.numel()} outputs (by summation order only)")


def test_grouped_gemm_matches_fp32_torch_where_fp32_is_exact():
    """The plain formulation with an fp32 matmul: torch float8 casts, `a.float() @ w.float().T`,
    times w_scale, times a_scale, to bf16. On integer-valued codes in [-4, 4] with K = 1000 every
    partial sum is an integer below 2^14, which fp32 holds exactly in any order, so the fp32
    formulation must match bit for bit (random scales: the epilogue's rounding order matters)."""
    g = torch.Generator().manual_seed(11)
    counts, N, K = [5, 0, 40, 17], 24, 1000
    E, R = len(counts), sum(counts)
    a = torch.randint(-4, 5, (R, K), generator=g).float().to(E4M3)
    w = torch.randint(-4, 5, (E, N, K), generator=g).float().to(E4M3)
    a_scale, w_scale = torch.rand(R, generator=g) + 0.1, torch.rand(E, N, generator=g) * 1e-3
    off = _offsets(counts)
    want = torch.cat([((a[int(off[e]):int(off[e + 1])].float() @ w[e].float().T) * w_scale[e]
                       * a_scale[int(off[e]):int(off[e + 1]), None]).to(torch.bfloat16) for e in range(E)])
    _assert_bits(ops.moe_grouped_gemm_fp8(a, a_scale, w, w_scale, off), want)


def test_grouped_gemm_sum_is_exact():
    """448 * 448 + 2^-9 * 2^-9 - 448 * 448: fp32 accumulation loses the middle term (the sum is 0),
    the exact sum is 2^-18. Every path (streaming: 1 and 9 rows; dgemm: 40) must give 2^-18."""
    a = torch.tensor([448.0, 2.0**-9, -448.0]).to(E4M3)
    w = torch.tensor([448.0, 2.0**-9, 448.0]).to(E4M3)
    for rows in (1, 9, 40):
        out = ops.moe_grouped_gemm_fp8(a.repeat(rows, 1), torch.ones(rows), w.reshape(1, 1, 3),
                                       torch.ones(1, 1), _offsets([rows]))
        assert torch.equal(out.float(), torch.full((rows, 1), 2.0**-18)), out


def test_grouped_gemm_nan_weight_code():
    """A NaN weight code makes its output column NaN on every path: streaming with one row chunk,
    with several (the widened row is reused), and table + dgemm (the streaming path's half-float
    trick would turn 0x7F into 480: such rows are widened through the table)."""
    g = torch.Generator().manual_seed(5)
    w = _codes((1, 8, 32), g)
    w.view(torch.uint8)[0, 3, 17] = 0x7F
    for rows in (2, 12, 40):
        a = _codes((rows, 32), g)
        out = ops.moe_grouped_gemm_fp8(a, torch.ones(rows), w, torch.ones(1, 8), _offsets([rows]))
        assert out[:, 3].isnan().all() and not out[:, [0, 1, 2, 4, 5, 6, 7]].isnan().any()


def test_grouped_gemm_errors():
    a, w = torch.zeros(4, 16, dtype=E4M3), torch.zeros(2, 8, 16, dtype=E4M3)
    s, ws = torch.ones(4), torch.ones(2, 8)
    with pytest.raises(ValueError, match="'expert_offsets' must rise from 0 to at most 4"):
        ops.moe_grouped_gemm_fp8(a, s, w, ws, torch.tensor([0, 3, 2], dtype=torch.int32))
    with pytest.raises(ValueError, match="'expert_offsets' must rise from 0 to at most 4"):
        ops.moe_grouped_gemm_fp8(a, s, w, ws, torch.tensor([0, 3, 5], dtype=torch.int32))
    with pytest.raises(ValueError, match=r"'expert_offsets' must have shape \[3\]"):
        ops.moe_grouped_gemm_fp8(a, s, w, ws, torch.tensor([0, 4], dtype=torch.int32))
    with pytest.raises(TypeError, match="'w' must have dtype float8_e4m3fn, got bfloat16"):
        ops.moe_grouped_gemm_fp8(a, s, w.to(torch.bfloat16), ws, torch.tensor([0, 2, 4], dtype=torch.int32))
    with pytest.raises(ValueError, match=r"'w_scale' must have shape \[2, 8\]"):
        ops.moe_grouped_gemm_fp8(a, s, w, ws[:, :4], torch.tensor([0, 2, 4], dtype=torch.int32))


# ---- the whole MoE block --------------------------------------------------------------------------

def _moe_inputs(T, D, I, E, dtype, seed, x_std=1.0):
    g = torch.Generator().manual_seed(seed)
    x = (x_std * torch.randn(T, D, generator=g)).to(dtype)
    logits = torch.randn(T, E, generator=g) * 2
    shared = torch.randn(T, D, generator=g).to(dtype)
    w_gu = torch.randn(E, 2 * I, D, generator=g) / math.sqrt(D)
    w_dn = torch.randn(E, D, I, generator=g) / math.sqrt(I)
    return x, logits, shared, w_gu, w_dn


MOE_CASES = [  # (T, D, I, E, top_k, dtype, scale_ub)
    (1, 64, 32, 4, 1, torch.bfloat16, None),
    (19, 64, 40, 4, 2, torch.float32, None),
    (111, 128, 48, 8, 1, torch.bfloat16, 1200.0),
    (57, 96, 24, 3, 3, torch.bfloat16, 0.5),  # a bound below the rows' amax: it binds
]


@pytest.mark.parametrize("T,D,I,E,k,dtype,ub", MOE_CASES)
def test_moe_fp8_cpu_bit_exact_vs_torch(T, D, I, E, k, dtype, ub):
    x, logits, shared, w_gu, w_dn = _moe_inputs(T, D, I, E, dtype, seed=T + D)
    gu, gu_s = ref.quantize_experts(w_gu)
    dn, dn_s = ref.quantize_experts(w_dn)
    got = ops.moe_fp8(x, logits, shared, gu, gu_s, dn, dn_s, k, ub)
    want = ref.moe_fp8(x, logits, shared, gu, gu_s, dn, dn_s, k, ub)
    _assert_bits(got, want)


def test_moe_fp8_out_may_alias_shared():
    x, logits, shared, w_gu, w_dn = _moe_inputs(7, 64, 32, 4, torch.bfloat16, seed=1)
    gu, gu_s = ref.quantize_experts(w_gu)
    dn, dn_s = ref.quantize_experts(w_dn)
    want = ops.moe_fp8(x, logits, shared, gu, gu_s, dn, dn_s, 2)
    ops.moe_fp8(x, logits, shared, gu, gu_s, dn, dn_s, 2, out=shared)
    _assert_bits(shared, want)


def test_moe_fp8_errors():
    x, logits, shared, w_gu, w_dn = _moe_inputs(3, 64, 32, 4, torch.bfloat16, seed=2)
    gu, gu_s = ref.quantize_experts(w_gu)
    dn, dn_s = ref.quantize_experts(w_dn)
    with pytest.raises(ValueError, match=r"top_k must be in \[1, 4\], got 5"):
        ops.moe_fp8(x, logits, shared, gu, gu_s, dn, dn_s, 5)
    with pytest.raises(TypeError, match="'router_logits' must have dtype float32"):
        ops.moe_fp8(x, logits.bfloat16(), shared, gu, gu_s, dn, dn_s, 1)
    with pytest.raises(ValueError, match=r"'down' must have shape \[4, 64, 32\]"):
        ops.moe_fp8(x, logits, shared, gu, gu_s, dn[:, :, :16], dn_s, 1)
    with pytest.raises(ValueError, match="scale_ub"):
        ops.moe_fp8(x, logits, shared, gu, gu_s, dn, dn_s, 1, scale_ub=-1.0)


# ---- accuracy: FP8 experts against bf16 experts ---------------------------------------------------

def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


def _bf16_moe(x, logits, shared, w_gu, w_dn, k):
    """The same layer with bf16 experts (HF's roundings; fp32 accumulation)."""
    ids = logits.topk(k, dim=-1).indices
    scores = torch.sigmoid(logits.gather(1, ids)).to(x.dtype)
    I = w_dn.shape[2]
    out = torch.zeros(x.shape, dtype=torch.float32)
    for t in range(x.shape[0]):
        for j in range(k):
            e = int(ids[t, j])
            xs = (x[t] * scores[t, j]).float()
            gu = (w_gu[e].float() @ xs).to(x.dtype).float()
            h = (torch.nn.functional.silu(gu[:I]).to(x.dtype).float() * gu[I:]).to(x.dtype).float()
            out[t] += (w_dn[e].float() @ h).to(x.dtype).float()
    return (shared.float() + out.to(x.dtype).float()).to(x.dtype)


def test_moe_layer_fp8_vs_bf16_accuracy():
    """One Scout-shaped MoE layer scaled down (D 1024, I 512, 16 experts, top-1, 64 tokens, bf16,
    Meta's activation bound 1200), FP8 experts vs the same bf16 experts: cosine >= 0.999, the usual
    acceptance level for FP8 GEMMs (DeepGEMM's calc_diff < 1e-3). The routed part alone is printed
    too (the shared expert, identical in both, dilutes the difference in the sum)."""
    T, D, I, E, k = 64, 1024, 512, 16, 1
    x, logits, shared, w_gu, w_dn = _moe_inputs(T, D, I, E, torch.bfloat16, seed=7)
    w_gu, w_dn = w_gu.to(torch.bfloat16), w_dn.to(torch.bfloat16)
    gu, gu_s = ref.quantize_experts(w_gu)
    dn, dn_s = ref.quantize_experts(w_dn)
    fp8 = ops.moe_fp8(x, logits, shared, gu, gu_s, dn, dn_s, k, 1200.0)
    bf16 = _bf16_moe(x, logits, shared, w_gu, w_dn, k)
    cos = _cosine(fp8, bf16)
    rel = float((fp8.float() - bf16.float()).norm() / bf16.float().norm())
    zero = torch.zeros_like(shared)
    routed_fp8 = ops.moe_fp8(x, logits, zero, gu, gu_s, dn, dn_s, k, 1200.0)
    routed_bf16 = _bf16_moe(x, logits, zero, w_gu, w_dn, k)
    rel_routed = float((routed_fp8.float() - routed_bf16.float()).norm() / routed_bf16.float().norm())
    print(f"MoE layer FP8 vs bf16: cosine {cos:.6f}, relative L2 error {rel:.4f} "
          f"(routed experts alone: cosine {_cosine(routed_fp8, routed_bf16):.6f}, relative {rel_routed:.4f})")
    assert cos >= 0.999
