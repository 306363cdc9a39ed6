"""A small, safe evaluator for attribute expressions such as ``$width * 2`` or ``$c // 4``.

No ``eval``: the text is tokenized and parsed by recursive descent over a fixed grammar::

    cond  := or ("if" or "else" cond)?
    or    := and ("or" and)*
    and   := not ("and" not)*
    not   := "not" not | cmp
    cmp   := expr (("==" | "!=" | "<" | "<=" | ">" | ">=") expr)?
    expr  := term (("+" | "-") term)*
    term  := unary (("*" | "/" | "//" | "%") unary)*
    unary := ("-" | "+") unary | power
    power := atom ("**" unary)?
    atom  := NUMBER | STRING | "true" | "false" | "$" NAME | FUNC "(" expr ("," expr)* ")" | "(" cond ")"
           | SHAPE "(" REF ")"

with FUNC one of min, max, ceil, floor, round and make_divisible, and SHAPE one of
channels, height and width: the size of that axis of the layer (or block input) REF
names, which the caller looks up (``shapes``); REF is a layer reference as written in
``inputs`` (``x``, ``stage2.0``). Strings (quoted) only compare. Results stay within
64-bit integers.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

LIMIT = 2**63
MAX_LENGTH = 1000
MAX_NESTING = 50  # parentheses, signs and powers: the parser recurses once per level

_TOKEN = re.compile(
    r"\s*(?:(\d+\.\d*|\.\d+|\d+(?:[eE][+-]?\d+)?)|\$([A-Za-z_]\w*)|([A-Za-z_]\w*)|(\*\*|//|[=!<>]=|[-+*/%(),<>])"
    r"|('[^']*'|\"[^\"]*\"))"
)

#: ``channels(x)``: one token, since its argument is a layer reference, not an expression
_SHAPE = re.compile(r"\s*(channels|height|width)\s*\(\s*([A-Za-z0-9_][A-Za-z0-9_.]*)\s*\)")
_SHAPE_CALL = re.compile(r"\b(?:channels|height|width)\s*\(")
#: the axis of a per-sample shape each shape function reads, and the ranks it needs
SHAPE_AXES = {"channels": 0, "height": 1, "width": 2}

#: what a shape function is given: the reference, and it returns the per-sample shape
ShapeLookup = Callable[[str], tuple[int, ...]]

_FUNCS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "ceil": lambda x: math.ceil(x),
    "floor": lambda x: math.floor(x),
    "round": lambda x: round(x),
    "make_divisible": lambda v, divisor=8, least=None, limit=0.9: _make_divisible(v, divisor, least, limit),
}
_KEYWORDS = {"true": True, "false": False}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
    "**": lambda a, b: a**b,
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _make_divisible(v: float, divisor: int = 8, least: int | None = None, limit: float = 0.9) -> int:
    """``v`` rounded to the nearest multiple of ``divisor`` (at least ``least``, by
    default ``divisor``), and one ``divisor`` up if that fell below ``limit * v``: the
    channel rounding rule of MobileNet and EfficientNet width multipliers (``limit``
    0 turns the correction off)."""
    if not isinstance(divisor, int) or divisor < 1:
        raise ValueError("make_divisible: the divisor must be a positive integer")
    rounded = max(least if least is not None else divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < limit * v else rounded


class ExprError(Exception):
    """An error in an expression; ``offset`` is the character index it refers to."""

    def __init__(self, message: str, offset: int = 0, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint


def is_expression(value: Any) -> bool:
    """Whether a value is an expression: a string with a variable or a shape function."""
    return isinstance(value, str) and ("$" in value or ("(" in value and _SHAPE_CALL.search(value) is not None))


def shape_refs(text: str) -> list[str]:
    """The layer references an expression's shape functions read, in order."""
    return [m.group(2) for m in _SHAPE.finditer(text)]


def variables_in(text: str) -> list[str]:
    """Names of the variables an expression refers to, in order."""
    return re.findall(r"\$([A-Za-z_]\w*)", text)


def evaluate(text: str, variables: Mapping[str, Any], shapes: ShapeLookup | None = None) -> Any:
    """Evaluate ``text``; a bare ``$name`` returns the variable's value unchanged.
    ``shapes`` gives the shape of a layer reference for ``channels(x)`` and the like
    (None where no layer is in sight: in 'params', in input shapes)."""
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters")
    return _Parser(text, variables, shapes).parse()


@functools.lru_cache(maxsize=4096)
def _tokenize(text: str) -> tuple[tuple[str, str, int], ...]:
    """(kind, value, offset) tokens; cached, as a spec repeats the same few expressions."""
    tokens = []
    pos = 0
    stripped_end = len(text.rstrip())
    while pos < stripped_end:
        shape = _SHAPE.match(text, pos)
        if shape is not None:
            tokens.append(("shape", f"{shape.group(1)} {shape.group(2)}", shape.start(1)))
            pos = shape.end()
            continue
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            bad = len(text) - len(text[pos:].lstrip())
            raise ExprError(f"unexpected character '{text[bad]}' in expression '{text}'", bad)
        start = m.start(m.lastindex or 0) - (m.lastindex == 2)  # a variable starts at its '$'
        kind = ("num", "var", "name", "op", "str")[(m.lastindex or 1) - 1]
        tokens.append((kind, m.group(m.lastindex or 0), start))
        pos = m.end()
    return tuple(tokens)


class _Parser:
    def __init__(self, text: str, variables: Mapping[str, Any], shapes: ShapeLookup | None = None) -> None:
        self.text = text
        self.vars = variables
        self.shapes = shapes
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    # helpers
    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            hint = None
            if self.text.count("(") > self.text.count(")"):
                hint = (
                    "inside a {...} mapping, YAML cuts a value at a comma: quote the expression, e.g. 'max(1, $c // 4)'"
                )
            raise ExprError(f"expression '{self.text}' ends too early", len(self.text), hint)
        if value is not None and tok[1] != value:
            raise ExprError(f"expected '{value}' in expression '{self.text}'", tok[2])
        self.i += 1
        return tok

    def parse(self) -> Any:
        if not self.tokens:
            raise ExprError("empty expression")
        if len(self.tokens) == 1 and self.tokens[0][0] == "var":
            return self.lookup(self.tokens[0])
        value = self.cond()
        tok = self.peek()
        if tok is not None:
            raise ExprError(f"unexpected '{tok[1]}' in expression '{self.text}'", tok[2])
        return value

    def lookup(self, tok: tuple[str, str, int]) -> Any:
        name = tok[1]
        if name not in self.vars:
            from netspec.errors import did_you_mean, name_list

            hint = did_you_mean(name, self.vars)
            known = name_list(sorted(self.vars)) or "none"
            raise ExprError(f"undefined variable '${name}'", tok[2], hint or f"variables defined in 'params': {known}")
        return self.vars[name]

    def shape_of(self, tok: tuple[str, str, int]) -> int:
        func, ref = tok[1].split(" ")
        call = f"{func}({ref})"
        if self.shapes is None:
            raise ExprError(
                f"{call} reads a layer's shape, and there is no layer here",
                tok[2],
                "shape functions work in a layer's attributes, 'when' and 'repeat', and in block parameters",
            )
        try:
            shape = self.shapes(ref)
        except ExprError as e:
            raise ExprError(f"{call}: {e.message}", tok[2], e.hint) from None
        axis = SHAPE_AXES[func]
        if len(shape) != 3 and axis > 0:
            raise ExprError(f"{call}: '{ref}' is {list(shape)}, which has no {func} (that needs [C, H, W])", tok[2])
        return shape[axis]

    def cond(self) -> Any:
        value = self.or_()
        tok = self.peek()
        if tok is not None and tok[1] == "if":
            self.take()
            test = self.truth(self.or_(), tok)
            self.take("else")
            other = self.nested(self.cond)
            return value if test else other
        return value

    def or_(self) -> Any:
        value = self.and_()
        while (tok := self.peek()) is not None and tok[1] == "or":
            self.take()
            rhs = self.and_()
            value = self.truth(value, tok) or self.truth(rhs, tok)
        return value

    def and_(self) -> Any:
        value = self.not_()
        while (tok := self.peek()) is not None and tok[1] == "and":
            self.take()
            rhs = self.not_()
            value = self.truth(value, tok) and self.truth(rhs, tok)
        return value

    def not_(self) -> Any:
        tok = self.peek()
        if tok is not None and tok[1] == "not":
            self.take()
            return not self.truth(self.nested(self.not_), tok)
        return self.compare()

    def compare(self) -> Any:
        value = self.expr()
        tok = self.peek()
        if tok is not None and tok[1] in _COMPARE:
            self.take()
            rhs = self.expr()
            ordered = (int, float, str)  # a list or a mapping (a variable's value) has no order
            if tok[1] not in ("==", "!=") and not (isinstance(value, ordered) and isinstance(rhs, ordered)):
                raise ExprError(f"'{tok[1]}' cannot compare {value!r} with {rhs!r}", tok[2])
            if isinstance(value, str) != isinstance(rhs, str) and tok[1] not in ("==", "!="):
                raise ExprError(f"'{tok[1]}' cannot compare {value!r} with {rhs!r}", tok[2])
            if isinstance(value, str) and isinstance(rhs, str) and tok[1] not in ("==", "!="):
                raise ExprError(f"'{tok[1]}' compares numbers, not strings", tok[2])
            return _COMPARE[tok[1]](value, rhs)
        return value

    def truth(self, value: Any, tok: tuple[str, str, int]) -> bool:
        if not isinstance(value, bool):
            raise ExprError(f"'{tok[1]}' needs true or false, got {value!r}", tok[2], "compare, e.g. '$stride == 1'")
        return value

    def nested(self, rule: Callable[[], Any]) -> Any:
        """Apply a rule that recurses, within the nesting limit."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            tok = self.peek()
            raise ExprError(f"expression nested more than {MAX_NESTING} levels deep", tok[2] if tok else 0)
        value = rule()
        self.depth -= 1
        return value

    def expr(self) -> Any:
        value = self.term()
        while (tok := self.peek()) is not None and tok[1] in ("+", "-"):
            self.take()
            rhs = self.term()
            value = self.arith(tok, value, rhs)
        return value

    def term(self) -> Any:
        value = self.unary()
        while (tok := self.peek()) is not None and tok[1] in ("*", "/", "//", "%"):
            self.take()
            rhs = self.unary()
            value = self.arith(tok, value, rhs)
        return value

    def unary(self) -> Any:
        tok = self.peek()
        # every nested operand passes here; bound the depth before Python's stack overflows
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExprError(f"expression nested more than {MAX_NESTING} levels deep", tok[2] if tok else 0)
        if tok is not None and tok[1] in ("-", "+"):
            self.take()
            value = self.number(self.unary(), tok)
            value = -value if tok[1] == "-" else value
        else:
            value = self.power()
        self.depth -= 1
        return value

    def power(self) -> Any:
        base = self.atom()
        tok = self.peek()
        if tok is not None and tok[1] == "**":
            self.take()
            exp = self.unary()
            return self.arith(tok, base, exp)
        return base

    def atom(self) -> Any:
        tok = self.take()
        kind, value, offset = tok
        if kind == "num":  # '1e999' is an infinity, '9' * 999 beyond 64 bits: bounded as results are
            return self.check(float(value) if any(c in value for c in ".eE") else int(value), tok)
        if kind == "var":
            return self.lookup(tok)
        if kind == "shape":
            return self.shape_of(tok)
        if kind == "str":
            return value[1:-1]
        if value in _KEYWORDS:
            return _KEYWORDS[value]
        if value == "(":
            inner = self.cond()  # each level of parentheses passes 'unary', which bounds the depth
            self.take(")")
            return inner
        if kind == "name":
            if value not in _FUNCS or value in ("if", "else", "and", "or", "not"):
                raise ExprError(
                    f"unknown name '{value}' in expression '{self.text}'",
                    offset,
                    f"variables are written with '$' (${value}); functions: {', '.join(_FUNCS)}",
                )
            self.take("(")
            args = [self.number(self.expr(), tok)]
            while (nxt := self.peek()) is not None and nxt[1] == ",":
                self.take()
                args.append(self.number(self.expr(), tok))
            self.take(")")
            try:
                result = _FUNCS[value](*args)
            except TypeError:
                raise ExprError(f"wrong number of arguments to {value}()", offset) from None
            except ValueError as e:
                raise ExprError(str(e), offset) from None
            except OverflowError:
                raise ExprError(f"{value}() is out of range in expression '{self.text}'", offset) from None
            return self.check(result, tok)
        raise ExprError(f"unexpected '{value}' in expression '{self.text}'", offset)

    def number(self, value: Any, tok: tuple[str, str, int]) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExprError(f"'{tok[1]}' needs numbers, got {value!r}", tok[2])
        return value

    def check(self, value: Any, tok: tuple[str, str, int]) -> Any:
        if isinstance(value, complex):  # a negative number to a fractional power
            raise ExprError(f"expression '{self.text}' is not a real number", tok[2])
        if isinstance(value, float) and not math.isfinite(value):
            raise ExprError(f"expression '{self.text}' is not a finite number", tok[2])
        if abs(value) >= LIMIT:
            raise ExprError(f"expression '{self.text}' is too large (beyond 64-bit integers)", tok[2])
        return value

    def arith(self, tok: tuple[str, str, int], a: Any, b: Any) -> Any:
        op = tok[1]
        a, b = self.number(a, tok), self.number(b, tok)
        if op in ("/", "//", "%") and b == 0:
            raise ExprError(f"division by zero in expression '{self.text}'", tok[2])
        if op == "**" and (abs(b) > 64 or (b < 0 and a == 0)):
            raise ExprError(f"exponent out of range in expression '{self.text}'", tok[2])
        try:
            result = _ARITH[op](a, b)
        except OverflowError:  # float arithmetic that does not fit, e.g. 1e-320 ** -2
            raise ExprError(f"expression '{self.text}' is too large (beyond the range of floats)", tok[2]) from None
        return self.check(result, tok)
