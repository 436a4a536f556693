"""The CUDA FP8 MoE (CUTLASS grouped GEMM on sm_90a + the pipeline kernels) against the CPU
emulation, which predicts it: the same steps and roundings, except that the GPU accumulates the
k-sum in fp32 on the tensor cores while the CPU sums exactly.

Tolerances are derived, not fitted:
  * Data whose every partial sum is a small integer (|sum| <= 2^11) is summed exactly by any
    accumulator, so on such data the GPU must match the CPU bit for bit. That also proves the
    kernel is not the empty plain-sm_90 build of a wgmma kernel (TOOLCHAIN.md §2), which writes
    nothing or aborts.
  * General data: the GPU's sum may differ from the exact one by the tensor cores' FP8
    accumulation error. DeepSeek-V3 (§3.3.2) measured about 14 retained bits per accumulation on
    Hopper; CUTLASS promotes into fp32 every 4 k-blocks of 128, i.e. after at most 16 wgmma
    accumulations, so |error| <= 16 * 2^-14 * sum|a*w| = 2^-10 * sum|a*w| (scaled by both scales).
    Both sides then round to bf16, which may add one bf16 ulp (2^-7 relative at most).
  * The whole block: GEMM differences pass through SiLU and a re-quantization, where a one-ulp
    change can move an e4m3 rounding, so only a ratio is meaningful: the GPU's distance from the CPU
    emulation must be at most a tenth of the FP8 emulation's own distance from bf16 experts.
    On data built so that every GEMM partial sum is again a small integer (_integer_moe_case),
    the whole block must match bit for bit.
"""
from __future__ import annotations

import pytest
import torch

import fp8_reference as ref
import llama4_native as l4
from llama4_native import ops

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not (l4.cuda_available() and torch.cuda.is_available()),
                       reason="needs the CUDA backend, a CUDA GPU and a CUDA build of torch"),
]

E4M3 = torch.float8_e4m3fn


def _offsets(counts) -> torch.Tensor:
    return torch.tensor([0] + list(torch.tensor(counts).cumsum(0).tolist()), dtype=torch.int32)


def _run_both(a, a_scale, w, w_scale, off):
    cpu = ops.moe_grouped_gemm_fp8(a, a_scale, w, w_scale, off)
    gpu = ops.moe_grouped_gemm_fp8(a.cuda(), a_scale.cuda(), w.cuda(), w_scale.cuda(), off.cuda())
    torch.cuda.synchronize()
    return cpu, gpu.cpu()


def _integer_gemm_case(counts, N, K, seed):
    """a, w in {-2..2} (every partial sum an integer of magnitude <= 4 * K < 2^13, exact in any
    accumulator that keeps 14 bits) and power-of-two scales (the float the epilogue rounds to bf16
    is the same on both sides): (a, a_scale, w, w_scale, offsets) on which GPU == CPU bit for bit."""
    g = torch.Generator().manual_seed(seed)
    E, R = len(counts), sum(counts)
    a = torch.randint(-2, 3, (R, K), generator=g).float().to(E4M3)
    w = torch.randint(-2, 3, (E, N, K), generator=g).float().to(E4M3)
    a_scale = 2.0 ** torch.randint(-6, 3, (R,), generator=g).float()
    w_scale = 2.0 ** torch.randint(-9, -3, (E, N), generator=g).float()
    return a, a_scale, w, w_scale, _offsets(counts)


# Row counts per expert with empty experts first, in the middle and last. Few rows per expert take
# the swap-AB decode kernel, many the cooperative one (printed). N and K obey the TMA rules
# (K % 16, N % 8); 200 x 464 leaves partial tiles.
GEMM_CASES = [
    ([0, 1, 0, 3, 2, 0], 256, 512),      # decode: swap-AB
    ([0, 7, 0, 1, 0, 0, 5, 0], 200, 464),
    ([0, 300, 0, 257, 130, 0], 256, 512),  # prefill: cooperative
    ([64, 1, 0, 3], 200, 1280),
    ([300, 129], 384, 256),              # cooperative, odd tile counts: 3 x 128 columns, 3 + 2 row tiles
    ([3, 0, 1, 5, 0, 2, 0, 0] * 16, 256, 512),  # 128 experts (Maverick), swap-AB
    ([40] * 128, 128, 256),              # 128 experts, cooperative
    ([40000, 0, 30000], 64, 128),        # > 65535 rows: rows are never a grid dimension
]


@pytest.mark.parametrize("counts,N,K", GEMM_CASES)
def test_grouped_gemm_exact_on_integer_data(counts, N, K):
    """Integer data (_integer_gemm_case): GPU == CPU bit for bit."""
    a, a_scale, w, w_scale, off = _integer_gemm_case(counts, N, K, seed=len(counts) * K)
    cfg = ops.moe_gemm_config(sum(counts), len(counts))
    cpu, gpu = _run_both(a, a_scale, w, w_scale, off)
    print(f"counts {counts} N {N} K {K}: {cfg['name']}")
    assert cpu.abs().max() > 0, "test data must not be all zeros"
    assert torch.equal(gpu.view(torch.int16), cpu.view(torch.int16))


@pytest.mark.parametrize("counts,N,K", GEMM_CASES)
def test_grouped_gemm_within_accumulation_bound(counts, N, K):
    g = torch.Generator().manual_seed(K + N)
    E, R = len(counts), sum(counts)
    x = torch.randn(R, K, generator=g) * 3
    a, a_scale = ref.quantize_rows(x)
    w, w_scale = ref.quantize_experts(torch.randn(E, N, K, generator=g) / K**0.5)
    off = _offsets(counts)
    cpu, gpu = _run_both(a, a_scale, w, w_scale, off)
    # sum_k |a * w| per output, scaled like the output
    mag = torch.cat([(a[int(off[e]):int(off[e + 1])].double().abs() @ w[e].double().abs().T)
                     * w_scale[e].double() * a_scale[int(off[e]):int(off[e + 1]), None].double()
                     for e in range(E)])
    tol = 2.0**-7 * cpu.double().abs() + 2.0**-10 * mag
    err = (gpu.double() - cpu.double()).abs()
    exact = float((gpu.view(torch.int16) == cpu.view(torch.int16)).float().mean())
    print(f"counts {counts}: {100 * exact:.2f}% bit-identical, max err/tol {float((err / tol).max()):.3f}")
    assert bool((err <= tol).all())


def test_grouped_gemm_cached_setup_follows_each_call():
    """The initialized CUTLASS GEMM is cached per (device, experts, workspace address): one
    workspace reused by calls with other row counts, N and K (both kernels, both orders) must still
    compute each call's own problem, bit for bit on integer data as above."""
    E = 4
    ws = torch.empty(ops.moe_grouped_gemm_fp8_workspace_bytes("cuda", E), dtype=torch.uint8, device="cuda")
    for seed, (counts, N, K) in enumerate([([0, 300, 0, 257], 256, 512), ([1, 0, 3, 2], 200, 464),
                                           ([64, 1, 0, 3], 200, 1280), ([0, 300, 0, 257], 128, 256)]):
        a, a_scale, w, w_scale, off = _integer_gemm_case(counts, N, K, seed)
        cpu = ops.moe_grouped_gemm_fp8(a, a_scale, w, w_scale, off)
        gpu = ops.moe_grouped_gemm_fp8(a.cuda(), a_scale.cuda(), w.cuda(), w_scale.cuda(), off.cuda(),
                                       workspace=ws).cpu()
        assert torch.equal(gpu.view(torch.int16), cpu.view(torch.int16)), f"call {seed}: {counts} {N}x{K}"


def test_grouped_gemm_kernel_is_not_empty():
    """Guards the sm_90-instead-of-sm_90a pitfall: the build targets 90a, and a large random GEMM is
    non-zero and agrees with the CPU (an empty kernel leaves zeros/garbage or aborts)."""
    assert "90a" in l4.build_info()["cuda_archs"]
    g = torch.Generator().manual_seed(0)
    a, a_scale = ref.quantize_rows(torch.randn(512, 1024, generator=g))
    w, w_scale = ref.quantize_experts(torch.randn(2, 512, 1024, generator=g))
    cpu, gpu = _run_both(a, a_scale, w, w_scale, _offsets([256, 256]))
    assert gpu.float().abs().mean() > 0.1 * cpu.float().abs().mean()
    assert float((gpu.float() - cpu.float()).norm() / cpu.float().norm()) < 1e-2


def test_grouped_gemm_on_a_torch_side_stream():
    """Inputs written on a torch side stream behind a long queue, the op called inside
    torch.cuda.stream(side): the GEMM must run after the producer on that stream (the DLPack
    stream handshake), or it reads the inputs before they are written."""
    counts, N, K = [0, 300, 0, 257], 256, 512
    a, a_scale, w, w_scale, off = _integer_gemm_case(counts, N, K, seed=5)
    R = sum(counts)
    cpu = ops.moe_grouped_gemm_fp8(a, a_scale, w, w_scale, off)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        busy = torch.randn(2048, 2048, device="cuda")
        for _ in range(30):  # a queue the GPU needs a while to drain before `a` is written
            busy = (busy @ busy).clamp_(-1, 1)
        a_dev = torch.empty(R, K, dtype=torch.uint8, device="cuda")
        a_dev.copy_(a.view(torch.uint8).cuda() + (busy[:1, :1] * 0).to(torch.uint8))
        gpu = ops.moe_grouped_gemm_fp8(a_dev.view(E4M3), a_scale.cuda(), w.cuda(), w_scale.cuda(), off.cuda())
        gpu_cpu = gpu.cpu()
    assert torch.equal(gpu_cpu.view(torch.int16), cpu.view(torch.int16))


def _integer_moe_case(T, D, I, E, seed):
    """A whole FP8 MoE block on which the GPU must equal the CPU emulation bit for bit: every GEMM
    partial sum is an integer of magnitude < 2^13 (exact in the tensor cores' accumulator), and
    every other step (routing, the sigmoid, the row quantizers, SiLU-gate, un-permute) is bitwise
    identical by design (tests/test_cuda_model_ops.py, test_moe_fp8_cuda_vs_cpu_emulation).
      * the chosen expert's router logit is 0 (sigmoid 0.5 exactly), the others negative: x in
        {1, 2} scaled by 0.5 quantizes to e4m3 codes 224 and 448 (the row's amax maps to 448);
      * gate_up rows hold 8 nonzeros in {1, 2}: sums in [1792, 7168]; with a weight scale of 8 the
        gate and up values lie in [16, 128], so act = SiLU(gate) * up spans at most 64x, and its
        codes (amax -> 448) are >= 7: e4m3 values >= 7, integers (e4m3 steps by 1 up to 16);
      * down rows hold 8 nonzeros in {-2, -1, 1, 2}: |sums| <= 448 * 2 * 8 = 7168 < 2^13."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 3, (T, D), generator=g).to(torch.bfloat16)
    logits = -1.0 - 8.0 * torch.rand(T, E, generator=g)
    logits[torch.arange(T), torch.randint(0, E, (T,), generator=g)] = 0.0
    shared = torch.randint(-4, 5, (T, D), generator=g).to(torch.bfloat16)

    def sparse(rows, cols, values):
        w = torch.zeros(rows, cols)
        where = torch.rand(rows, cols, generator=g).argsort(dim=1)[:, :8]
        picks = torch.tensor(values)[torch.randint(0, len(values), (rows, 8), generator=g)]
        return w.scatter_(1, where, picks)

    gu = torch.stack([sparse(2 * I, D, [1.0, 2.0]) for _ in range(E)]).to(E4M3)
    dn = torch.stack([sparse(D, I, [-2.0, -1.0, 1.0, 2.0]) for _ in range(E)]).to(E4M3)
    gu_s = torch.full((E, 2 * I), 8.0)
    dn_s = 2.0 ** torch.randint(-8, -4, (E, D), generator=g).float()
    return x, logits, shared, gu, gu_s, dn, dn_s


@pytest.mark.parametrize("T,E", [(300, 4), (200, 128)])  # cooperative; swap-AB over 128 experts
def test_moe_fp8_block_bitwise_on_integer_data(T, E):
    args = _integer_moe_case(T, 256, 128, E, seed=T + E)
    cpu = ops.moe_fp8(*args, 1, None)
    gpu = ops.moe_fp8(*[t.cuda() for t in args], 1, None).cpu()
    routed = cpu.float() - args[2].float()
    assert float(routed.abs().amax(dim=1).min()) > 0, "every token's routed output must be nonzero"
    assert torch.equal(gpu.view(torch.int16), cpu.view(torch.int16))


def _moe_case(T, D, I, E, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, D, generator=g).to(dtype)
    logits = torch.randn(T, E, generator=g) * 2
    shared = torch.randn(T, D, generator=g).to(dtype)
    w_gu = (torch.randn(E, 2 * I, D, generator=g) / D**0.5).to(torch.bfloat16)
    w_dn = (torch.randn(E, D, I, generator=g) / I**0.5).to(torch.bfloat16)
    return x, logits, shared, w_gu, w_dn


MOE_CASES = [  # (T, D, I, E, top_k, dtype, scale_ub): decode and prefill, bf16 and fp32 models
    (1, 512, 256, 16, 1, torch.bfloat16, 1200.0),
    (7, 256, 128, 4, 2, torch.float32, None),
    (300, 512, 256, 16, 1, torch.bfloat16, 1200.0),
    (129, 256, 128, 8, 2, torch.bfloat16, 0.5),
]


@pytest.mark.parametrize("T,D,I,E,k,dtype,ub", MOE_CASES)
def test_moe_fp8_cuda_vs_cpu_emulation(T, D, I, E, k, dtype, ub):
    x, logits, shared, w_gu, w_dn = _moe_case(T, D, I, E, dtype, seed=T)
    gu, gu_s = ref.quantize_experts(w_gu)
    dn, dn_s = ref.quantize_experts(w_dn)
    cpu = ops.moe_fp8(x, logits, shared, gu, gu_s, dn, dn_s, k, ub)
    args = [t.cuda() for t in (x, logits, shared, gu, gu_s, dn, dn_s)]
    gpu = ops.moe_fp8(*args, k, ub).cpu()
    # The FP8 emulation's distance from bf16 experts: the scale the GPU-CPU distance is judged on.
    zero = torch.zeros_like(shared)
    routed_cpu = ops.moe_fp8(x, logits, zero, gu, gu_s, dn, dn_s, k, ub).float()
    d_gpu = float((gpu.float() - cpu.float()).norm())
    d_fp8 = float((routed_cpu - _bf16_routed(x, logits, w_gu, w_dn, k)).norm())
    print(f"T {T} {dtype}: |gpu - cpu| = {d_gpu:.4g}, |fp8 - bf16 experts| = {d_fp8:.4g}, "
          f"bit-identical {100 * float((gpu == cpu).float().mean()):.1f}%")
    assert torch.isfinite(gpu.float()).all()
    assert d_gpu <= 0.1 * d_fp8


def _bf16_routed(x, logits, w_gu, w_dn, k):
    """The routed experts with bf16 weights (fp32 math, HF's roundings)."""
    ids = logits.topk(k, dim=-1).indices
    scores = torch.sigmoid(logits.gather(1, ids)).to(x.dtype)
    I = w_dn.shape[2]
    out = torch.zeros(x.shape, dtype=torch.float32)
    for t in range(x.shape[0]):
        for j in range(k):
            e = int(ids[t, j])
            gu = (w_gu[e].float() @ (x[t] * scores[t, j]).float()).to(torch.bfloat16).float()
            h = (torch.nn.functional.silu(gu[:I]).bfloat16().float() * gu[I:]).bfloat16().float()
            out[t] += (w_dn[e].float() @ h).bfloat16().float()
    return out.to(x.dtype).float()


def test_moe_fp8_cuda_preallocated_workspace_and_out():
    """The benchmark's path: caller-owned out and workspace (no allocation in the call)."""
    x, logits, shared, w_gu, w_dn = _moe_case(5, 256, 128, 4, torch.bfloat16, seed=3)
    gu, gu_s = ref.quantize_experts(w_gu)
    dn, dn_s = ref.quantize_experts(w_dn)
    args = [t.cuda() for t in (x, logits, shared, gu, gu_s, dn, dn_s)]
    n = ops.moe_fp8_workspace_bytes("cuda:0", 5, 256, 128, 4, 1)
    ws = torch.empty(n, dtype=torch.uint8, device="cuda")
    out = torch.empty_like(args[0])
    ops.moe_fp8(*args, 1, None, out=out, workspace=ws)
    want = ops.moe_fp8(*args, 1, None)
    torch.cuda.synchronize()
    assert torch.equal(out, want)
    with pytest.raises(ValueError, match="at least"):
        ops.moe_fp8(*args, 1, None, workspace=ws[: n // 2])
