"""Tokens -> text for one sample as they arrive: never splits a UTF-8 character, and cuts at the
first stop string. Text that could still be the start of a stop string is held back, so what has
been handed out never needs taking back. Joined, the pieces (with flush()) equal
`full_text()` = decode(tokens) cut before the first stop string."""
from __future__ import annotations

from .tokenizer import IncrementalDecoder


class TextStream:
    def __init__(self, tokenizer, stop_strings=None):
        self._decoder = IncrementalDecoder(tokenizer)
        self._stops = list(stop_strings or ())
        self._hold = max((len(s) for s in self._stops), default=1) - 1  # chars that may begin a stop
        self._held = ""
        self._pieces: list[str] = []
        self.stopped = False  # a stop string appeared: nothing more comes out

    def feed(self, token_id: int) -> str:
        if self.stopped:
            return ""
        text = self._held + self._decoder.feed(token_id)
        cuts = [c for c in (text.find(s) for s in self._stops) if c >= 0]
        if cuts:
            self.stopped = True
            piece, self._held = text[:min(cuts)], ""
        else:
            split = max(len(text) - self._hold, 0)
            piece, self._held = text[:split], text[split:]
        self._pieces.append(piece)
        return piece

    def flush(self) -> str:
        """The end of the sample: what was held back, and any incomplete character as U+FFFD."""
        if self.stopped:
            return ""
        tail = self._held + self._decoder.flush()
        self._held = ""
        self._pieces.append(tail)
        return tail

    def full_text(self) -> str:
        return "".join(self._pieces)
