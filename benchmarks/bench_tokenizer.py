"""Tokenizer speed: the C++ tokenizer (llama4/tokenizer.h, PCRE2 + BPE) vs tiktoken running the same
tokenizer.model (Meta's reference encoding), same texts, same process, one thread each. Prints MB/s
of UTF-8 input (and tokens/s) for encode, plus decode and chat-prompt rows, and the C++/tiktoken
ratio. The ids are checked to be equal before anything is timed.

Texts: English prose, Python source, CJK, and a mixed multilingual/emoji text, each ~1 MB, built
from the tokenizer test corpus so the benchmark needs no download.

    python benchmarks/bench_tokenizer.py [--mb 1.0] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from llama4_native import _C, chat  # noqa: E402
from llama4_native.tokenizer import Tokenizer, bundled_tokenizer_path  # noqa: E402
from llama4_native.tokenizer_backends import TiktokenBackend  # noqa: E402

PROSE = ("The quick brown fox jumps over the lazy dog. It's 3.50 dollars, isn't it? Meanwhile, in 1984, "
         "researchers couldn't agree on whether the results were reproducible; they'll try again.\n\n")
CODE = ('def merge(a: list[int], b: list[int]) -> list[int]:\n    """Merge two sorted lists."""\n'
        "    i = j = 0\n    out = []\n    while i < len(a) and j < len(b):\n"
        "        if a[i] <= b[j]:\n            out.append(a[i]); i += 1\n"
        "        else:\n            out.append(b[j]); j += 1\n    return out + a[i:] + b[j:]\n\n")
CJK = "你好，世界！这是一个测试句子，用来衡量分词器的速度。これは日本語のテキストです。한국어 문장도 있습니다。\n"
MIXED = ("Café naïve façade 😀👍🏽 Ångström 🇫🇷 — «quotes» ١٢٣ ２０２４ Привет мир! γειά σου 𝔘𝔫𝔦 "
         "\t\t  ✓ done\r\n")


def _text(unit: str, mb: float) -> str:
    n = int(mb * 1e6 / len(unit.encode()))
    return unit * max(n, 1)


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=1.0, help="MB of UTF-8 text per input")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not _C.build_info()["tokenizer"]:
        sys.exit("this build has no C++ tokenizer (built without PCRE2)")

    path = bundled_tokenizer_path()
    t0 = time.perf_counter()
    cpp = _C.Tokenizer(str(path))
    load_cpp = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = Tokenizer(TiktokenBackend(path), source=str(path))
    load_ref = time.perf_counter() - t0
    enc = ref._backend._enc  # tiktoken.Encoding; the bare encode, without Meta's input cutting
    print(f"{_C.build_info()['pcre2_version']}, tiktoken; one thread; best of {args.repeat}")
    print(f"{'load tokenizer.model':28s} C++ {load_cpp * 1e3:8.1f} ms   tiktoken {load_ref * 1e3:8.1f} ms   "
          f"ratio {load_ref / load_cpp:5.2f}x")

    print(f"\n{'encode':14s}{'MB':>6s}{'tokens':>9s}{'C++ MB/s':>10s}{'tiktoken MB/s':>15s}{'C++ Mtok/s':>12s}"
          f"{'ratio':>8s}")
    ratios = []
    for name, unit in (("prose", PROSE), ("code", CODE), ("cjk", CJK), ("mixed", MIXED)):
        text = _text(unit, args.mb)
        ids = cpp.encode(text)
        assert ids == ref.encode(text), f"{name}: C++ ids differ from tiktoken"
        mb = len(text.encode()) / 1e6
        t_cpp = _best(lambda: cpp.encode(text), args.repeat)
        # Meta's encode cuts inputs into 400k-character chunks; time tiktoken on the same chunks.
        chunks = [text[i : i + 400_000] for i in range(0, len(text), 400_000)]
        t_ref = _best(lambda: [enc.encode(c, allowed_special=set(), disallowed_special=()) for c in chunks],
                      args.repeat)
        ratios.append(t_ref / t_cpp)
        print(f"{name:14s}{mb:6.2f}{len(ids):9d}{mb / t_cpp:10.1f}{mb / t_ref:15.1f}{len(ids) / t_cpp / 1e6:12.2f}"
              f"{t_ref / t_cpp:7.2f}x")
    print(f"{'geomean':14s}{'':50s}{statistics.geometric_mean(ratios):7.2f}x")

    # Short texts: what a server sees per request (the call overhead matters here).
    short = [PROSE[: 20 + (k * 37) % 150] for k in range(2000)]
    t_cpp = _best(lambda: [cpp.encode(s) for s in short], args.repeat)
    t_ref = _best(lambda: [enc.encode(s, allowed_special=set(), disallowed_special=()) for s in short], args.repeat)
    print(f"{'2000 short texts':28s} C++ {t_cpp * 1e3:8.2f} ms   tiktoken {t_ref * 1e3:8.2f} ms   "
          f"ratio {t_ref / t_cpp:5.2f}x")

    ids = cpp.encode(_text(MIXED, args.mb))
    t_cpp = _best(lambda: cpp.decode(ids), args.repeat)
    t_ref = _best(lambda: ref.decode(ids), args.repeat)
    print(f"{'decode (mixed)':28s} C++ {t_cpp * 1e3:8.2f} ms   tiktoken {t_ref * 1e3:8.2f} ms   "
          f"ratio {t_ref / t_cpp:5.2f}x")

    msgs = [{"role": "system", "content": "You are a helpful assistant."}]
    for k in range(20):
        msgs += [{"role": "user", "content": PROSE * 3}, {"role": "assistant", "content": CODE}]
    assert cpp.chat(msgs, expand_images=False) == chat.encode_chat(ref, msgs)
    t_cpp = _best(lambda: cpp.chat(msgs, expand_images=False), args.repeat)
    t_ref = _best(lambda: chat.encode_chat(ref, msgs), args.repeat)
    print(f"{'chat prompt (41 messages)':28s} C++ {t_cpp * 1e3:8.2f} ms   chat.py+tiktoken {t_ref * 1e3:8.2f} ms   "
          f"ratio {t_ref / t_cpp:5.2f}x")


if __name__ == "__main__":
    main()
