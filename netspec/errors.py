"""Located errors: every mistake in a spec points at a file, line and column."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import NamedTuple

# Messages quote what the user wrote, which may be a 100,000-character name or list:
# what is shown is bounded so that an error stays readable (under 1,000 characters).
MAX_WORD = 80  # characters of one name or value (a run without spaces)
MAX_MESSAGE = 400
MAX_HINT = 300
MAX_NOTES = 2  # of at most MAX_NOTE characters each
MAX_NOTE = 80
_LONG_WORD = re.compile(rf"\S{{{MAX_WORD + 1},}}")
# a message is one line, printable on any stream: control characters and lone
# surrogates (which no UTF-8 stream can write) are shown escaped, as repr() does
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one printable line, with each over-long word, then the whole, cut in
    the middle (``...``), keeping both ends: the start says what is wrong, the end often
    what was found."""
    text = _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)
    if len(text) > MAX_WORD:
        text = _LONG_WORD.sub(lambda m: _elide(m.group(), MAX_WORD), text)
    return _elide(text, limit)


def _elide(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = (limit - 3) * 2 // 3
    return text[:head] + "..." + text[len(text) - (limit - 3 - head) :]


class Location(NamedTuple):
    """A place in a spec file; line and column are 1-based."""

    path: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.path
        return f"{self.path}:{self.line}:{self.col}"


class SpecError(Exception):
    """A mistake in a spec (or in how it is used): located, explained, never a traceback.

    The CLI prints it as ``path:line:col: error: message``, then ``note:`` lines (the
    block instances a layer belongs to) and an optional ``hint:`` line, and exits with
    code 2.
    """

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        *,
        hint: str | None = None,
        layer: str | None = None,
        notes: list[str] | None = None,
    ) -> None:
        message = shorten(message)
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = shorten(hint, MAX_HINT) if hint else hint
        self.layer = layer
        #: context lines, such as the block instance a layer belongs to
        self.notes = notes or []

    def format(self) -> str:
        where = str(self.location) if self.location else "netspec"
        text = f"{where}: error: {self.message}"
        notes = [shorten(n, MAX_NOTE) for n in self.notes[:MAX_NOTES]]  # notes are added after __init__
        if len(self.notes) > MAX_NOTES:
            notes.append(f"... and {len(self.notes) - MAX_NOTES} more")
        for note in notes:
            text += f"\n  note: {note}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def __str__(self) -> str:
        return self.format()


class OpError(Exception):
    """Raised by an op's rules (shape, count) with a message only.

    The pass that called the rule knows the node and turns this into a SpecError with
    the layer's name and location. ``inputs`` are the indices of the inputs at fault;
    the pass names those layers and their shapes.
    """

    def __init__(self, message: str, *inputs: int) -> None:
        super().__init__(message)
        self.message = message
        self.inputs = inputs


def name_list(names: Iterable[str], limit: int = 12) -> str:
    """``a, b, c`` for a hint, the first ``limit`` of many names and how many more."""
    items = list(names)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest known word, or None."""
    if len(word) > MAX_WORD:  # no typo makes a name that long, and difflib is quadratic in it
        return None
    choices = list(choices)
    exact = [c for c in choices if c.lower() == word.lower()]  # 'reLU': the case alone differs
    close = exact or difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1, cutoff=0.6)
    if not close:
        return None
    found = exact[0] if exact else next(c for c in choices if c.lower() == close[0])
    return f"did you mean '{found}'?"
