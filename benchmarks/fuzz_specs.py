"""Mutation fuzzer over the zoo specs: every mutant gives a result or one located
``SpecError``, quickly and in a short message; never a traceback.

Each mutant is a zoo spec (``specs/*.yaml``) with one to three mutations: lines deleted,
duplicated or swapped, indentation broken, values replaced with wrong types, huge and
negative numbers, misspelt keys and ops, broken references and cycles, bad expressions,
YAML tags, anchors and aliases, control and non-ASCII characters, lone surrogates, very
long names, deep nesting, truncation, and bad ``--set`` values. ``--count`` mutants go
through the Python API (``netspec.analyze_text`` with params, then ``format_analysis``),
``--cli-count`` more through the CLI (``cli.main(["check" | "summary", FILE, "--set",
...])`` in the worker process, stdout and stderr captured: the same argument parsing,
``--set`` reading and error printing as ``python -m netspec``).

A mutant is made from (seed, index) alone, so a run is reproducible and one case can be
rebuilt and shown: ``--only INDEX``. Cases run in worker processes (a crash or a hang
loses one case, not the run), each under a CPU-time alarm (``--timeout``).

Counted per mutant: accepted; located errors; unlocated errors (a SpecError without a
line, or a CLI error line not in ``path:line:col: error:`` form; ``--set`` errors are
located at the option, ``--set:1:COL``); tracebacks (any other exception, or CLI exit
code 1); over the timeout; messages of 1,000 characters or more (the whole printed
error, hint and notes included). Targets: 0 of each but the first two; the exit status
is 1 when one is missed.

    python benchmarks/fuzz_specs.py [--seed 0] [--count 10000] [--cli-count 300] [--jobs 1]
    python benchmarks/fuzz_specs.py --seed 0 --only 1234
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import random
import re
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import netspec  # noqa: E402
from netspec import SpecError  # noqa: E402
from netspec.spec.load import parse_override  # noqa: E402

MAX_MESSAGE = 1000
OUTCOMES = ("accepted", "located", "unlocated", "traceback", "slow", "long")
LABELS = {
    "accepted": "accepted",
    "located": "located errors",
    "unlocated": "unlocated errors",
    "traceback": "tracebacks",
    "slow": "over the timeout",
    "long": f"messages >= {MAX_MESSAGE:,} chars",
}
TARGET_ZERO = ("unlocated", "traceback", "slow", "long")
ERROR_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): error: ")


# ---------------------------------------------------------------- the mutants


@dataclass
class Spec:
    name: str
    text: str
    params: list[str]  # declared variables (for --set and expressions)
    ops: list[str]


def _zoo() -> list[Spec]:
    specs = []
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        text = path.read_text()
        model = netspec.load_text(text, path.name).model
        ops = sorted({m.group(1) for m in re.finditer(r"\bop: (\w+)", text)})
        specs.append(Spec(path.stem, text, list(model.params), ops))
    return specs


ZOO: list[Spec] = []


@dataclass
class Mutant:
    index: int
    base: str
    text: str
    sets: list[str] = field(default_factory=list)  # --set NAME=VALUE items
    params: dict[str, Any] = field(default_factory=dict)  # values given from Python (API cases)
    steps: list[str] = field(default_factory=list)
    cli: bool = False

    def describe(self) -> str:
        extra = f" --set {self.sets!r}" if self.sets else ""
        extra += f" params {_brief(repr(self.params))}" if self.params else ""
        return f"#{self.index} {'cli' if self.cli else 'api'} {self.base}: {'; '.join(self.steps)}{extra}"


def _brief(text: str, n: int = 120) -> str:
    return text if len(text) <= n else text[: n - 20] + f"...({len(text):,} chars)"


HUGE = "9" * 5000
NUMBERS = [
    "-1", "0", "-0", "-3", "2147483648", "99999999999999999999", HUGE, "-" + HUGE, "1e400", "-1e400", "1e-400",
    ".inf", "-.inf", ".nan", "0x7fffffffffffffff", "0b102", "0o8", "1_000", "3.0", "2.5", "1e5", "123456789012",
    "1:30", "0.0000001", "4294967297", "-2147483649", "1e308", "017",
]  # fmt: skip
VALUES = [
    *NUMBERS, "[1, 2]", "[]", "{}", "{a: 1}", "[[1, 2], [3]]", "true", "false", "null", "~", "'str'", '"3"', "yes",
    "same", "valid", "depthwise", "[3, 3, 3]", "[0, 0]", "[-1, 2]", "[1e400, 1]", f"[{HUGE}]", "x", "''", "'$'",
    "2001-01-01", "!!binary aGk=", "*nope", "&a 3", "'${'", "[1, [2, [3, [4]]]]",
]  # fmt: skip
EXPRESSIONS = [
    "$P +", "$nope * 2", "($P", "$P // 0", "$P % 0", "2 ** 999 + $P", "$P ** 100", "1e-320 ** -2 + $P",
    "(0.0 - 1) ** 0.5 < $P", "max() + $P", "min($P)", "$P if $P", "$P if true else", "'s' < $P", "ceil(1e400) + $P",
    "$P * 1e308 * 10", "make_divisible($P, 0)", "make_divisible($P, 2.5)", "make_divisible($P, -8)",
    "round($P / 3.0)", "floor($P) + 0.5", "not $P", "$P and true", "$P == 'a'", "$P @ 2", "$P $P", "$$P", "$",
    "$P + " + "9" * 900, "$P" + " + 1" * 300, "(" * 60 + "$P" + ")" * 60, "-" * 80 + "$P", "$P ** -2 ** 64",
    "$P ** 0.5 ** -1", "(-8) ** (1/3) + $P", "$P / 3", "$P * 2.0", "'$P'", "$P == 1 == 2", "ceil($P) if $P > 1 else 1.5",
    "$P < 1e999", "round(1e300) + $P", "10.0 ** 64 % 1e-300 + $P", "$P +\u00e9", "$P\x00",
]  # fmt: skip
TAGS = [
    "!!float", "!!int", "!!bool", "!!null", "!!str", "!!map", "!!seq", "!!python/object:os.system",
    "!!python/name:os.system", "!foo", "!!binary", "!!timestamp", "!!merge", "!", "!<tag:yaml.org,2002:int>", "!!set",
]  # fmt: skip
CHARS = [
    "\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\xa0", "\u2028", "\u2029", "\ufeff",
    "\ufffe", "\uffff", "\u00e9", "\u540d", "\U0001f600", "\u202e", "\t", "\r", "\r\n", "\\", "'", '"', "#", "&",
    "*", "%", "@", "`", "|", ">", "{", "}", "[", "]", ",", ":",
]  # fmt: skip
SURROGATES = ["\udfff", "\ud800", "\udc80", "\udbff\udbff"]
KEYS = [
    "repeat", "when", "otherwise", "overrides", "inputs", "trainable", "groups", "padding", "dilation", "weight",
    "bias", "name", "op", "ceil_mode", "flatten", "out", "kernel", "stride", "p", "eps", "momentum", "output",
    "<<", "params", "layers", "blocks", "variants", "3", "true", "~", "1.5", "''", "'a b'", "$x", "-", "?",
]  # fmt: skip


def _lines(m: Mutant) -> list[str]:
    return m.text.split("\n")


def _pick_line(rng: random.Random, lines: list[str]) -> int:
    return rng.randrange(len(lines))


def _matches(pattern: str, text: str) -> list[re.Match[str]]:
    return list(re.finditer(pattern, text))


def _splice(m: Mutant, match: re.Match[str], group: int, new: str) -> None:
    m.text = m.text[: match.start(group)] + new + m.text[match.end(group) :]


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


VALUE_AT = r"(?:\b[A-Za-z_]\w*): ([^,{}\[\]\n#]+|\[[^\]\n]{0,200}\])"  # a mapping value: a scalar or a flow list


def m_delete(rng: random.Random, m: Mutant) -> str:
    lines = _lines(m)
    i = _pick_line(rng, lines)
    n = rng.choice((1, 1, 2, 3))
    del lines[i : i + n]
    m.text = "\n".join(lines)
    return f"delete {n} line(s) at {i + 1}"


def m_duplicate(rng: random.Random, m: Mutant) -> str:
    lines = _lines(m)
    i = _pick_line(rng, lines)
    lines.insert(i, lines[i])
    m.text = "\n".join(lines)
    return f"duplicate line {i + 1}"


def m_swap(rng: random.Random, m: Mutant) -> str:
    lines = _lines(m)
    i, j = _pick_line(rng, lines), _pick_line(rng, lines)
    lines[i], lines[j] = lines[j], lines[i]
    m.text = "\n".join(lines)
    return f"swap lines {i + 1} and {j + 1}"


def m_indent(rng: random.Random, m: Mutant) -> str:
    lines = _lines(m)
    i = _pick_line(rng, lines)
    body = lines[i].lstrip(" ")
    indent = len(lines[i]) - len(body)
    new = rng.choice([max(0, indent - rng.randint(1, 4)), indent + rng.randint(1, 4), -1])
    lines[i] = ("\t" if new < 0 else " " * new) + body
    m.text = "\n".join(lines)
    return f"indent line {i + 1} to {'a tab' if new < 0 else new}"


def _replace_value(rng: random.Random, m: Mutant, pool: list[str], what: str) -> str:
    found = _matches(VALUE_AT, m.text)
    if not found:
        return m_delete(rng, m)
    match = rng.choice(found)
    new = rng.choice(pool).replace("$P", "$" + rng.choice(ZOO_BY_NAME[m.base].params or ["x"]))
    _splice(m, match, 1, new)
    return f"{what} {_brief(new, 40)!r} on line {_line_of(m.text, match.start())}"


def m_wrong_type(rng: random.Random, m: Mutant) -> str:
    return _replace_value(rng, m, VALUES, "value")


def m_number(rng: random.Random, m: Mutant) -> str:
    found = _matches(r"(?<![\w$.])(\d+(?:\.\d+)?(?:e-?\d+)?)(?![\w.])", m.text)
    if not found:
        return m_wrong_type(rng, m)
    match = rng.choice(found)
    new = rng.choice(NUMBERS)
    _splice(m, match, 1, new)
    return f"number {_brief(new, 30)!r} on line {_line_of(m.text, match.start())}"


def _misspell(rng: random.Random, word: str) -> str:
    if not word:
        return "x"
    i = rng.randrange(len(word))
    kind = rng.randrange(5)
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2 and len(word) > 1:
        j = min(i + 1, len(word) - 1)
        return word[:i] + word[j] + word[i] + word[j + 1 :]
    if kind == 3:
        return word.upper()
    return word[:i] + rng.choice("abcxyz_0-. ") + word[i + 1 :]


def m_misspell_key(rng: random.Random, m: Mutant) -> str:
    found = _matches(r"(?:^|[{,\s])([A-Za-z_]\w*):", m.text)
    match = rng.choice(found)
    new = _misspell(rng, match.group(1))
    _splice(m, match, 1, new)
    return f"key {match.group(1)!r} -> {new!r} on line {_line_of(m.text, match.start())}"


def m_misspell_op(rng: random.Random, m: Mutant) -> str:
    found = _matches(r"\bop: ([\w.]+)", m.text)
    match = rng.choice(found)
    spec = ZOO_BY_NAME[m.base]
    new = rng.choice([_misspell(rng, match.group(1)), "input", "x", rng.choice(spec.ops), "'conv2d'", "[relu]", "3"])
    _splice(m, match, 1, new)
    return f"op {match.group(1)!r} -> {new!r} on line {_line_of(m.text, match.start())}"


def _names(text: str) -> list[re.Match[str]]:
    return _matches(r"\bname: (\w+)", text)


def m_break_ref(rng: random.Random, m: Mutant) -> str:
    found = _matches(r"\binputs: (\[[^\]\n]*\]|[\w.]+)", m.text) + _matches(
        r"\boutput(?:s)?: (\[[^\]\n]*\]|[\w.]+)", m.text
    )
    if not found:
        return m_cycle(rng, m)
    match = rng.choice(found)
    names = [n.group(1) for n in _names(m.text)] or ["x"]
    new = rng.choice(
        [
            "[nope]",
            "[]",
            _misspell(rng, match.group(1).strip("[]")),
            f"[{rng.choice(names)}]",
            f"[{rng.choice(names)}, {rng.choice(names)}]",
            f"{rng.choice(names)}.0",
            f"{rng.choice(names)}.99.x",
            "[x, x, x]",
            "1",
            "[layer2.0.conv1]",
        ]
    )
    _splice(m, match, 1, new)
    return f"reference {match.group(1)!r} -> {new!r} on line {_line_of(m.text, match.start())}"


def m_cycle(rng: random.Random, m: Mutant) -> str:
    names = _names(m.text)
    if len(names) < 2:
        return m_delete(rng, m)
    i = rng.randrange(len(names) - 1)
    j = rng.randrange(i, len(names))  # j == i: a layer that takes itself
    a, b = names[i], names[j]
    _splice(m, a, 1, f"{a.group(1)}, inputs: [{b.group(1)}]")
    return f"cycle: '{a.group(1)}' takes '{b.group(1)}' (line {_line_of(m.text, a.start())})"


def m_scale(rng: random.Random, m: Mutant) -> str:
    """A large network: many copies of one layer, and sometimes a cycle before them (a
    cycle report once took time quadratic in the layers after the cycle)."""
    # top-level layers only: inside a block, the copies multiply by its instances, and a
    # network of millions of layers is slow (linearly) without being a bug
    found = _matches(r"(?m)^  - \{op: (?:relu|batchnorm|dropout|flatten)\b", m.text)
    if not found:
        return m_cycle(rng, m)
    match = rng.choice(found)
    n = rng.choice((1000, 5000, 20_000))
    m.text = m.text[: match.end()] + f", repeat: {n}" + m.text[match.end() :]
    step = f"repeat {n:,} on line {_line_of(m.text, match.start())}"
    return step + ("; " + m_cycle(rng, m) if rng.random() < 0.5 else "")


def m_expression(rng: random.Random, m: Mutant) -> str:
    return _replace_value(rng, m, [f"'{e}'" if "," in e or ":" in e else e for e in EXPRESSIONS], "expression")


def m_tag(rng: random.Random, m: Mutant) -> str:
    found = _matches(VALUE_AT, m.text)
    match = rng.choice(found)
    tag = rng.choice(TAGS)
    value = rng.choice([match.group(1), rng.choice(VALUES), "conv22", "abc", "maybe", "0b102"])
    _splice(m, match, 1, f"{tag} {value}")
    return f"tag {tag} {_brief(value, 30)!r} on line {_line_of(m.text, match.start())}"


def m_alias(rng: random.Random, m: Mutant) -> str:
    kind = rng.randrange(6)
    if kind == 0:  # an anchored mapping merged into a layer
        m.text = "x-base: &base {kernel: 3, padding: 1, out: 8}\n" + m.text
        found = _matches(r"\{op: ", m.text)
        match = rng.choice(found)
        m.text = (
            m.text[: match.end()]
            + rng.choice(["conv2d, <<: *base, ", "relu, <<: *base, ", "<<: [*base, 3], "])
            + m.text[match.end() :]
        )
        return f"merge *base at line {_line_of(m.text, match.start())}"
    if kind == 1:  # an alias where a scalar goes
        m.text = "x-list: &lst [1, 2, 3]\nx-map: &map {a: 1}\n" + m.text
        return _replace_value(rng, m, ["*lst", "*map", "*nope", "*lst*", "&x *lst"], "alias")
    if kind == 2:  # a bomb (refused by the value limit)
        depth = rng.randint(3, 9)
        lines = ["x-a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"x-a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, depth)]
        m.text = "\n".join(lines) + "\n" + m.text
        return f"alias bomb of {depth} levels"
    if kind == 3:  # an anchor on a key, a repeated anchor
        m.text = m.text.replace("layers:", rng.choice(["&k layers:", "layers: &l", "*k: 1\nlayers:"]), 1)
        return "anchor on a key"
    if kind == 4:  # an anchored layer list reused
        m.text = m.text.replace("layers:", "layers: &all", 1) + "\nx-again: *all\n"
        return "alias of the layers"
    m.text = m.text.replace("inputs:", "inputs: &inp", 1) + "\nx-self: {<<: *inp, <<: *inp}\n"
    return "merge key twice"


def _insert(rng: random.Random, m: Mutant, new: str) -> int:
    pos = rng.randrange(len(m.text) + 1)
    m.text = m.text[:pos] + new + m.text[pos:]
    return _line_of(m.text, pos)


def m_char(rng: random.Random, m: Mutant) -> str:
    char = rng.choice(CHARS)
    return f"character {char!r} at line {_insert(rng, m, char)}"


def m_surrogate(rng: random.Random, m: Mutant) -> str:
    char = rng.choice(SURROGATES)
    return f"surrogate {char!r} at line {_insert(rng, m, char)}"


def m_long_name(rng: random.Random, m: Mutant) -> str:
    n = rng.choice((201, 1000, 5000, 100_000))
    long = rng.choice("nab_") * n
    kind = rng.randrange(4)
    if kind == 0 and _names(m.text):
        match = rng.choice(_names(m.text))
        _splice(m, match, 1, long)
        return f"name of {n:,} characters on line {_line_of(m.text, match.start())}"
    if kind == 1:
        match = rng.choice(_matches(r"\bop: (\w+)", m.text))
        _splice(m, match, 1, long)
        return f"op of {n:,} characters on line {_line_of(m.text, match.start())}"
    if kind == 2:
        match = rng.choice(_matches(r"(?:^|[{,\s])([A-Za-z_]\w*):", m.text))
        _splice(m, match, 1, long)
        return f"key of {n:,} characters on line {_line_of(m.text, match.start())}"
    return _replace_value(
        rng, m, [f"${long}", long, f"'{long} {long}'", "[" + ", ".join(["1"] * (n // 3)) + "]"], "long value"
    )


def m_nesting(rng: random.Random, m: Mutant) -> str:
    k = rng.choice((30, 101, 1000, 100_000))
    opener = rng.choice(["[", "{a: ", "- ", "[{a: "])
    closer = {"[": "]", "{a: ": "}", "- ": "", "[{a: ": "}]"}[opener]
    deep = opener * k + "1" + closer * k * rng.randint(0, 1)
    return _replace_value(rng, m, [deep], f"nesting {k} x {opener!r}")


def m_truncate(rng: random.Random, m: Mutant) -> str:
    pos = rng.randrange(len(m.text))
    m.text = m.text[:pos]
    return f"truncate at line {_line_of(m.text, pos)}"


def m_add_key(rng: random.Random, m: Mutant) -> str:
    found = _matches(r"\{op: [\w.]+", m.text)
    match = rng.choice(found)
    key, value = rng.choice(KEYS), rng.choice(VALUES + ["$" + p for p in ZOO_BY_NAME[m.base].params] + ["100000"])
    m.text = m.text[: match.end()] + f", {key}: {value}" + m.text[match.end() :]
    return f"add {key}: {_brief(value, 30)!r} on line {_line_of(m.text, match.start())}"


def m_document(rng: random.Random, m: Mutant) -> str:
    edit = rng.choice(["---\n", "--- !!map\n", "%YAML 1.1\n---\n", "%TAG ! tag:x,2000:\n---\n", "...\n", "- \n"])
    if rng.random() < 0.5:
        m.text = edit + m.text
    else:
        m.text += "\n" + edit + rng.choice(["x: 1", "", "[relu]", "--- x"])
    return f"document marker {edit.strip()!r}"


SET_VALUES = [
    "!!bool maybe", "!!int abc", "!!float conv22", HUGE, "-" + HUGE, "[1", "{a: 1}", "[1, 2]", "1e400", ".nan",
    "\udfff", "-1", "0", "abc", "1.5", "true", "~", "'quoted", "a\nb", "a: b", "$nope", "$P + 1", "$P", "b9",
    "&a 1", "*a", "%", "'", "1 # c", "!foo x", "1\x00", "\t1", "make_divisible($P, 0)", "(0.0 - 1) ** 0.5 < 1",
]  # fmt: skip
SET_ITEMS = ["==", "=", "", "x", "=3", " =1", "nope=1", "a b=1", "=" * 50, "\udfff=1", "x" * 5000 + "=1"]
PY_VALUES: list[Any] = [10**400, -(10**30), float("inf"), float("nan"), 1e300, [1, 2], None, {"a": 1}, (1,), -1, 0, True, "$nope", "x" * 10_000]  # fmt: skip


def m_set(rng: random.Random, m: Mutant) -> str:
    params = ZOO_BY_NAME[m.base].params or ["x"]
    name = rng.choice([*params, "nope", "variant", _misspell(rng, rng.choice(params))])
    if not m.cli and rng.random() < 0.3:  # a value given from Python, not parsed from text
        value = rng.choice(PY_VALUES)
        m.params[name] = value
        return f"param {name}={_brief(repr(value), 30)}"
    item = rng.choice(SET_ITEMS) if rng.random() < 0.2 else f"{name}={rng.choice(SET_VALUES)}"
    item = item.replace("$P", "$" + rng.choice(params))
    m.sets.append(item)
    return f"--set {_brief(item, 40)!r}"


MUTATIONS = [
    m_delete, m_duplicate, m_swap, m_indent, m_wrong_type, m_number, m_misspell_key, m_misspell_op, m_break_ref,
    m_cycle, m_expression, m_tag, m_alias, m_char, m_surrogate, m_long_name, m_nesting, m_truncate, m_add_key,
    m_document, m_set, m_scale,
]  # fmt: skip
ZOO_BY_NAME: dict[str, Spec] = {}


def make_mutant(seed: int, index: int, count: int) -> Mutant:
    """Mutant ``index`` of a run: its own random stream, so it can be rebuilt alone."""
    rng = random.Random(f"{seed}/{index}")
    spec = rng.choice(ZOO)
    m = Mutant(index, spec.name, spec.text, cli=index >= count)
    for _ in range(rng.choice((1, 1, 2, 3))):
        mutate = rng.choice(MUTATIONS)
        try:
            m.steps.append(mutate(rng, m))
        except (IndexError, ValueError):  # nothing left for it to change (an empty text, no 'name:')
            m.steps.append(m_set(rng, m))
    return m


# ---------------------------------------------------------------- running a case


class _Timeout(BaseException):  # BaseException: no 'except Exception' in netspec may swallow it
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout


@dataclass
class Result:
    index: int
    cli: bool
    outcome: str
    seconds: float
    detail: str = ""


def _api(m: Mutant) -> tuple[str, str]:
    params = dict(m.params)
    try:
        params.update(parse_override(item) for item in m.sets)
        a = netspec.analyze_text(m.text, params or None, path="mutant.yaml")
        netspec.format_analysis(a, "table")
    except SpecError as e:
        text = e.format()
        located = e.location is not None and e.location.line > 0
        if len(text) >= MAX_MESSAGE:
            return "long", text
        return ("located" if located else "unlocated"), text
    return "accepted", ""


def _cli(m: Mutant, workdir: str) -> tuple[str, str]:
    from netspec import cli

    path = os.path.join(workdir, "mutant.yaml")
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:  # a surrogate: bytes that are not UTF-8
        f.write(m.text)
    command = ["check", path] if m.index % 2 else ["summary", path, "--format", "json"]
    for item in m.sets:
        command += ["--set", item]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(command)
        except SystemExit as e:  # argparse
            code = e.code if isinstance(e.code, int) else 2
    stderr = err.getvalue()
    if code not in (0, 2):
        return "traceback", f"exit code {code}: {stderr}"
    if code == 0:
        return "accepted", ""
    errors = [line for line in stderr.splitlines() if not line.startswith(("  hint: ", "  note: "))]
    if len(stderr) >= MAX_MESSAGE:
        return "long", stderr
    for line in errors:
        found = ERROR_LINE.match(line)
        if not found or int(found["line"]) < 1:
            return "unlocated", stderr
    return ("located" if errors else "unlocated"), stderr


def run_case(m: Mutant, timeout: float, workdir: str) -> Result:
    """One mutant under a CPU-time alarm (not wall time: the machine may be busy)."""
    signal.signal(signal.SIGPROF, _alarm)
    start = time.process_time()
    try:
        try:
            signal.setitimer(signal.ITIMER_PROF, timeout)
            outcome, detail = _cli(m, workdir) if m.cli else _api(m)
        finally:  # an alarm due before this line is caught below, none can come after it
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _Timeout:
        outcome, detail = "slow", f"stopped after {timeout} s of CPU time"
    except Exception:
        outcome, detail = "traceback", traceback.format_exc(limit=-6)
    return Result(m.index, m.cli, outcome, time.process_time() - start, detail)


def _worker(conn: Connection, seed: int, count: int, timeout: float) -> None:
    _load_zoo()
    with tempfile.TemporaryDirectory() as workdir:
        while (index := conn.recv()) is not None:
            conn.send(run_case(make_mutant(seed, index, count), timeout, workdir))


def _load_zoo() -> None:
    if not ZOO:
        ZOO.extend(_zoo())
        ZOO_BY_NAME.update((s.name, s) for s in ZOO)


# ---------------------------------------------------------------- the run


@dataclass
class Report:
    counts: dict[bool, Counter[str]]  # by cli
    bad: list[tuple[Result, Mutant]]  # cases that miss a target
    slowest: Result | None
    seconds: float

    def missed(self) -> list[str]:
        return [o for o in TARGET_ZERO if self.counts[False][o] or self.counts[True][o]]


def fuzz(seed: int = 0, count: int = 10_000, cli_count: int = 300, timeout: float = 2.0, jobs: int = 1) -> Report:
    """Run ``count`` API and ``cli_count`` CLI mutants; ``jobs`` 0 runs them in this process."""
    _load_zoo()
    start = time.perf_counter()
    results: list[Result] = []
    indices = list(range(count + cli_count))
    if jobs == 0:
        with tempfile.TemporaryDirectory() as workdir:
            results = [run_case(make_mutant(seed, i, count), timeout, workdir) for i in indices]
    else:
        results = _in_workers(seed, count, timeout, jobs, indices)
    counts: dict[bool, Counter[str]] = {False: Counter(), True: Counter()}
    bad = []
    for r in results:
        counts[r.cli][r.outcome] += 1
        if r.outcome in TARGET_ZERO:
            bad.append((r, make_mutant(seed, r.index, count)))
    slowest = max(results, key=lambda r: r.seconds, default=None)
    return Report(counts, bad, slowest, time.perf_counter() - start)


def _in_workers(seed: int, count: int, timeout: float, jobs: int, indices: list[int]) -> list[Result]:
    """Cases in ``jobs`` worker processes; a worker that dies or hangs (past the alarm, in
    C code) loses its case, recorded as a traceback or slow, and is replaced."""
    ctx: Any = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    todo = list(reversed(indices))
    results: list[Result] = []
    workers: dict[Connection, tuple[Any, int | None, float]] = {}  # conn -> (process, index, started)

    def start() -> None:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, seed, count, timeout), daemon=True)
        proc.start()
        workers[parent] = (proc, None, 0.0)

    def feed(conn: Connection) -> None:
        proc = workers[conn][0]
        if todo:
            index = todo.pop()
            conn.send(index)
            workers[conn] = (proc, index, time.monotonic())
        else:
            conn.send(None)
            proc.join()
            del workers[conn]

    for _ in range(max(1, jobs)):
        start()
    for conn in list(workers):
        feed(conn)
    while workers:
        for conn in cast(list[Connection], wait(list(workers), timeout=1.0)):
            try:
                results.append(conn.recv())
            except EOFError:  # the worker died on its case
                proc, index, _ = workers.pop(conn)
                assert index is not None
                results.append(Result(index, index >= count, "traceback", 0.0, f"worker died (exit {proc.exitcode})"))
                start()
                feed(list(workers)[-1])
                continue
            feed(conn)
        for conn, (proc, index, started) in list(workers.items()):
            if index is not None and time.monotonic() - started > 10 * timeout + 30:
                proc.kill()
                proc.join()
                del workers[conn]
                results.append(Result(index, index >= count, "slow", time.monotonic() - started, "hung (killed)"))
                start()
                feed(list(workers)[-1])
    return sorted(results, key=lambda r: r.index)


def print_report(report: Report, seed: int, count: int, cli_count: int, timeout: float, show: int) -> None:
    print(f"fuzz_specs: seed {seed}, {count:,} mutants through the Python API, {cli_count:,} through the CLI")
    print(f"  ({len(ZOO)} zoo specs, 1-3 mutations each; timeout {timeout} s of CPU per case)")
    print(f"  {'':24s}{'api':>8s}{'cli':>8s}")
    for o in OUTCOMES:
        target = "   (target 0)" if o in TARGET_ZERO else ""
        print(f"  {LABELS[o]:24s}{report.counts[False][o]:8,}{report.counts[True][o]:8,}{target}")
    if report.slowest is not None:
        print(f"  slowest case: #{report.slowest.index}, {report.slowest.seconds:.2f} s CPU")
    print(f"  total time: {report.seconds:.0f} s")
    for r, m in report.bad[:show]:
        print(f"\n--- {r.outcome}: {m.describe()}\n{r.detail.rstrip()}")
    missed = report.missed()
    print("\nall targets met" if not missed else f"\ntargets missed: {', '.join(LABELS[o] for o in missed)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=10_000, help="mutants through the Python API")
    p.add_argument("--cli-count", type=int, default=300, help="mutants through the CLI")
    p.add_argument("--timeout", type=float, default=2.0, help="CPU seconds per case")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (0: run in this process)")
    p.add_argument("--show", type=int, default=5, help="cases shown of those that miss a target")
    p.add_argument("--only", type=int, metavar="INDEX", help="build, show and run one mutant")
    args = p.parse_args(argv)
    if args.only is not None:
        _load_zoo()
        m = make_mutant(args.seed, args.only, args.count)
        print(m.describe())
        print(_brief(m.text, 4000))
        with tempfile.TemporaryDirectory() as workdir:
            r = run_case(m, args.timeout, workdir)
        print(f"\n{r.outcome} ({r.seconds:.2f} s): {r.detail}")
        return 0
    report = fuzz(args.seed, args.count, args.cli_count, args.timeout, args.jobs)
    print_report(report, args.seed, args.count, args.cli_count, args.timeout, args.show)
    return 1 if report.missed() else 0


if __name__ == "__main__":
    sys.exit(main())
