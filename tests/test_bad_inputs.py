"""Regression tests for the classes of bad input the mutation fuzzer found
(benchmarks/fuzz_specs.py): one small case per class, with its exact message and place."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from conftest import at_most_lines
from test_errors import HEAD, assert_at, assert_says, cli_errors, error_of, run_cli, spec

import netspec
from netspec import Graph, Location, Node, SpecError
from netspec.spec import yamlload
from netspec.spec.load import parse_override

NINES = "9" * 5000


def set_error(item: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_override(item)
    return info.value


# --- explicit YAML tags whose value does not fit (PyYAML's constructors raised)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!float conv22", "'kernel': value 'conv22' is not a valid !!float"),
        ("!!int 0b102", "'kernel': value '0b102' is not a valid !!int"),
        ("!!int abc", "'kernel': value 'abc' is not a valid !!int"),
        ("!!bool maybe", "'kernel': value 'maybe' is not a valid !!bool"),
        ("!!null x", "'kernel': value 'x' is not a valid !!null"),
        ("!!int [3]", "YAML tag '!!int' does not fit a list"),
    ],
)
def test_a_tagged_value_that_does_not_fit_its_tag(value: str, message: str) -> None:
    e = error_of(spec(HEAD, "layers:", f"  - {{op: conv2d, out: 4, kernel: {value}}}"))
    assert e.message == message
    assert_at(e, 3, 34)  # at the tag


def test_a_tagged_set_value_that_does_not_fit_its_tag() -> None:
    e = set_error("dropout=!!bool maybe")
    assert e.message == "--set 'dropout=!!bool maybe': value 'maybe' is not a valid !!bool"
    assert e.location == Location("--set", 1, 9)


# --- numbers too large for Python's arithmetic (digit limit, int -> float)


def test_an_integer_past_the_digit_limit_in_yaml() -> None:
    e = error_of(spec(HEAD, "layers:", f"  - {{op: conv2d, out: 4, kernel: {NINES}}}"))
    assert e.message == f"'kernel': integer {'9' * 51}...{'9' * 26} is beyond 64-bit integers"
    assert_at(e, 3, 34)


def test_an_integer_past_the_digit_limit_in_set() -> None:
    e = set_error("nope=" + NINES)
    assert_says(e, "--set 'nope=999", "integer 999", "is beyond 64-bit integers")
    assert e.location == Location("--set", 1, 6)


@pytest.mark.parametrize(
    ("layer", "col", "message"),
    [
        # the fixed weight and bias were converted with float(): OverflowError
        ("{op: conv2d, weight: [[99999999999999999999, 1], [1, 1]]}", 28, "'weight': integer 99999999999999999999"),
        ("{op: conv2d, out: 1, kernel: 1, bias: [1e400]}", 44, "'bias': number 1e400 is not finite"),
        ("{op: batchnorm, eps: .inf}", 26, "'eps': number .inf is not finite"),
    ],
)
def test_numbers_beyond_64_bits_or_floats_are_refused_where_they_are_read(layer: str, col: int, message: str) -> None:
    e = error_of(spec("inputs: {x: [1, 8, 8]}", "layers:", f"  - {layer}"))
    assert_says(e, message)
    assert_at(e, 3, col)


def test_a_huge_value_given_from_python() -> None:
    text = spec("params: {c: 4}", HEAD, "layers:", "  - {op: conv2d, out: 1, kernel: 1, bias: [$c]}")
    e = error_of(text, {"c": 10**400})
    assert e.message == "cannot set 'c': the value is beyond 64-bit integers"
    assert_at(e, 1, 13)


# --- expressions that overflow or turn complex


@pytest.mark.parametrize(
    ("expression", "col", "message"),
    [
        ("$d * 1e-320 ** -2", 34, "expression '$d * 1e-320 ** -2' is too large (beyond the range of floats)"),
        ("(0.0 - 1) ** 0.5 < $d", 32, "expression '(0.0 - 1) ** 0.5 < $d' is not a real number"),
        ("ceil(1e400) + $d", 27, "expression 'ceil(1e400) + $d' is not a finite number"),
    ],
)
def test_an_expression_that_leaves_the_real_numbers(expression: str, col: int, message: str) -> None:
    e = error_of(spec(f"params: {{d: 0.5, a: '{expression}'}}", HEAD, "layers: [relu]"))
    assert e.message == message
    assert_at(e, 1, col)


# --- lone surrogates (libyaml failed to encode the text)


def test_a_lone_surrogate_in_the_text() -> None:
    e = error_of(spec(HEAD, "layers: [re\udfffu]"))
    assert e.message == "YAML error: character U+DFFF is not allowed (a lone surrogate)"
    assert_at(e, 2, 12)


def test_a_file_that_is_not_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(spec(HEAD, "layers: [re\udfffu]").encode("utf-8", "surrogatepass"))
    with pytest.raises(SpecError) as info:
        netspec.analyze(path)
    assert info.value.location == Location(str(path), 2, 12)
    assert_says(info.value, "spec is not UTF-8 text")


# --- cycles: found in linear time, reported briefly


def cycle_graph(n: int) -> Graph:
    """A cycle a -> b -> a at the input of a chain of ``n`` layers."""
    g = Graph("g")
    at = Location("g.yaml", 1, 1)
    g.add(Node("a", "relu", None, ("b",), at, input_locations=(Location("g.yaml", 3, 34),)))
    g.add(Node("b", "relu", None, ("a",), at))
    for i in range(n):
        g.add(Node(f"r{i}", "relu", None, ("b" if i == 0 else f"r{i - 1}",), at))
    return g


def test_a_cycle_before_many_layers_is_reported_in_linear_work() -> None:
    text = spec(HEAD, "layers:", "  - {op: relu, name: a, inputs: [b]}", "  - {op: relu, name: b}", "  - relu") + (
        "  - relu\n" * 3_000
    )
    e = error_of(text)
    assert e.message == "the layers form a cycle: a -> b -> a"
    assert_at(e, 3, 34)
    # The work grows with the layers downstream of the cycle as a line does: ten times
    # the layers, about ten times the lines of Python run (quadratic gave a hundred).
    counts = []
    for n in (2_000, 20_000):
        g = cycle_graph(n)
        with at_most_lines(10**8) as count, pytest.raises(SpecError, match="a -> b -> a"):
            g.validate()
        counts.append(count[0])
    assert counts[1] < 12 * counts[0], counts


def test_a_long_cycle_names_its_ends_and_its_length() -> None:
    layers = ["  - {op: relu, name: l0, inputs: [l999]}"] + [f"  - {{op: relu, name: l{i}}}" for i in range(1, 1000)]
    e = error_of(spec(HEAD, "layers:", *layers))
    assert (
        e.message
        == "the layers form a cycle of 1,000 layers: l0 -> l1 -> l2 -> ... 994 more ... -> l997 -> l998 -> l999 -> l0"
    )
    assert_at(e, 3, 35)


# --- --set errors name the option and its value, located at the option


@pytest.mark.parametrize(
    ("item", "col", "message"),
    [
        ("==", 1, "--set '==': expects NAME=VALUE"),
        ("width", 1, "--set 'width': expects NAME=VALUE"),
        ("width=[1", 9, "--set 'width=[1': YAML syntax error: did not find expected ',' or ']'"),
        ("width=[1, 2]", 7, "--set 'width=[1, 2]': the value must be a number, a boolean, a string or an expression"),
    ],
)
def test_set_errors(item: str, col: int, message: str) -> None:
    e = set_error(item)
    assert e.message == message
    assert e.location == Location("--set", 1, col)


def test_cli_prints_set_errors_as_located_lines(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(spec(HEAD, "params: {width: 4}", "layers: [relu]"))
    r = run_cli("summary", "spec.yaml", "--set", "==", cwd=tmp_path)
    assert r.returncode == 2
    assert cli_errors(r.stderr) == [("--set", 1, 1, "--set '==': expects NAME=VALUE")]


# --- the value limit acts while reading: quickly, in little memory


def test_a_huge_list_is_refused_while_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlload, "MAX_VALUES", 50_000)  # the mechanism, at a twentieth of the limit's cost
    text = spec(HEAD, "layers: [relu]", "x-data: [" + ", ".join(["1"] * 200_000) + "]")
    tracemalloc.start()
    try:
        e = error_of(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert e.message == "spec expands to more than 50,000 values"  # no aliases: no bomb to suspect
    # at the value that crossed it: the text before the list holds 11 values, keys included
    assert_at(e, 3, 10 + 3 * (50_001 - 11 - 1))
    # a location per value took 220 bytes (11 MB here); packed per list, 8
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"


# --- the layer limit counts the repeats inside blocks before building anything


def test_repeats_nested_in_blocks_are_counted_before_any_layer_is_built() -> None:
    text = spec(
        HEAD,
        "blocks:",
        "  b: {layers: [{op: relu, repeat: 1000}, {op: relu, when: false}]}",
        "  c: {layers: [{op: b, repeat: 10}]}",
        "layers:",
        "  - relu",
        "  - {op: c, repeat: 101}",
    )
    with at_most_lines(200_000):  # building the 1,010,000 layers first ran about 400 million
        e = error_of(text)
    assert_at(e, 7, 5)
    assert_says(e, "layer 2: the spec expands to more than 1,000,000 layers")
    # The same nesting under the limit is built in full.
    small = text.replace("repeat: 1000", "repeat: 3").replace("repeat: 101", "repeat: 2")
    assert len(netspec.analyze_text(small).layers) == 1 + 1 + 2 * 10 * 3


# --- every message is short and on one line


def test_a_huge_name_is_shortened_in_the_message() -> None:
    e = error_of(spec(HEAD, "layers:", "  - {op: " + "a" * 100_000 + "}"))
    assert e.message == "unknown op '" + "a" * 50 + "..." + "a" * 25 + "'"
    assert len(e.format()) < 1000


def test_a_long_list_of_names_is_cut_in_a_hint() -> None:
    params = ", ".join(f"p{i}: 1" for i in range(100))
    e = error_of(spec(f"params: {{{params}}}", HEAD, "layers:", "  - {op: linear, out: $nope}"))
    assert (
        e.hint
        == "variables defined in 'params': " + ", ".join(sorted(f"p{i}" for i in range(100))[:12]) + " and 88 more"
    )


def test_control_characters_are_escaped_in_a_message() -> None:
    e = error_of(spec(HEAD, "layers:", '  - {op: "re\\nlu"}'))
    assert e.message == "unknown op 're\\nlu'"
    assert_says(e, "re\\nlu")  # one line


def test_an_error_is_under_1000_characters_however_long_its_parts() -> None:
    words = " ".join(["word"] * 10_000)
    e = SpecError(words, Location("specs/some_model.yaml", 12345, 678), hint=words, notes=[words] * 50)
    assert len(e.format()) < 1000, e.format()
    assert "\n  note: ... and 48 more\n  hint: " in e.format()
