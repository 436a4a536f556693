"""Tokenizer parity: our ids equal Meta's reference tokenizer (and the offline HF one) on a varied corpus.

Also: the LLAMA4.md §4.1 special ids and §6 example, decode round-trips, the streaming decoder,
Meta's cutting of long inputs, and `Tokenizer.from_checkpoint`'s choice of files.
"""
from __future__ import annotations

import hashlib
import importlib.util
import random
import shutil
import string

import pytest
from tokenizer_refs import hf_raw, hf_tokenizer_json, meta_tok, tok  # noqa: F401  (fixtures)

from llama4_native.tokenizer import IncrementalDecoder, Tokenizer, bundled_tokenizer_path, get_tokenizer
from llama4_native.tokenizer_backends import MAX_NO_WHITESPACES_CHARS, split_long_runs


def _random_text(n: int, alphabet: str, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


SPECIAL_TEXT = (
    "Say <|eot|> then <|begin_of_text|><|header_start|>user<|header_end|>\n\n<|image|><|reserved_special_token_5|>"
)
CORPUS = {
    "ascii": "The quick brown fox jumps over the lazy dog. It costs $3.50 (tax incl.) -- really?!",
    "accents": "Café naïve façade, résumé; Ångström, São Paulo, Øresund, Zürich, İstanbul, ﬁne ligature.",
    "cjk": "你好，世界！これは日本語のテキストです。한국어 문장도 있습니다。龘靐齉",
    "emoji": "Family 👨‍👩‍👧‍👦, flags 🇫🇷🇯🇵, skin 👍🏽, heart on fire ❤️‍🔥, keycap 1️⃣ end",
    "rare": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀𓀁𓀂 ꙮ 𝕏 \u200b zero\u200dwidth \ufeffbom",
    "code": "def f(x):\n\tif x:\n\t\treturn [i**2 for i in range(10)]  # sq\n    else:\n        pass\n}\n",
    "whitespace": "a" + " " * 50 + "b\n\n\n\n" + "\t" * 20 + "c   \n  \n \u00a0\u3000 d" + " " * 7,
    "crlf": "line1\r\nline2\rline3\n\r\nline4\r\r\n\r",
    "digits": "1234567890 3.14159 1,000,000 007 0x1F ٣٤٥ ２０２４ 12345678901234567890",
    "contractions": "I'm you're he's we've they'll I'd can't DON'T It'S O'Neil 'tis y'all",
    "special_text": SPECIAL_TEXT,
    "empty": "",
    "single_space": " ",
    "nows_30k": _random_text(30_000, string.ascii_letters + string.digits + string.punctuation + "éü你😀", 0),
    "x_30k": "x" * 30_000,
    "spaces_26k": " " * 26_000 + "x",
    "words_410k": ("Hello world, " * 31_600)[:410_000],  # the 400k cut falls inside "Hello"
}
# Meta cuts inputs > 400k chars and runs > 25k chars before BPE; HF does not, so these differ there.
META_CUT = {"x_30k", "spaces_26k", "words_410k"}


def test_bundled_file_is_llama4_tokenizer():
    data = bundled_tokenizer_path().read_bytes()
    assert len(data) == 3_622_230
    assert hashlib.sha256(data).hexdigest() == "d0bdbaf59b0762c8c807617e2d8ea51420eb1b1de266df2495be755c8e0ed6ed"


@pytest.mark.parametrize("name", CORPUS)
def test_encode_matches_meta(tok, meta_tok, name):
    s = CORPUS[name]
    assert tok.encode(s) == meta_tok.encode(s, bos=False, eos=False)
    assert tok.encode(s, allowed_special="all") == meta_tok.encode(s, bos=False, eos=False, allowed_special="all")
    some = {"<|eot|>", "<|image|>"}
    assert tok.encode(s, allowed_special=some) == meta_tok.encode(s, bos=False, eos=False, allowed_special=some)


def test_special_text_is_plain_unless_allowed(tok):
    plain = tok.encode(SPECIAL_TEXT)
    assert not any(tok.is_special(i) for i in plain)
    assert tok.encode(SPECIAL_TEXT, allowed_special="none") == plain
    allowed = tok.encode(SPECIAL_TEXT, allowed_special="all")
    assert [i for i in allowed if tok.is_special(i)] == [200008, 200000, 200005, 200006, 200090, 201149]
    only_eot = tok.encode(SPECIAL_TEXT, allowed_special={"<|eot|>"})
    assert [i for i in only_eot if tok.is_special(i)] == [200008]


def test_spec_example(tok):
    ids = tok.encode("Hello world! 12345 is a number.\n\nNew line")
    assert ids == [19873, 3817, 13, 220, 7235, 2127, 373, 262, 1416, 1574, 4191, 1978]
    assert tok.encode("user") == [1556] and tok.encode("assistant") == [140680] and tok.encode("\n\n") == [368]


SPEC_IDS = {
    "<|begin_of_text|>": 200000, "<|end_of_text|>": 200001, "<|fim_prefix|>": 200002, "<|fim_suffix|>": 200004,
    "<|header_start|>": 200005, "<|header_end|>": 200006, "<|eom|>": 200007, "<|eot|>": 200008, "<|step|>": 200009,
    "<|text_post_train_reserved_special_token_0|>": 200010, "<|text_post_train_reserved_special_token_5|>": 200015,
    "<|python_start|>": 200016, "<|python_end|>": 200017, "<|finetune_right_pad|>": 200018,
    "<|text_post_train_reserved_special_token_8|>": 200019, "<|text_post_train_reserved_special_token_68|>": 200079,
    "<|image_start|>": 200080, "<|image_end|>": 200081, "<|vision_reserved_special_token_1|>": 200083,
    "<|tile_x_separator|>": 200084, "<|tile_y_separator|>": 200085, "<|vision_reserved_special_token_5|>": 200089,
    "<|image|>": 200090, "<|vision_reserved_special_token_6|>": 200091, "<|patch|>": 200092,
    "<|vision_reserved_special_token_7|>": 200093, "<|vision_reserved_special_token_1047|>": 201133,
    "<|reasoning_reserved_special_token_0|>": 201134, "<|reasoning_thinking_start|>": 201142,
    "<|reasoning_thinking_end|>": 201143, "<|reserved_special_token_0|>": 201144,
    "<|reserved_special_token_903|>": 202047,
}  # fmt: skip


def test_special_token_ids(tok, meta_tok):
    for name, want in SPEC_IDS.items():
        assert tok.special_token_id(name) == want, name
        assert tok.encode(name, allowed_special="all") == [want]
    assert tok.special_tokens == meta_tok.special_tokens  # all 2,048 names and ids
    with pytest.raises(ValueError, match="unknown special token"):
        tok.special_token_id("<|nope|>")


def test_properties(tok):
    assert (tok.bos_id, tok.eos_id, tok.eom_id, tok.eot_id, tok.pad_id) == (200000, 200001, 200007, 200008, 200018)
    assert tok.stop_ids == {200001, 200007, 200008}
    assert tok.vocab_size == 202048
    assert get_tokenizer() is get_tokenizer()


@pytest.mark.parametrize("name", CORPUS)
def test_decode_round_trip(tok, meta_tok, name):
    s = CORPUS[name]
    ids = tok.encode(s)
    assert tok.decode(ids) == s == meta_tok.decode(ids)
    assert tok.decode_bytes(ids) == s.encode("utf-8")
    assert tok.decode(tok.encode(s, allowed_special="all")) == s


def test_decode_skip_special_tokens(tok):
    ids = [tok.bos_id, *tok.encode("hi there"), tok.eot_id, *tok.encode(SPECIAL_TEXT, allowed_special="all")]
    assert tok.decode(ids).startswith("<|begin_of_text|>hi there<|eot|>")
    stripped = SPECIAL_TEXT
    for name in ("<|eot|>", "<|begin_of_text|>", "<|header_start|>", "<|header_end|>", "<|image|>",
                 "<|reserved_special_token_5|>"):  # fmt: skip
        stripped = stripped.replace(name, "")
    assert tok.decode(ids, skip_special_tokens=True) == "hi there" + stripped


def test_token_bytes_and_errors(tok):
    assert tok.token_bytes(19873) == b"Hello"
    assert tok.token_bytes(200008) == b"<|eot|>"
    for bad in (-1, 202048):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            tok.token_bytes(bad)
        with pytest.raises(ValueError, match="outside the vocabulary"):
            tok.decode([1, bad])
    with pytest.raises(TypeError):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match="allowed_special"):
        tok.encode("x", allowed_special="some")
    with pytest.raises(ValueError, match="unknown special tokens"):
        tok.encode("x", allowed_special={"<|nope|>"})


def _stream(tok, ids, **kw):
    dec = IncrementalDecoder(tok, **kw)
    pieces = [dec.feed(i) for i in ids]
    return pieces, dec.flush()


@pytest.mark.parametrize("name", CORPUS)
def test_incremental_decoder_matches_decode(tok, name):
    ids = tok.encode(CORPUS[name], allowed_special="all")
    pieces, tail = _stream(tok, ids)
    assert not any("\ufffd" in p for p in pieces)
    assert tail == ""
    assert "".join(pieces) == tok.decode(ids) == CORPUS[name]


def test_incremental_decoder_holds_split_characters(tok):
    text = CORPUS["rare"] + CORPUS["cjk"] + CORPUS["emoji"]
    ids = tok.encode(text)
    partial = [k for k, i in enumerate(ids) if not _is_utf8(tok.token_bytes(i))]
    assert partial, "the corpus should contain characters split across tokens"
    pieces, tail = _stream(tok, ids)
    assert any(pieces[k] == "" for k in partial), "a token ending mid-character must wait for the next"
    emitted = ""
    for piece in pieces:  # every prefix of the stream is a prefix of the text: nothing is replaced
        emitted += piece
        assert text.startswith(emitted)
    assert emitted == text and tail == ""


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_incremental_decoder_invalid_utf8(tok, meta_tok):
    byte_id = {b: meta_tok.model.encode_single_token(bytes([b])) for b in (0x80, 0xE4, 0xBD, 0x41)}
    ids = [byte_id[0x41], byte_id[0x80], byte_id[0xE4], byte_id[0x41], byte_id[0xE4], byte_id[0xBD]]
    pieces, tail = _stream(tok, ids)
    assert "".join(pieces) + tail == tok.decode(ids) == meta_tok.decode(ids) == "A\ufffd\ufffdA\ufffd"
    assert tail == "\ufffd"  # the incomplete character at the end comes out only at flush


def test_incremental_decoder_skip_special(tok):
    ids = [tok.bos_id, *tok.encode("naïve 你好"), tok.eot_id]
    pieces, _ = _stream(tok, ids, skip_special_tokens=True)
    assert "".join(pieces) == "naïve 你好" == tok.decode(ids, skip_special_tokens=True)


def _meta_split(meta_tok, s, n):
    return list(meta_tok._split_whitespaces_or_nonwhitespaces(s, n))


@pytest.mark.parametrize("n", [MAX_NO_WHITESPACES_CHARS, 5])
def test_split_long_runs_matches_meta(meta_tok, n):
    cases = ["", " ", "abc", "x" * n, "x" * (n + 1), " " * (2 * n + 1) + "y" * (n + 3) + " z",
             "a" * (3 * n) + "\u3000" * (n + 1) + "b"]  # fmt: skip
    for s in cases:
        assert list(split_long_runs(s, n)) == _meta_split(meta_tok, s, n)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in CORPUS if n not in META_CUT])
def test_hf_fast_tokenizer_agrees(tok, hf_raw, name):
    s = CORPUS[name]
    assert hf_raw.encode(s, add_special_tokens=False).ids == tok.encode(s, allowed_special="all")
    assert hf_raw.decode(tok.encode(s), skip_special_tokens=False) == s


@pytest.mark.slow
def test_hf_differs_from_meta_only_where_meta_cuts(tok, hf_raw):
    # HF encodes long inputs whole; Meta (and the bundled tokenizer) cut them first. The text survives.
    differs = {n for n in META_CUT if hf_raw.encode(CORPUS[n], add_special_tokens=False).ids != tok.encode(CORPUS[n])}
    assert differs == META_CUT


@pytest.mark.slow
def test_from_checkpoint_tokenizer_json(tmp_path, tok, hf_tokenizer_json):
    shutil.copy(hf_tokenizer_json, tmp_path / "tokenizer.json")
    ck = Tokenizer.from_checkpoint(tmp_path)
    assert ck.source.endswith("tokenizer.json") and ck.vocab_size == 202048
    for name in CORPUS:
        if name not in META_CUT:
            s = CORPUS[name]
            assert ck.encode(s) == tok.encode(s), name
            assert ck.encode(s, allowed_special={"<|eot|>"}) == tok.encode(s, allowed_special={"<|eot|>"}), name
            assert ck.decode(ck.encode(s, allowed_special="all")) == s
    msgs = [{"role": "user", "content": "Hi <|eot|>"}]
    assert ck.apply_chat_template(msgs) == tok.apply_chat_template(msgs)


def test_from_checkpoint_tokenizer_model(tmp_path, tok):
    shutil.copy(bundled_tokenizer_path(), tmp_path / "tokenizer.model")
    ck = Tokenizer.from_checkpoint(tmp_path)
    assert ck.source == str(tmp_path / "tokenizer.model")
    assert ck.encode(CORPUS["emoji"]) == tok.encode(CORPUS["emoji"])


def test_from_checkpoint_fallbacks(tmp_path, monkeypatch):
    with pytest.warns(UserWarning, match="no tokenizer.json or tokenizer.model"):
        assert Tokenizer.from_checkpoint(tmp_path) is get_tokenizer()
    (tmp_path / "tokenizer.json").write_text("{}")  # never parsed: `tokenizers` is made to look absent
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tokenizers" else real_find_spec(name, *a))  # fmt: skip
    with pytest.warns(UserWarning, match="needs the `tokenizers` package"):
        assert Tokenizer.from_checkpoint(tmp_path) is get_tokenizer()
    with pytest.raises(FileNotFoundError):
        Tokenizer.from_checkpoint(tmp_path / "missing")


def test_rejects_other_tokenizer_files(tmp_path):
    (tmp_path / "tokenizer.model").write_text("YQ== 0\nYg== 1\n")
    with pytest.raises(ValueError, match="expected 200000 dense BPE ranks"):
        Tokenizer.from_checkpoint(tmp_path)


def test_tiktoken_fallback_without_cpp_tokenizer(monkeypatch, tok):
    # A build without PCRE2 (LLAMA4_TOKENIZER=AUTO, no libpcre2-8) tokenizes with tiktoken, same ids.
    from llama4_native import tokenizer_backends

    monkeypatch.setattr(tokenizer_backends, "cpp_tokenizer_built", lambda: False)
    path = bundled_tokenizer_path()
    fallback = Tokenizer(tokenizer_backends.tiktoken_model_backend(path), source=str(path))
    assert fallback.backend == "tiktoken"
    for name in ("emoji", "code", "special_text"):
        assert fallback.encode(CORPUS[name]) == tok.encode(CORPUS[name])
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi <|eot|>"}]}]
    assert fallback.apply_chat_template(msgs) == tok.apply_chat_template(msgs)
