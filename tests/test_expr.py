from __future__ import annotations

import re

import pytest

from netspec.spec.expr import ExprError, evaluate

VARS = {"width": 64, "c": 10, "flag": True, "half": 0.5, "table": {"a": 1}, "sizes": [1, 2]}


@pytest.mark.parametrize(
    "text,value",
    [
        ("$width * 2", 128),
        ("$c // 4", 2),
        ("$c / 4", 2.5),
        ("$c % 4", 2),
        ("-$c + 3", -7),
        ("2 ** 3 ** 2", 512),  # right-associative, as in Python
        ("($c + 2) * 3", 36),
        ("max($c, $width // 2, 7)", 32),
        ("min(3, $c)", 3),
        ("ceil($c / 4)", 3),
        ("floor($c / 4)", 2),
        ("round($half * 5)", 2),
        ("$flag", True),  # a bare variable keeps its type
        ("1e3", 1000.0),
        ("$c == 10", True),
        ("$c != 10 or $flag", True),
        ("not $flag and $c > 3", False),
        ("2 if $c >= 10 else 1", 2),
        ("1 if $c < 0 else 2 if $flag else 3", 2),  # 'else' chains to the right
        ("'b3' == 'b3'", True),
        # width-multiplier rounding, checked against published channel counts:
        ("make_divisible(32 * 0.35)", 16),  # MobileNetV2 0.35: stem 16
        ("make_divisible(16 * 1.2)", 24),  # EfficientNet-B3 stage 1: 19.2 would round to 16, < 90%
        ("make_divisible(32 * 1.2)", 40),  # EfficientNet-B3 stem
        ("make_divisible(320 * 1.2)", 384),  # EfficientNet-B3 last stage (head 4 x 384 = 1536)
    ],
)
def test_values(text: str, value: object) -> None:
    assert evaluate(text, VARS) == value
    assert type(evaluate(text, VARS)) is type(value)


@pytest.mark.parametrize(
    "text,message,offset",
    [
        ("$wdth * 2", "undefined variable '$wdth'", 0),
        ("$c / 0", "division by zero", 3),
        ("$c // (2 - 2)", "division by zero", 3),
        ("$c +", "ends too early", 4),
        ("$c @ 2", "unexpected character '@'", 3),
        ("__import__(1)", "unknown name '__import__'", 0),
        ("__import__('os')", "unknown name '__import__'", 0),
        ("$c if $flag 3", "expected 'else'", 12),
        ("1 if 2 else 3", "'if' needs true or false, got 2", 2),
        ("$c < 'a'", "cannot compare", 3),
        ("$table > 1", "'>' cannot compare {'a': 1} with 1", 7),
        ("$c <= $sizes", "'<=' cannot compare 10 with [1, 2]", 3),
        ("ceil(1, 2)", "wrong number of arguments to ceil()", 0),
        ("make_divisible(3, 0)", "divisor must be a positive integer", 0),
        ("not 3", "'not' needs true or false", 0),
        ('"a" <= "b"', "compares numbers, not strings", 4),
        ("$c ** 100", "exponent out of range", 3),
        ("2 ** 62 * 4", "too large", 8),
        ("$flag + 1", "needs numbers", 6),
        ("($c", "ends too early", 3),
        ("($c 2)", "expected ')'", 4),
    ],
)
def test_errors(text: str, message: str, offset: int) -> None:
    with pytest.raises(ExprError, match=re.escape(message)) as e:
        evaluate(text, VARS)
    assert e.value.offset == offset


def test_undefined_variable_suggests_the_closest() -> None:
    with pytest.raises(ExprError) as e:
        evaluate("$widht", VARS)
    assert e.value.hint == "did you mean 'width'?"


# --- shape functions ---------------------------------------------------------------


def test_shape_functions_read_the_axis_the_lookup_gives() -> None:
    from netspec.spec.expr import is_expression

    shapes = {"x": (64, 28, 14), "stage2.0": (24, 7, 7)}
    assert evaluate("channels(x) // 2", {}, shapes.__getitem__) == 32
    assert evaluate("height(x) * width( x )", {}, shapes.__getitem__) == 28 * 14
    assert evaluate("$s == 1 and channels(stage2.0) == $out", {"s": 1, "out": 24}, shapes.__getitem__) is True
    assert is_expression("channels(x) // 2") and not is_expression("same") and not is_expression("channels")


def test_a_shape_function_without_layers_in_sight_is_an_error() -> None:

    with pytest.raises(ExprError, match=r"channels\(x\) reads a layer's shape") as e:
        evaluate("1 + channels(x)", {})
    assert e.value.offset == 4
