"""The transfer-learning keys of a recipe in their written forms: layer patterns
(``backbone,fc`` or a list), the unfreezing schedule (``"3:layer4,6:layer3,9:all"``
or a mapping) and learning-rate multipliers (``layer4=0.1,fc=1`` or a mapping).
Pure Python, so that ``netspec check`` reads them; the training code applies them
(``netspec.backends.train.transfer``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from netspec.errors import Location, SpecError


def patterns(value: str | Iterable[str]) -> list[str]:
    """Layer patterns from a comma-separated text or a list."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]


_ITEM = re.compile(r"\s*(?P<epoch>[^:,]*?)\s*:\s*(?P<name>[^,]*?)\s*(?:,|$)")


def parse_unfreeze(text: str, option: str = "--unfreeze") -> dict[int, list[str]]:
    """The CLI spelling ``"3:layer4,6:layer3,9:all"`` as ``{3: ["layer4"], ...}``
    (an epoch given twice unfreezes both names); a malformed item is a SpecError
    located at its column in ``option``."""
    schedule: dict[int, list[str]] = {}
    pos = 0
    if not text.strip():
        raise SpecError("expects EPOCH:NAME[,EPOCH:NAME...]", Location(option, 1, 1), hint='e.g. "3:layer4,6:all"')
    while pos < len(text):
        m = _ITEM.match(text, pos)
        where = Location(option, 1, pos + 1)
        if m is None or m.end() == pos:
            raise SpecError(
                f"expects EPOCH:NAME, not {text[pos:].split(',')[0].strip()!r}", where, hint='e.g. "3:layer4,6:all"'
            )
        epoch, name = m.group("epoch"), m.group("name")
        if not epoch.isdigit():
            raise SpecError(
                f"the epoch must be a whole number, not {epoch!r}", Location(option, 1, m.start("epoch") + 1)
            )
        if not name:
            raise SpecError(f"epoch {epoch}: no layer name after ':'", Location(option, 1, m.end("epoch") + 1))
        schedule.setdefault(int(epoch), []).append(name)
        pos = m.end()
    return schedule


def unfreeze_schedule(value: str | Mapping[Any, Any], option: str = "--unfreeze") -> dict[int, list[str]]:
    """The schedule from the CLI string or the recipe's mapping (``{3: layer4, 9: [layer3, fc]}``)."""
    if isinstance(value, str):
        return parse_unfreeze(value, option)
    schedule: dict[int, list[str]] = {}
    for epoch, names in value.items():
        if isinstance(epoch, bool) or not (isinstance(epoch, int) or (isinstance(epoch, str) and epoch.isdigit())):
            raise SpecError(f"unfreeze: the epoch must be a whole number, not {epoch!r}", Location(option))
        schedule.setdefault(int(epoch), []).extend(patterns(names))
    return schedule


def parse_lr_groups(value: str | Mapping[Any, Any], option: str = "--lr-groups") -> dict[str, float]:
    """``"layer4=0.1,fc=1"`` (or a mapping) as ``{"layer4": 0.1, "fc": 1.0}``: a
    learning-rate multiplier (>= 0) per layer prefix."""
    items = (
        [tuple(part.split("=", 1)) if "=" in part else (part, "") for part in value.split(",") if part.strip()]
        if isinstance(value, str)
        else list(value.items())
    )
    groups: dict[str, float] = {}
    for prefix, scale in items:
        name = str(prefix).strip()
        try:
            number = float(scale.strip() if isinstance(scale, str) else scale)
        except (TypeError, ValueError):
            number = -1.0
        if not name or isinstance(scale, bool) or not number >= 0:
            raise SpecError(
                f"lr_groups: expects PREFIX=MULTIPLIER with a multiplier >= 0, not {f'{name}={scale}'!r}",
                Location(option),
                hint='e.g. "layer4=0.1,fc=1"',
            )
        groups[name] = number
    return groups
