"""atheris target: chat message structures in Python (encode_chat with Llama 4's tokenizer, the
path generate(messages) takes for text). Messages of any shape either encode, with control tokens
only where the template writes them (one <|header_start|> per message plus the generation prompt),
or raise ValueError / TypeError naming the message ("messages[2].content[0].text: ...")."""
from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["llama4_native"]):
    from llama4_native.chat import encode_chat
    from llama4_native.tokenizer import get_tokenizer

from structures import messages
from typed_errors import expect_typed, run

TOKENIZER = get_tokenizer()
HEADER = TOKENIZER.special_token_id("<|header_start|>")


def encode(msgs: list, add_generation_prompt: bool) -> None:
    ids = encode_chat(TOKENIZER, msgs, add_generation_prompt=add_generation_prompt)
    headers = sum(1 for t in ids if t == HEADER)
    assert headers == len(msgs) + add_generation_prompt, (headers, msgs)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    add = fdp.ConsumeBool()
    msgs = messages(fdp)
    expect_typed(lambda: encode(msgs, add), "messages")


if __name__ == "__main__":
    run(test_one_input)
