"""Located errors: every mistake in a spec points at a file, line and column."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import NamedTuple


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
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint
        self.layer = layer
        #: context lines, such as the block instance a layer belongs to
        self.notes = notes or []

    def format(self) -> str:
        where = str(self.location) if self.location else "netspec"
        text = f"{where}: error: {self.message}"
        for note in self.notes:
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


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest known word, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
