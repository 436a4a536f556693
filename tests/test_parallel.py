"""Tensor + expert parallelism on CPU ranks (gloo; llama4/shard.h): a model loaded with
tensor_parallel_size=N (N - 1 worker processes) gives the single-rank engine's logits (fp32: within
1e-5) and the same greedy tokens, with images, FP8 experts, a batch of prompts, n samples sharing a
prefill (KV page copies mirrored on every rank) and preemption; expert, vocabulary and intermediate
sizes that do not divide evenly; a rank that is killed or hangs makes rank 0 raise RankError naming
it within the timeout, and a dead rank 0 makes the workers exit."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

import llama4_native as l4
from llama4_native import _C
from llama4_native.chat import ImageTokens
from llama4_native.image import ImageInput

import tiny_checkpoints as tc

pytestmark = pytest.mark.skipif(not _C.gloo_available(), reason="this build has no gloo (libgloo-dev)")

TOKENS = ImageTokens(patch=499, image=494, start=497, end=498, tile_x=495, tile_y=496)
ATOL = 1e-5  # fp32: the ranks' partial sums are added in another order, nothing else differs


def _ids(seed: int, n: int, vocab: int = 512) -> list[int]:
    return torch.randint(3, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _pixels(tiles: int, seed: int) -> torch.Tensor:
    return torch.rand(tiles, 3, 56, 56, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def maverick(tiny_checkpoint):
    folder, _ = tiny_checkpoint("maverick")  # vision tower, MoE every other layer, top-2
    single = l4.load(folder, dtype="float32")
    single.image_tokens = TOKENS
    return folder, single


@pytest.mark.parametrize("world_size", [2, 4])
def test_logits_tokens_images_and_batches_equal_single_rank(maverick, world_size):
    folder, single = maverick
    with l4.load(folder, dtype="float32", tensor_parallel_size=world_size, collective_timeout_s=60) as tp:
        tp.image_tokens = TOKENS
        assert tp._engine.world_size == world_size and tp._comm.backend == "gloo"
        prompt = _ids(0, 21)  # crosses two attention chunks of 8
        err = _err(tp.logits(prompt), single.logits(prompt))
        print(f"N={world_size}: prompt logits max|d| = {err:.2e}")
        assert err <= ATOL
        with_image = [1, 5, TOKENS.image, 6, 7]
        pix = [ImageInput(_pixels(3, 1), (1, 2))]  # a 1x2 tile grid and the global tile
        err_img = _err(tp.logits(with_image, images=pix), single.logits(with_image, images=pix))
        print(f"N={world_size}: logits with an image max|d| = {err_img:.2e}")
        assert err_img <= ATOL
        # A batch (continuous batching: prefill chunks and decodes mixed in one step), one with an image.
        prompts = [_ids(1, 21), _ids(2, 5), [1, 9, TOKENS.image, 10]]
        kw = dict(max_new_tokens=12, temperature=0.0, stop_token_ids=[], return_logits=True)
        want = [single.generate(input_ids=prompts[0], **kw), single.generate(input_ids=prompts[1], **kw),
                single.generate(input_ids=prompts[2], images=pix, **kw)]
        got_batch = tp.generate(prompts[:2], **kw)
        got_img = tp.generate(input_ids=prompts[2], images=pix, **kw)
        for w, g in zip(want, got_batch + [got_img]):
            assert g.token_ids == w.token_ids
            assert _err(g.logits, w.logits) <= ATOL


def test_fp8_experts_equal_single_rank(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout_text")
    kw = dict(dtype="float32", quantization="fp8")
    single = l4.load(folder, **kw)
    assert single.fp8_layers
    with l4.load(folder, tensor_parallel_size=2, **kw) as tp:
        assert tp.fp8_layers == single.fp8_layers
        prompt = _ids(3, 19)
        err = _err(tp.logits(prompt), single.logits(prompt))
        print(f"FP8 experts, N=2: prompt logits max|d| = {err:.2e}")
        assert err <= ATOL
        gkw = dict(max_new_tokens=16, temperature=0.0, stop_token_ids=[])
        assert tp.generate(input_ids=prompt, **gkw).token_ids == single.generate(input_ids=prompt, **gkw).token_ids


@pytest.fixture(scope="module")
def uneven(tmp_path_factory):
    """scout_text with 5 experts, a vocabulary of 509 and intermediate sizes 22 / 78: none divides
    by 4 (experts 1+1+1+2; vocabulary rows 128 x 3 + 125; 5/6 columns), and 4 ranks replicate the
    2 KV heads."""
    folder = tmp_path_factory.mktemp("uneven")
    tc.save_tiny("scout_text", folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(num_local_experts=5, vocab_size=509, intermediate_size=22, intermediate_size_mlp=78)
    (folder / "config.json").write_text(json.dumps(cfg))
    # Random weights of the new shapes, in the HF layout the loader reads.
    from transformers import AutoConfig, Llama4ForCausalLM

    torch.manual_seed(5)
    model = Llama4ForCausalLM(AutoConfig.from_pretrained(folder)).float()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("world_size", [2, 4])
def test_uneven_experts_vocabulary_and_widths(uneven, world_size):
    single = l4.load(uneven, dtype="float32")
    with l4.load(uneven, dtype="float32", tensor_parallel_size=world_size) as tp:
        prompt = _ids(4, 20, vocab=509)
        err = _err(tp.logits(prompt), single.logits(prompt))
        print(f"uneven, N={world_size}: prompt logits max|d| = {err:.2e}")
        assert err <= ATOL
        kw = dict(max_new_tokens=16, temperature=0.0, stop_token_ids=[])
        assert tp.generate(input_ids=prompt, **kw).token_ids == single.generate(input_ids=prompt, **kw).token_ids


def test_preemption_and_shared_prefill_pages_equal_single_rank(tmp_path):
    """A KV cache too small for the batch (the scheduler preempts and recomputes) and n=2 samples
    forked from one prefill (the partly filled page is copied on every rank): the same tokens as one
    rank with the same pages."""
    folder = tmp_path / "short"
    tc.save_tiny("scout_text", folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(max_position_embeddings=64, attention_chunk_size=32)
    (folder / "config.json").write_text(json.dumps(cfg))
    budget = 163840  # about 100 tokens on one rank; each of 2 ranks holds 1 of the 2 KV heads
    single = l4.load(folder, dtype="float32", kv_cache_bytes=budget)
    prompts = [_ids(100 + i, 21) for i in range(4)]

    def run(model):
        sched = _C.Scheduler(model._engine)
        ids = [sched.add_request(p, max_new_tokens=30, n=2 if i == 0 else 1) for i, p in enumerate(prompts)]
        got = {}
        while sched.has_unfinished():
            for rid, k, tokens, *_ in sched.step():
                got.setdefault((rid, k), []).extend(tokens)
        return [got[(i, k)] for i in ids for k in range(2) if (i, k) in got], sched.stats()["preemptions"]

    want, want_pre = run(single)
    with l4.load(folder, dtype="float32", kv_cache_bytes=budget // 2, tensor_parallel_size=2) as tp:
        assert [tp._engine.total_pages(g) for g in (0, 1)] == [single._engine.total_pages(g) for g in (0, 1)]
        # the same pages, each rank's holding only its one KV head of the two
        assert 2 * tp._engine.kv_cache_storage_bytes() == single._engine.kv_cache_storage_bytes()
        got, got_pre = run(tp)
    assert want_pre > 0 and got_pre == want_pre
    assert got == want


def test_config_that_cannot_be_split_fails_before_starting_ranks(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout_text")  # 4 query heads, 2 KV heads
    with pytest.raises(ValueError, match="tensor_parallel_size 3 must divide num_attention_heads = 4"):
        l4.load(folder, tensor_parallel_size=3)
    with pytest.raises(ValueError, match="tensor_parallel_size must be an int >= 1"):
        l4.load(folder, tensor_parallel_size=0)
    with pytest.raises(ValueError, match="collective_timeout_s"):
        l4.load(folder, tensor_parallel_size=2, collective_timeout_s=0)


def test_shard_bytes_add_up(tiny_checkpoint):
    folder, _ = tiny_checkpoint("maverick")
    text = _C.load_model_config(str(folder)).text
    whole = _C.text_shard_weight_bytes(text, "float32", [], 0, 1)
    for n in (2, 4):
        parts = [_C.text_shard_weight_bytes(text, "float32", [], r, n) for r in range(n)]
        # Every rank holds the replicated norms and routers, the two zero rows of its embedding table,
        # and (4 ranks, 2 KV heads) its replicated KV head: the parts sum to more than the whole.
        assert whole / n < max(parts) < whole
    single = l4.load(folder, dtype="float32")
    assert whole == sum(t.numel() * 4 for t in map(torch.from_dlpack, single._checkpoint.text_weights.values()))


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_dead_or_hung_worker_raises_rank_error_within_timeout(tiny_checkpoint, how):
    folder, _ = tiny_checkpoint("scout_text")
    timeout = 4.0
    model = l4.load(folder, dtype="float32", tensor_parallel_size=2, collective_timeout_s=timeout)
    try:
        assert model.logits([1, 2, 3]).shape == (3, 512)
        victim = model._group.procs[0]
        result = {}

        def generate():
            t0 = time.monotonic()
            try:
                model.generate(input_ids=_ids(7, 20), max_new_tokens=200, temperature=0.0, stop_token_ids=[])
                result["error"] = None
            except Exception as e:  # noqa: BLE001  (the test inspects it)
                result["error"] = e
            result["seconds"] = time.monotonic() - t0

        thread = threading.Thread(target=generate)
        thread.start()
        time.sleep(0.5)  # mid-generation: steps are running
        killed_at = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        thread.join(timeout=timeout + 20)
        assert not thread.is_alive(), "rank 0 hangs"
        err = result["error"]
        assert isinstance(err, l4.RankError), err
        assert time.monotonic() - killed_at < timeout + 3
        assert err.rank == 1 and "rank 1" in str(err)
        assert ("has exited" if how == "kill" else "is stopped") in str(err)
    finally:
        if how == "stop":
            os.kill(model._group.procs[0].pid, signal.SIGKILL)
        model.close()


def _kill_rank_0_and_wait_for_its_worker(script: str, cwd, wait_s: float) -> tuple[float, str]:
    """Runs `script` (it prints its worker's pid, then kills itself); returns how long the worker
    outlived it and the stderr they shared, and checks that the worker is gone."""
    # cwd: not the source tree, whose llama4_native (without the built _C) would shadow the installed one
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd)
    worker = int(proc.stdout.readline())
    died = time.monotonic()
    proc.wait(timeout=30)
    _, stderr = proc.communicate(timeout=wait_s)  # EOF once the worker, which shares the pipe, has exited
    outlived = time.monotonic() - died
    with open(f"/proc/{worker}/stat") if os.path.exists(f"/proc/{worker}/stat") else open(os.devnull) as f:
        stat = f.read()
    assert not stat or stat.rsplit(")", 1)[1].split()[0] in "ZX"
    return outlived, stderr


def test_dead_rank_0_makes_the_workers_exit(tiny_checkpoint, tmp_path):
    folder, _ = tiny_checkpoint("scout_text")
    outlived, stderr = _kill_rank_0_and_wait_for_its_worker(f"""
        import os, signal, sys
        import llama4_native as l4
        if __name__ == "__main__":
            m = l4.load({str(folder)!r}, dtype="float32", tensor_parallel_size=2, collective_timeout_s=4)
            m.logits([1, 2, 3])
            print(m._group.procs[0].pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """, tmp_path, wait_s=30)
    assert outlived < 4 + 5
    assert "RankError" in stderr and "rank 0" in stderr, stderr[-2000:]


def test_a_worker_whose_rank_0_dies_before_the_group_forms_exits(tiny_checkpoint, tmp_path):
    # Rank 0 dies right after starting its worker: the worker, loading or waiting to join (whose
    # timeout is long: ranks load at different speeds), sees its parent gone and exits.
    folder, _ = tiny_checkpoint("scout_text")
    outlived, stderr = _kill_rank_0_and_wait_for_its_worker(f"""
        import os, signal
        from llama4_native import parallel
        if __name__ == "__main__":
            group = parallel.start_workers({str(folder)!r}, 2, dict(dtype="float32", collective_timeout_s=600))
            print(group.procs[0].pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """, tmp_path, wait_s=120)
    assert outlived < 120  # not the 1800 s join timeout
    assert "rank 0" in stderr and "exited while this rank was loading or joining" in stderr, stderr[-2000:]


def test_moe_localize_against_a_plain_loop():
    ids = torch.randint(0, 7, (13, 3), dtype=torch.int32, generator=torch.Generator().manual_seed(0))
    want = torch.where((ids >= 2) & (ids < 5), ids - 2, torch.full_like(ids, 3))
    got = ids.clone()
    l4.ops.moe_localize(got, 2, 3)
    assert torch.equal(got, want)
    with pytest.raises(ValueError, match="count >= 1"):
        l4.ops.moe_localize(got, 0, 0)


def test_serve_with_tensor_parallel_size_2(real_vocab_checkpoint, tmp_path):
    """`llama4-native serve --tensor-parallel-size 2` starts its second rank itself and answers with
    the tokens one rank gives."""
    import httpx

    from server_harness import serve_process

    single = l4.load(real_vocab_checkpoint, dtype="bfloat16", max_sequences=2)
    prompt_ids = [200000] + single.tokenizer.encode("Hi there")  # <|begin_of_text|> first
    want = single.generate(input_ids=prompt_ids, max_new_tokens=4, temperature=0.0, stop_token_ids=[]).token_ids
    with serve_process(real_vocab_checkpoint, "--served-model-name", "tiny", "--max-model-len", "256",
                       "--max-num-seqs", "2", "--tensor-parallel-size", "2", cwd=tmp_path) as (_, url):
        r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": prompt_ids, "max_tokens": 4,
                                                      "temperature": 0, "ignore_eos": True},
                       timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["usage"]["completion_tokens"] == 4
        text = single.tokenizer.decode(want)
        assert body["choices"][0]["text"] == text


@pytest.mark.parametrize("layout", ["fused", "per_expert"])
@pytest.mark.parametrize("quantization", [None, "fp8"])
def test_loader_reads_only_each_ranks_experts(tiny_checkpoint, tmp_path, layout, quantization):
    """A rank's routed experts (and FP8 scales), read from the file for its experts alone, equal
    the whole load's rows for them; both checkpoint layouts, bf16 or quantized at load."""
    folder, _ = tiny_checkpoint("scout_text")
    if layout == "per_expert":
        folder = tc.to_per_expert(folder, tmp_path / "per_expert")
    full = _C.load_checkpoint(str(folder), "float32", quantization)
    weights = full.text_weights
    E = full.config.text.num_local_experts
    # e4m3 has no torch.equal; float experts are transposed views of the file (ops.expert_layout)
    bits = lambda t: torch.from_dlpack(t).contiguous().view(torch.uint8)  # noqa: E731
    for n, r in ((2, 0), (2, 1), (4, 3)):
        part = _C.load_checkpoint(str(folder), "float32", quantization, None, [], False, None, r, n).text_weights
        assert part.keys() == weights.keys()
        a, b = E * r // n, E * (r + 1) // n
        experts = [k for k in part if k.split(".", 2)[-1] in ("moe.gate_up", "moe.down", "moe.gate_up_scale",
                                                              "moe.down_scale")]
        assert len(experts) == len(full.config.text.moe_layers) * (4 if quantization else 2)
        for k in experts:
            assert torch.equal(bits(part[k]), bits(weights[k])[a:b]), k
