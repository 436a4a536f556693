"""The C++ tokenizer and chat format (llama4/tokenizer.h, llama4/chat.h, bound as _C.Tokenizer) against
independent references: tiktoken running the same tokenizer.model (TiktokenBackend, Meta's encoding)
and Meta's own Tokenizer/ChatFormat, Python's UTF-8 decoder, and chat.py.

Ids must be equal, not close: the test_tokenizer.py corpus (410k-character text included), extra
edge cases, every code point PCRE2 knows in several contexts, and random strings. Also: decode and
streaming decode, chat prompts (text, tools, images expanded from a tile grid), and typed errors for
bad tokenizer files and bad arguments.
"""
from __future__ import annotations

import base64
import random
import re
import threading
import unicodedata

import pytest
from test_chat import ERRORS, HF_CHATS, TEXT_CHATS, _meta_ids
from test_tokenizer import CORPUS, SPECIAL_TEXT
from tokenizer_refs import meta_chat_format, meta_tok  # noqa: F401  (fixtures)

from llama4_native import _C, chat
from llama4_native.tokenizer import IncrementalDecoder, Tokenizer, bundled_tokenizer_path, get_tokenizer
from llama4_native.tokenizer_backends import TiktokenBackend, cpp_tokenizer_built

pytestmark = pytest.mark.skipif(not cpp_tokenizer_built(), reason="built without the C++ tokenizer (no PCRE2)")


@pytest.fixture(scope="module")
def cpp():
    return _C.Tokenizer(str(bundled_tokenizer_path()))


@pytest.fixture(scope="module")
def ref():
    """The same file run by tiktoken: the reference the C++ ids must equal."""
    path = bundled_tokenizer_path()
    return Tokenizer(TiktokenBackend(path), source=str(path))


EXTRA = {
    # \s is Unicode White_Space in tiktoken's regex; PCRE2's \s would add U+180E.
    "mongolian_vowel_separator": "a\u180e's \u180e\u180e x\u180e1 \u180e",
    "py_space_not_regex_space": "a\x1c\x1d\x1e\x1f b \x85c\u2028d\u2029e \u00a0\u3000 ",
    "long_s_contractions": "it'ſ THE'S we'RE i'M he'Ll she'D 'S 'ſ x'ſ",
    "newline_runs": "a\n\n\n  \n\t\n \r\n\r\n   b  \n",
    "trailing_spaces": "word   ",
    "digit_runs": "1 12 123 1234 12345 ١٢٣٤٥ 𝟙𝟚𝟛𝟜 ½¾ Ⅻ",
    "slashes_and_newlines": "a/b//\n/\r\n?!\n\n/",
    "combining_marks": "e\u0301\u0302 \u0301start Ǆǅǆ ʰʱ ᾈ",
    "special_fragments": "<|eot <|eot|<|eot|> <|<|eot|>|> |> <| <|image|><|patch|> <|nope|>",
    "glued_specials": "<|eot|><|eot|>x<|begin_of_text|>",
    "surrogate_pair": "emoji \ud83d\ude00 as a surrogate pair",
    "lone_surrogates": "a\udc80b\ud800 c",
    "code_unicode": 'fn main() {\n    let s = "héllo 🌍";\n    println!("{}", s.len()); // 10\n}\n',
    "long_word": "supercalifragilistic" * 40,
    "long_digits": "9" * 1000,
    "many_symbols": "!@#$%^&*()_+-=[]{};':\",./<>?`~" * 20,
    "nul_and_controls": "a\x00b\x00\x00 c\x00 x\x7f\x7f y \x00" * 3,
    "noncharacters_and_tags": "\ufeff\ufffe\uffff \U0010ffff\U000e0001\U000e0041 end",
}


def _cases():
    return {**CORPUS, **EXTRA}


def test_python_tokenizer_uses_cpp():
    assert get_tokenizer().backend == "cpp"
    assert _C.build_info()["tokenizer"] and _C.build_info()["pcre2_version"].startswith("PCRE2 ")


@pytest.mark.parametrize("name", list(_cases()))
def test_encode_equals_tiktoken(cpp, ref, meta_tok, name):
    s = _cases()[name]
    assert cpp.encode(s) == ref.encode(s) == meta_tok.encode(s, bos=False, eos=False)
    assert cpp.encode(s, "all") == ref.encode(s, allowed_special="all")
    some = {"<|eot|>", "<|image|>"}
    assert cpp.encode(s, some) == ref.encode(s, allowed_special=some)


def test_special_tokens_as_text(cpp, ref):
    plain = cpp.encode(SPECIAL_TEXT)
    assert not any(cpp.is_special(i) for i in plain)
    allowed = cpp.encode(SPECIAL_TEXT, "all")
    assert [i for i in allowed if cpp.is_special(i)] == [200008, 200000, 200005, 200006, 200090, 201149]
    assert cpp.special_token_id("<|eot|>") == 200008 == cpp.eot_id
    assert list(_C.special_token_names()) == sorted(ref.special_tokens, key=ref.special_tokens.get)


def _every_code_point() -> list[int]:
    """Code points assigned in Python's Unicode tables, which must be PCRE2's version (else skip)."""
    if unicodedata.unidata_version != _C._pcre2_unicode_version:
        pytest.skip(f"Python's Unicode {unicodedata.unidata_version} is not PCRE2's {_C._pcre2_unicode_version}")
    return [c for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]


@pytest.mark.slow
@pytest.mark.parametrize("context", ["a{c}b", " {c}{c} ", "{c}'s", "1{c}{c}2\n"])
def test_every_assigned_code_point(cpp, ref, context):
    # Code points assigned after PCRE2's Unicode version (14.0 for 10.42) have no properties there
    # and can split differently from tiktoken's newer tables (tokenizer.h says so); all others match.
    cps = _every_code_point()
    for i in range(0, len(cps), 8192):
        s = "|".join(context.replace("{c}", chr(c)) for c in cps[i : i + 8192])
        if cpp.encode(s) != ref.encode(s):
            bad = [hex(c) for c in cps[i : i + 8192] if cpp.encode(context.replace("{c}", chr(c)))
                   != ref.encode(context.replace("{c}", chr(c)))]  # fmt: skip
            raise AssertionError(f"context {context!r}: code points {bad[:20]} split differently")


def test_random_strings(cpp, ref):
    alphabet = list("aAzZsStTdDmMlLrReEvV' ſ\t\n\r\x0b\x0c\x1c\x85\xa0\u3000\u2028\u180e/\\.,!?-_0189٣２é\u0301ǅʰ你😀<|>") + [
        "<|eot|>", "<|image|>", "'s", "'LL", "\r\n", "  ", "👍🏽"]  # fmt: skip
    rng = random.Random(0)
    for _ in range(3000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert cpp.encode(s) == ref.encode(s), repr(s)
        assert cpp.encode(s, "all") == ref.encode(s, allowed_special="all"), repr(s)


def test_encode_from_threads(cpp, ref):
    texts = [CORPUS["nows_30k"], CORPUS["cjk"] * 200, CORPUS["code"] * 300, CORPUS["emoji"] * 100]
    want = [ref.encode(t) for t in texts]
    got: dict[int, list[int]] = {}
    threads = [threading.Thread(target=lambda k=k: got.__setitem__(k, cpp.encode(texts[k % 4]))) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got[k] == want[k % 4] for k in range(8))


# ---- decode --------------------------------------------------------------------------------------


def test_token_bytes_of_every_id(cpp, ref):
    for i in range(cpp.vocab_size):
        assert cpp.token_bytes(i) == ref.token_bytes(i), i


@pytest.mark.parametrize("name", list(_cases()))
def test_decode_round_trip(cpp, ref, name):
    s = _cases()[name]
    ids = cpp.encode(s, "all")
    assert cpp.decode_bytes(ids) == ref.decode_bytes(ids)
    assert cpp.decode(ids) == ref.decode(ids)
    if "surrogate" not in name:  # surrogates are encoded as tiktoken does: pair -> char, lone -> U+FFFD
        assert cpp.decode(ids) == s
    assert cpp.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True)


def _random_byte_ids(ref, rng, n):
    """Ids of single bytes, multi-byte tokens and special tokens: most sequences are not valid UTF-8."""
    byte_ids = [ref._backend._enc.encode_single_token(bytes([b])) for b in range(256)]
    pool = byte_ids + ref.encode(CORPUS["cjk"] + CORPUS["emoji"] + CORPUS["rare"]) + [200000, 200008]
    return [rng.choice(pool) for _ in range(n)]


def test_decode_invalid_utf8_like_python(cpp, ref):
    rng = random.Random(1)
    for _ in range(500):
        ids = _random_byte_ids(ref, rng, rng.randint(1, 12))
        assert cpp.decode(ids) == ref.decode_bytes(ids).decode("utf-8", errors="replace"), ids
        raw = ref.decode_bytes(ids)
        assert _C.utf8_replace_invalid(raw) == raw.decode("utf-8", errors="replace").encode()


def _stream(decoder, ids):
    return [decoder.feed(i) for i in ids], decoder.flush()


def test_incremental_decode_equals_python(cpp, ref):
    rng = random.Random(2)
    cases = [cpp.encode(CORPUS["rare"] + CORPUS["cjk"] + CORPUS["emoji"])]
    cases += [_random_byte_ids(ref, rng, rng.randint(1, 30)) for _ in range(300)]
    for ids in cases:
        for skip in (False, True):
            got = _stream(_C.IncrementalDecoder(cpp, skip), ids)
            assert got == _stream(IncrementalDecoder(ref, skip_special_tokens=skip), ids), ids
            assert "".join(got[0]) + got[1] == ref.decode(ids, skip_special_tokens=skip)


def test_incremental_decode_every_byte_pair(cpp, ref):
    # Where each replacement comes out matters too (CPython holds a trailing ED A0..BF, for one).
    byte_ids = [ref._backend._enc.encode_single_token(bytes([b])) for b in range(256)]
    for a in range(0x80, 0x100):
        for b in range(0x80, 0x100):
            for c in (0x41, 0x80, 0xBF):
                ids = [byte_ids[a], byte_ids[b], byte_ids[c]]
                got = _stream(_C.IncrementalDecoder(cpp), ids)
                assert got == _stream(IncrementalDecoder(ref), ids), (hex(a), hex(b), hex(c))
                assert _stream(_C.IncrementalDecoder(cpp), ids[:2]) == _stream(IncrementalDecoder(ref), ids[:2])


# ---- chat ----------------------------------------------------------------------------------------

CHATS = {**HF_CHATS, "ipython_str_escapes": [{"role": "ipython", "content": 'line "1"\n\ttab \\ \x01 é'}]}


@pytest.mark.parametrize("gen", [True, False])
@pytest.mark.parametrize("name", list(CHATS))
def test_chat_equals_chat_py(cpp, ref, name, gen):
    msgs = CHATS[name]
    want = chat.encode_chat(ref, msgs, gen)  # chat.py on tiktoken
    assert cpp.chat(msgs, gen, expand_images=False) == want
    assert _C.render_chat(msgs, gen) == chat.render_chat(msgs, gen)


@pytest.mark.parametrize("name", list(TEXT_CHATS))
def test_chat_equals_meta_chat_format(cpp, meta_tok, meta_chat_format, name):
    assert cpp.chat(TEXT_CHATS[name]) == _meta_ids(meta_chat_format, meta_tok, TEXT_CHATS[name])


@pytest.mark.parametrize("tiles", [[(1, 1), (1, 1)], [(2, 2), (1, 3)], [(3, 1), (1, 1)]])
def test_chat_expands_images(cpp, ref, tiles):
    msgs = [{"role": "system", "content": "Look."},
            {"role": "user", "content": [{"type": "image", "tiles": tiles[0]}, {"type": "text", "text": "and"},
                                         {"type": "image", "tiles": tiles[1]}, {"type": "text", "text": "?"}]}]  # fmt: skip
    placeholders = chat.encode_chat(ref, msgs)
    assert cpp.chat(msgs, expand_images=False) == placeholders
    assert cpp.chat(msgs) == chat.expand_image_tokens(placeholders, tiles, 144)
    assert cpp.chat(msgs, patches_per_tile=4) == chat.expand_image_tokens(placeholders, tiles, 4)
    assert _C.expand_image_tokens(placeholders, tiles, 4) == chat.expand_image_tokens(placeholders, tiles, 4)
    assert _C.num_patches_per_tile() == chat.num_patches_per_tile() == 144


@pytest.mark.parametrize("messages,match", ERRORS)
def test_chat_errors_as_chat_py(cpp, messages, match):
    with pytest.raises(ValueError, match=match):
        cpp.chat(messages)
    with pytest.raises(ValueError, match=match):
        _C.render_chat(messages)


def test_chat_image_errors(cpp):
    with pytest.raises(ValueError, match=r"messages\[0\]\.content\[0\]: an image's tile grid must be at least 1x1"):
        cpp.chat([{"role": "user", "content": [{"type": "image", "tiles": (0, 2)}]}])
    with pytest.raises(ValueError, match="patches_per_tile must be a positive int"):
        cpp.chat([{"role": "user", "content": "x"}], patches_per_tile=0)


# ---- errors --------------------------------------------------------------------------------------


def _lines(n: int) -> list[str]:
    return bundled_tokenizer_path().read_text().splitlines()[:n]


BAD_FILES = {
    "empty": ("", r"expected 200000 dense BPE ranks .*got 0 ranks"),
    "truncated": ("\n".join(_lines(1000)) + "\n", r"expected 200000 dense BPE ranks .*got 1000 ranks up to 999"),
    "three_fields": ("IQ== 0 extra\n", r":1: expected 'base64 rank'"),
    "bad_base64": ("IQ== 0\n!!!! 1\n", r":2: invalid base64 token '!!!!'"),
    "bad_rank": ("IQ== zero\n", r":1: invalid rank 'zero'"),
    "rank_too_big": ("IQ== 200000\n", r":1: rank 200000 is not below 200000"),
    "repeated_rank": ("IQ== 0\nIg== 0\n", r":2: rank 0 repeats line 1"),
    "binary": ("\x00\xff\xfe garbage\n", r":1: "),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_tokenizer_file(tmp_path, name):
    text, match = BAD_FILES[name]
    path = tmp_path / "tokenizer.model"
    path.write_bytes(text.encode("latin-1") if name == "binary" else text.encode())
    with pytest.raises(ValueError, match=match) as e:
        _C.Tokenizer(str(path))
    assert str(path) in str(e.value)
    with pytest.raises(ValueError, match=match):
        Tokenizer.from_checkpoint(tmp_path)  # the Python tokenizer raises the C++ error


def test_repeated_bytes_and_missing_byte(tmp_path):
    lines = _lines(200_000)
    dup = lines.copy()
    dup[5] = lines[4].split()[0] + " 5"  # rank 5 gets rank 4's bytes
    (tmp_path / "dup.model").write_text("\n".join(dup))
    with pytest.raises(ValueError, match=r":6: the bytes of rank 5 repeat line 5"):
        _C.Tokenizer(str(tmp_path / "dup.model"))
    missing = lines.copy()
    rank_a = _rank_of_byte(lines, 0x41)
    missing[rank_a] = base64.b64encode(b"\xff\xfe not a token \x00").decode() + f" {rank_a}"  # "A" is gone
    (tmp_path / "nobyte.model").write_text("\n".join(missing))
    with pytest.raises(ValueError, match=r"byte 0x41 is not a token"):
        _C.Tokenizer(str(tmp_path / "nobyte.model"))


def _rank_of_byte(lines: list[str], b: int) -> int:
    return next(k for k, line in enumerate(lines) if base64.b64decode(line.split()[0]) == bytes([b]))


def test_missing_file_and_folders(tmp_path):
    with pytest.raises(ValueError, match=r"tokenizer file .*nope\.model cannot be read"):
        _C.Tokenizer(str(tmp_path / "nope.model"))
    with pytest.raises(ValueError, match="cannot be read"):
        _C.Tokenizer(str(tmp_path))  # a folder
    with pytest.raises(ValueError, match="does not exist"):
        _C.Tokenizer.from_checkpoint(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="has no tokenizer.model"):
        _C.Tokenizer.from_checkpoint(str(tmp_path))
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match="tokenizer.json but no tokenizer.model"):
        _C.Tokenizer.from_checkpoint(str(tmp_path))


def test_bad_arguments(cpp):
    for bad in (-1, 202048):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            cpp.token_bytes(bad)
        with pytest.raises(ValueError, match="outside the vocabulary"):
            cpp.decode([1, bad])
        with pytest.raises(ValueError, match="outside the vocabulary"):
            _C.IncrementalDecoder(cpp).feed(bad)
    with pytest.raises(ValueError, match="not valid UTF-8 at byte 2"):
        cpp.encode(b"ab\xff")
    with pytest.raises(TypeError, match="text must be str or bytes"):
        cpp.encode(5)
    with pytest.raises(ValueError, match="allowed_special must be"):
        cpp.encode("x", "some")
    with pytest.raises(ValueError, match="unknown special tokens: \\['<\\|nope\\|>'\\]"):
        cpp.encode("x", {"<|nope|>"})
    with pytest.raises(ValueError, match=re.escape("unknown special token '<|nope|>'")):
        cpp.special_token_id("<|nope|>")
