"""Bad input: every user mistake is one located error (``path:line:col: error: ...``),
never a traceback, and hostile YAML is refused quickly without being executed.

Specs are written line by line with ``spec(...)`` so that a case's line numbers can be
read off its position in the call; columns are 1-based like the CLI's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, at_most_lines

import netspec
from netspec import Location, SpecError
from netspec.spec import yamlload
from netspec.spec.load import parse_override
from netspec.spec.yamlload import MAX_FILE_BYTES

ERROR_LINE = re.compile(r"^(?P<path>[^\n]+?):(?P<line>\d+):(?P<col>\d+): error: (?P<message>.+)$")


def spec(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def error_of(text: str, params: dict[str, Any] | None = None) -> SpecError:
    with pytest.raises(SpecError) as info:
        netspec.analyze_text(text, params, path="spec.yaml")
    return info.value


def assert_at(e: SpecError, line: int, col: int) -> None:
    assert e.location is not None, e.format()
    assert (e.location.path, e.location.line, e.location.col) == ("spec.yaml", line, col), e.format()


def assert_says(e: SpecError, *fragments: str, hint: str | None = None) -> None:
    for fragment in fragments:
        assert fragment in e.message, f"{fragment!r} not in {e.message!r}"
    if hint is not None:
        assert e.hint is not None and hint in e.hint, f"{hint!r} not in hint {e.hint!r}"
    text = e.format()
    assert "\n" not in text.split("\n  hint: ")[0], f"the error spans several lines: {text!r}"


def run_cli(*args: str, cwd: Path, code: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m netspec ARGS`` (or ``python -c CODE ARGS``) as a user runs it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "netspec", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def cli_errors(stderr: str) -> list[tuple[str, int, int, str]]:
    """(path, line, col, message) of each error in ``stderr``; any other line fails the test,
    except an indented hint after an error."""
    assert "Traceback" not in stderr, stderr
    errors = []
    for text in stderr.splitlines():
        if text.startswith("  hint: ") and errors:
            continue
        m = ERROR_LINE.match(text)
        assert m, f"not a located error line: {text!r} in\n{stderr}"
        errors.append((m["path"], int(m["line"]), int(m["col"]), m["message"]))
    return errors


HEAD = "inputs: {x: [3, 8, 8]}"


def case(
    case_id: str,
    text: str,
    at: tuple[int, int],
    *fragments: str,
    hint: str | None = None,
    layer: str | None = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """A bad spec, where its error points, what its message (and hint) says, and the
    layer it names (``SpecError.layer``)."""
    return pytest.param(text, params, at, fragments, hint, layer, id=case_id)


CASES = [
    # --- YAML syntax, and documents that are not a mapping
    case(
        "syntax-unclosed-flow-map",
        spec("inputs: {x: [3, 32, 32]", "layers: [relu]"),
        (2, 1),
        "YAML syntax error",
        "expected ',' or '}'",
    ),
    case(
        "syntax-bad-indent",
        spec("inputs:", "  x: [3, 8, 8]", " layers: [relu]"),
        (3, 2),
        "YAML syntax error",
        "expected key",
    ),
    case(
        "syntax-tab",
        spec("inputs:", "\tx: [3, 8, 8]", "layers: [relu]"),
        (2, 1),
        "YAML syntax error",
        "cannot start any token",
    ),
    case("control-character", spec(HEAD, "layers: [re\x00lu]"), (2, 12), "U+0000", "not allowed"),
    case("not-a-mapping-list", spec("- relu", "- relu"), (1, 1), "must be a mapping", "is a list"),
    case("not-a-mapping-scalar", spec("conv2d"), (1, 1), "must be a mapping", "is a string"),
    case("not-a-mapping-number", spec("", "42"), (2, 1), "must be a mapping", "is a number"),
    case("empty-file", "", (1, 1), "must be a mapping", "is empty"),
    case("only-comments", spec("# nothing here", "# at all"), (1, 1), "is empty"),
    # --- unknown ops and attributes, missing attributes
    case(
        "unknown-op-space",
        spec(HEAD, "layers:", "  - {op: conv2 d, out: 4, kernel: 3}"),
        (3, 10),
        "unknown op 'conv2 d'",
        hint="did you mean 'conv2d'?",
    ),
    case(
        "unknown-op-truncated",
        spec(HEAD, "layers:", "  - {op: conv2, out: 4, kernel: 3}"),
        (3, 10),
        "unknown op 'conv2'",
        hint="did you mean 'conv2d'?",
    ),
    case(
        "unknown-op-bare-name",
        spec(HEAD, "layers:", "  - relu", "  - maxpool"),
        (4, 5),
        "unknown op 'maxpool'",
        hint="did you mean 'maxpool2d'?",
    ),
    case(
        "unknown-op-no-match",
        spec(HEAD, "layers:", "  - {op: transformer}"),
        (3, 10),
        "unknown op 'transformer'",
        hint="known ops: ",
    ),
    case("input-is-not-an-op", spec(HEAD, "layers:", "  - {op: input}"), (3, 10), "unknown op 'input'"),
    case(
        "unknown-attribute",
        spec(HEAD, "layers:", "  - {op: conv2d, out: 4, kernal: 3}"),
        (3, 26),
        "layer 'conv2d_1' (conv2d)",
        "unknown attribute 'kernal'",
        hint="did you mean 'kernel'?",
        layer="conv2d_1",
    ),
    case(
        "unknown-attribute-no-match",
        spec(HEAD, "layers:", "  - {op: relu, name: r, slope: 0.1}"),
        (3, 25),
        "layer 'r' (relu)",
        "unknown attribute 'slope'",
        layer="r",
    ),
    case(
        "missing-attribute",
        spec(HEAD, "layers:", "  - {op: conv2d, name: c1, out: 4}"),
        (3, 5),
        "layer 'c1' (conv2d)",
        "missing attribute 'kernel'",
        layer="c1",
    ),
    case(
        "layer-without-op", spec(HEAD, "layers:", "  - {name: c1, out: 4}"), (3, 5), "layer 1 has no 'op'", hint="op:"
    ),
    case(
        "unknown-top-level-key",
        spec(HEAD, "layer: [relu]"),
        (2, 1),
        "unknown key 'layer'",
        hint="did you mean 'layers'?",
    ),
    case("missing-layers", spec(HEAD), (1, 1), "missing key 'layers'"),
    # --- wrong types
    case(
        "kernel-string",
        spec(HEAD, "layers:", '  - {op: conv2d, name: c1, out: 4, kernel: "abc"}'),
        (3, 44),
        "layer 'c1' (conv2d)",
        "attribute 'kernel'",
        "positive integer",
        "got 'abc'",
        layer="c1",
    ),
    case(
        "bias-int",
        spec(HEAD, "layers:", "  - {op: conv2d, name: c1, out: 4, kernel: 3, bias: 3}"),
        (3, 53),
        "layer 'c1' (conv2d)",
        "attribute 'bias'",
        "expected true, false or a list",
        "got 3",
        layer="c1",
    ),
    case(
        "kernel-float",
        spec(HEAD, "layers:", "  - {op: conv2d, name: c1, out: 4, kernel: 2.5}"),
        (3, 44),
        "attribute 'kernel'",
        "got 2.5",
        layer="c1",
    ),
    case(
        "kernel-triple",
        spec(HEAD, "layers:", "  - {op: conv2d, name: c1, out: 4, kernel: [1, 2, 3]}"),
        (3, 44),
        "attribute 'kernel'",
        "pair [h, w]",
        "got [1, 2, 3]",
        layer="c1",
    ),
    case(
        "dropout-p-string",
        spec("inputs: {x: [16]}", "layers:", '  - {op: dropout, name: d, p: "x"}'),
        (3, 31),
        "layer 'd' (dropout)",
        "attribute 'p'",
        "number",
        "got 'x'",
        layer="d",
    ),
    case(
        "trainable-string",
        spec(HEAD, "layers:", "  - {op: relu, trainable: 'yes'}"),
        (3, 27),
        "'trainable'",
        "boolean",
        "got 'yes'",
    ),
    case(
        "repeat-bool",
        spec(HEAD, "layers:", "  - {op: relu, name: r, repeat: true}"),
        (3, 33),
        "layer 'r' (relu)",
        "'repeat' must be an integer",
        "got True",
        layer="r",
    ),
    case("name-with-dot", spec(HEAD, "layers:", "  - {op: relu, name: a.b}"), (3, 22), "'name'", "pattern"),
    # --- zero or negative sizes
    case(
        "out-zero",
        spec(HEAD, "layers:", "  - {op: conv2d, name: c1, out: 0, kernel: 3}"),
        (3, 33),
        "layer 'c1' (conv2d)",
        "attribute 'out'",
        "positive integer",
        "got 0",
        layer="c1",
    ),
    case(
        "kernel-negative",
        spec(HEAD, "layers:", "  - {op: conv2d, name: c1, out: 4, kernel: -1}"),
        (3, 44),
        "attribute 'kernel'",
        "got -1",
        layer="c1",
    ),
    case(
        "linear-out-negative-expr",
        spec("params: {n: 4}", "inputs: {x: [16]}", "layers:", "  - {op: linear, name: fc, out: 2 - $n}"),
        (4, 33),
        "layer 'fc' (linear)",
        "attribute 'out'",
        "got -2",
        layer="fc",
    ),
    case(
        "input-axis-zero",
        spec("inputs: {x: [3, 0, 32]}", "layers: [relu]"),
        (1, 17),
        "input 'x'",
        "axis 1",
        "positive integer",
        "got 0",
    ),
    case("input-no-axes", spec("inputs: {x: []}", "layers: [relu]"), (1, 13), "input 'x'", "1 to 8 axes", "got 0"),
    # --- an output size below 1: the layer and the input it got
    case(
        "conv-larger-than-input",
        spec("inputs: {x: [3, 3, 3]}", "layers:", "  - {op: conv2d, name: big, out: 4, kernel: 5}"),
        (3, 5),
        "layer 'big' (conv2d)",
        "output size would be",
        "the input is 3x3",
        "5x5",
        layer="big",
    ),
    case(
        "pooling-chain-shrinks-to-zero",
        spec(
            HEAD,
            "layers:",
            "  - {op: maxpool2d, kernel: 2}",
            "  - {op: maxpool2d, kernel: 2}",
            "  - {op: maxpool2d, kernel: 2}",
            "  - {op: maxpool2d, name: p4, kernel: 2}",
        ),
        (6, 5),
        "layer 'p4' (maxpool2d)",
        "output size would be 0x0",
        "the input is 1x1",
        "[3, 1, 1]",
        layer="p4",
    ),
    # --- add / concat of incompatible shapes: both layers and both shapes
    case(
        "add-shapes-differ",
        spec(
            HEAD,
            "layers:",
            "  - {op: conv2d, name: a, out: 4, kernel: 3}",
            "  - {op: conv2d, name: b, out: 8, kernel: 3, inputs: [x]}",
            "  - {op: add, name: s, inputs: [a, b]}",
        ),
        (5, 5),
        "layer 's' (add)",
        "'a' gives [4, 6, 6]",
        "'b' gives [8, 6, 6]",
        layer="s",
    ),
    case(
        "concat-spatial-sizes-differ",
        spec(
            HEAD,
            "layers:",
            "  - {op: conv2d, name: a, out: 4, kernel: 3}",
            "  - {op: conv2d, name: b, out: 8, kernel: 1, inputs: [x]}",
            "  - {op: concat, name: cat, inputs: [a, b]}",
        ),
        (5, 5),
        "layer 'cat' (concat)",
        "'a' gives [4, 6, 6]",
        "'b' gives [8, 8, 8]",
        layer="cat",
    ),
    case(
        "add-third-input-differs",
        spec(
            HEAD,
            "layers:",
            "  - {op: relu, name: a}",
            "  - {op: maxpool2d, name: p, kernel: 2}",
            "  - {op: add, name: s, inputs: [x, a, p]}",
        ),
        (5, 5),
        "layer 's' (add)",
        "'x' gives [3, 8, 8]",
        "'p' gives [3, 4, 4]",
        layer="s",
    ),
    # --- references, names, cycles
    case(
        "undefined-input",
        spec(HEAD, "layers:", "  - {op: conv2d, name: conv1, out: 4, kernel: 3}", "  - {op: relu, inputs: [conv_1]}"),
        (4, 25),
        "layer 'relu_1'",
        "input 'conv_1'",
        "not defined",
        hint="did you mean 'conv1'?",
        layer="relu_1",
    ),
    case(
        "undefined-second-input",
        spec(HEAD, "layers:", "  - {op: relu, name: r}", "  - {op: add, name: s, inputs: [r, xx]}"),
        (4, 36),
        "layer 's'",
        "input 'xx'",
        "not defined",
        hint="did you mean 'x'?",
        layer="s",
    ),
    case(
        "undefined-output",
        spec(HEAD, "layers: [relu]", "outputs: [relu_2]"),
        (3, 11),
        "output 'relu_2' is not a layer",
        hint="did you mean 'relu_1'?",
    ),
    case(
        "duplicate-name",
        spec(HEAD, "layers:", "  - {op: relu, name: a}", "  - {op: relu, name: b}", "  - {op: relu, name: a}"),
        (5, 22),
        "duplicate layer name 'a'",
        "line 3",
        hint="unique",
        layer="a",
    ),
    case(
        "duplicate-name-of-an-input",
        spec(HEAD, "layers:", "  - {op: relu, name: x}"),
        (3, 22),
        "duplicate layer name 'x'",
        "line 1",
        layer="x",
    ),
    case(
        "duplicate-name-of-a-repeated-layer",
        spec(HEAD, "layers:", "  - {op: relu, name: a, repeat: 2}", "  - {op: relu, name: a}"),
        (4, 22),
        "duplicate layer name 'a'",
        "line 3",
        layer="a",
    ),
    case(
        "cycle",
        spec(HEAD, "layers:", "  - {op: relu, name: a, inputs: [b]}", "  - {op: relu, name: b, inputs: [a]}"),
        (3, 34),
        "cycle",
        "a -> b -> a",
        layer="a",
    ),
    case(
        "cycle-of-three",
        spec(
            HEAD,
            "layers:",
            "  - {op: relu, name: a}",
            "  - {op: relu, name: b, inputs: [d]}",
            "  - {op: relu, name: c}",
            "  - {op: relu, name: d}",
        ),
        (4, 34),
        "cycle",
        "b -> c -> d -> b",
        layer="b",
    ),
    case(
        "self-input",
        spec(HEAD, "layers:", "  - {op: relu, name: a, inputs: [a]}"),
        (3, 5),
        "'a' takes itself as input",
        layer="a",
    ),
    case(
        "several-inputs-none-named",
        spec("inputs: {x: [3, 8, 8], y: [3, 8, 8]}", "layers:", "  - {op: add, name: s}"),
        (3, 5),
        "layer 's' (add)",
        "has no input",
        "several inputs",
        hint="inputs: [x, y]",
        layer="s",
    ),
    case(
        "inputs-empty",
        spec(HEAD, "layers:", "  - {op: relu, name: r, inputs: []}"),
        (3, 33),
        "layer 'r'",
        "'inputs' is empty",
        hint="leave 'inputs' out",
        layer="r",
    ),
    case(
        "add-one-input",
        spec(HEAD, "layers:", "  - {op: add, name: s}"),
        (3, 5),
        "layer 's' (add)",
        "at least 2 inputs, got 1",
        layer="s",
    ),
    # --- variables and expressions
    case(
        "undefined-variable",
        spec("params: {width: 4}", HEAD, "layers:", "  - {op: conv2d, name: c, out: $widht, kernel: 3}"),
        (4, 32),
        "layer 'c' (conv2d)",
        "undefined variable '$widht'",
        hint="did you mean 'width'?",
        layer="c",
    ),
    case(
        "undefined-variable-in-expression",
        spec("params: {width: 4}", HEAD, "layers:", "  - {op: conv2d, out: $width * $channels, kernel: 3}"),
        (4, 32),
        "undefined variable '$channels'",
        hint="variables defined in 'params': width",
        layer="conv2d_1",
    ),
    case(
        "undefined-variable-in-input-shape",
        spec("inputs: {x: [3, $size, $size]}", "layers: [relu]"),
        (1, 17),
        "undefined variable '$size'",
        hint="none",
    ),
    case(
        "variable-used-before-defined",
        spec("params:", "  a: $b * 2", "  b: 3", HEAD, "layers: [relu]"),
        (2, 6),
        "variable 'a' uses '$b'",
        "defined after it",
        hint="written before it",
    ),
    case(
        "division-by-zero",
        spec("params: {width: 4}", HEAD, "layers:", "  - {op: conv2d, name: c, out: $width // 0, kernel: 3}"),
        (4, 39),
        "layer 'c' (conv2d)",
        "division by zero",
        "'$width // 0'",
        layer="c",
    ),
    case(
        "division-by-zero-variable",
        spec("params: {n: 0, w: 64 / $n}", HEAD, "layers: [relu]"),
        (1, 22),
        "division by zero",
    ),
    case(
        "expression-nested-too-deep",
        spec(
            "params: {a: 1}", HEAD, "layers:", "  - {op: conv2d, out: " + "(" * 400 + "$a" + ")" * 400 + ", kernel: 3}"
        ),
        (4, 73),
        "nested more than",
        layer="conv2d_1",
    ),
    case(
        "expression-unknown-name",
        spec("params: {width: 4}", HEAD, "layers:", "  - {op: conv2d, out: width * $width, kernel: 3}"),
        (4, 23),
        "unknown name 'width'",
        hint="$width",
        layer="conv2d_1",
    ),
    case(
        "set-unknown-variable",
        spec(HEAD, "params: {width: 4}", "layers: [relu]"),
        (2, 1),
        "cannot set 'nope'",
        "no such variable",
        "width",
        params={"nope": 1},
    ),
    case(
        "set-misspelt-variable",
        spec(HEAD, "params: {width: 4}", "layers: [relu]"),
        (2, 1),
        "cannot set 'widht'",
        hint="did you mean 'width'?",
        params={"widht": 8},
    ),
    case(
        "set-bad-value",
        spec(HEAD, "params: {width: 4}", "layers:", "  - {op: conv2d, out: $width, kernel: 3}"),
        (2, 17),
        "--set width",
        "undefined variable '$w'",
        params={"width": "$w + 1"},
    ),
    # --- duplicate keys, several documents
    case(
        "duplicate-attribute",
        spec(HEAD, "layers:", "  - {op: conv2d, out: 4, kernel: 3, kernel: 5}"),
        (3, 37),
        "duplicate key 'kernel'",
    ),
    case("duplicate-top-level-key", spec(HEAD, "layers: [relu]", "inputs: {y: [3]}"), (3, 1), "duplicate key 'inputs'"),
    case(
        "second-document",
        spec(HEAD, "layers: [relu]", "---", "inputs: {x: [3]}"),
        (3, 1),
        "one YAML document",
        "second",
    ),
    case("second-document-after-end", spec(HEAD, "layers: [relu]", "...", "--- relu"), (4, 1), "one YAML document"),
    # --- tags that would construct Python objects, and custom tags (see also the test that nothing runs)
    case(
        "python-name-tag",
        spec(HEAD, "layers:", "  - !!python/name:os.system"),
        (3, 5),
        "YAML tag '!!python/name:os.system' is not allowed",
    ),
    case(
        "python-object-new-tag",
        spec(HEAD, "layers:", "  - {op: !!python/object/new:builtins.str [relu]}"),
        (3, 10),
        "'!!python/object/new:builtins.str' is not allowed",
    ),
    case("custom-tag", spec(HEAD, "layers:", "  - !foo relu"), (3, 5), "YAML tag '!foo' is not allowed"),
    case("binary-tag", spec(HEAD, "name: !!binary aGk=", "layers: [relu]"), (2, 7), "'!!binary' is not allowed"),
    case("unknown-alias", spec(HEAD, "layers: [*relu]"), (2, 10), "unknown alias '*relu'"),
    # --- absurd sizes are refused (quickly: see test_absurd_sizes_are_refused_quickly)
    case(
        "repeat-absurd",
        spec(HEAD, "layers:", "  - {op: relu, name: r, repeat: 10000000}"),
        (3, 33),
        "layer 'r' (relu)",
        "'repeat' must be an integer from 1 to 100,000",
        "10000000",
        layer="r",
    ),
    case(
        "input-axis-absurd",
        spec("inputs: {x: [3, 100000000000, 100000000000]}", "layers: [relu]"),
        (1, 17),
        "input 'x'",
        "axis 1",
        "too large",
    ),
    case(
        "out-absurd-via-expression",
        spec("params: {ten: 10, big: $ten ** 12}", HEAD, "layers:", "  - {op: conv2d, name: c, out: $big, kernel: 3}"),
        (4, 32),
        "layer 'c' (conv2d)",
        "attribute 'out'",
        "1000000000000 is too large",
        layer="c",
    ),
    case(
        "tensor-absurd",
        spec(
            "params: {n: 100000}",
            "inputs: {x: [3, $n, $n]}",
            "layers:",
            "  - {op: conv2d, name: c, out: 1000, kernel: 3}",
        ),
        (4, 5),
        "layer 'c' (conv2d)",
        "[1000, 99998, 99998]",
        "2**40",
        layer="c",
    ),
    case(
        "expression-beyond-64-bits",
        spec("params: {a: 99999999999}", HEAD, "layers:", "  - {op: linear, out: $a * $a * $a}"),
        (4, 26),
        "too large",
        layer="linear_1",
    ),
]


@pytest.mark.parametrize(("text", "params", "at", "fragments", "hint", "layer"), CASES)
def test_bad_spec_gives_one_located_error(
    text: str,
    params: dict[str, Any] | None,
    at: tuple[int, int],
    fragments: tuple[str, ...],
    hint: str | None,
    layer: str | None,
) -> None:
    e = error_of(text, params)
    assert_at(e, *at)
    assert_says(e, *fragments, hint=hint)
    assert e.layer == layer, e.format()


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_error_format_is_path_line_col() -> None:
    e = error_of(spec(HEAD, "layers:", "  - {op: conv2, out: 4, kernel: 3}"))
    assert e.format() == "spec.yaml:3:10: error: unknown op 'conv2'\n  hint: did you mean 'conv2d'?"
    assert str(e.location) == "spec.yaml:3:10"


def test_python_object_tag_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned_xyz"
    text = spec(HEAD, f'layers: !!python/object/apply:os.system ["touch {marker}"]')
    e = error_of(text)
    assert_at(e, 2, 9)
    assert_says(e, "YAML tag '!!python/object/apply:os.system' is not allowed")
    assert not marker.exists()


def test_alias_bomb_is_refused_quickly_and_in_little_memory() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    text = spec(HEAD, "layers: [relu]", "params:", *("  " + line for line in lines))
    tracemalloc.start()
    try:
        with at_most_lines(200_000):  # a few thousand: aliases are counted, never expanded
            e = error_of(text)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert_says(e, "expands to more than", "alias expansion bomb")
    assert_at(e, 9, 47)  # at the eighth alias of a5: each adds the 111,111 values of a4


def test_deep_nesting_is_refused_without_crashing(tmp_path: Path) -> None:
    # 100000 '[' used to overflow the stack of PyYAML's (recursive) composer: run it apart.
    (tmp_path / "deep.yaml").write_text("[" * 100_000)
    r = run_cli("check", "deep.yaml", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert cli_errors(r.stderr) == [("deep.yaml", 1, 101, "nesting deeper than 100 levels")]


def test_deep_nesting_of_mappings_is_refused() -> None:
    e = error_of("inputs: " + "{a: " * 200 + "1" + "}" * 200 + "\n")
    assert_at(e, 1, 9 + 4 * 99)  # the top-level mapping is the first level
    assert_says(e, "nesting deeper than 100 levels")


def test_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "w") as f:
        f.write(spec(HEAD, "layers: [relu]"))
        f.truncate(MAX_FILE_BYTES + 1)  # a sparse file: no need to write 32 MiB
    tracemalloc.start()
    try:
        with pytest.raises(SpecError) as info:
            netspec.analyze(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"read {peak / 2**20:.0f} MiB of a file it should refuse unread"
    assert info.value.location == Location(str(path))
    assert "too large" in info.value.message and f"{MAX_FILE_BYTES:,}" in info.value.message


def test_huge_text_is_refused_before_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    text = spec(HEAD, "layers: [relu]") + "#" * MAX_FILE_BYTES

    def parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the YAML parser was given a text over the size limit")

    monkeypatch.setattr(yamlload.yaml, "parse", parse)
    e = error_of(text)
    assert e.location == Location("spec.yaml")
    assert "too large" in e.message


@pytest.mark.parametrize(
    "text",
    [
        spec(HEAD, "layers:", "  - {op: relu, repeat: 10000000}"),
        spec("inputs: {x: [3, 100000000000, 100000000000]}", "layers: [relu]"),
        spec("params: {k: 1000000, big: $k * $k}", HEAD, "layers:", "  - {op: conv2d, out: $big, kernel: 3}"),
        spec("params: {n: 10}", "inputs: {x: [3, $n ** 9, $n ** 9]}", "layers: [relu]"),
        spec("params: {r: 100000}", HEAD, "layers:", *["  - {op: relu, repeat: $r}"] * 20),
    ],
    ids=["repeat", "input", "out", "input-expression", "many-repeats"],
)
def test_absurd_sizes_are_refused_quickly(text: str) -> None:
    with at_most_lines(1_000_000):  # about 400 lines a layer: refused before 2,500 layers are made
        e = error_of(text)
    assert e.location is not None and e.location.line > 0


def test_many_repeats_are_refused_at_the_layer_that_overflows() -> None:
    text = spec("params: {r: 100000}", HEAD, "layers:", *["  - {op: relu, repeat: $r}"] * 20)
    e = error_of(text)
    assert_at(e, 4 + 9, 5)  # the tenth layer would make 1,000,000 + 1 nodes with the input
    assert_says(e, "layer 10: the spec expands to more than 1,000,000 layers")


def test_malformed_set_option() -> None:
    for item in ("nope", "=3", ""):
        with pytest.raises(SpecError) as info:
            parse_override(item)
        assert info.value.message == f"--set '{item}': expects NAME=VALUE"
        assert info.value.location == Location("--set", 1, 1)
    with pytest.raises(SpecError) as info:
        parse_override("width=[1")
    assert info.value.message.startswith("--set 'width=[1': YAML syntax error")
    # a command-line value has no place in the file: located at the option, by column
    assert info.value.location is not None and info.value.location.path == "--set"
    assert parse_override("width=8") == ("width", 8)


# ---------------------------------------------------------------- the command line

CLI_CASES = {
    # file name: (spec text, (line, col) of the error, a fragment of its message)
    "syntax.yaml": (spec("inputs: {x: [3, 32, 32]", "layers: [relu]"), (2, 1), "YAML syntax error"),
    "list.yaml": (spec("- relu"), (1, 1), "must be a mapping"),
    "empty.yaml": ("", (1, 1), "is empty"),
    "unknown_op.yaml": (spec(HEAD, "layers:", "  - {op: conv2 d, out: 4}"), (3, 10), "unknown op 'conv2 d'"),
    "unknown_attr.yaml": (
        spec(HEAD, "layers:", "  - {op: conv2d, out: 4, kernal: 3}"),
        (3, 26),
        "unknown attribute 'kernal'",
    ),
    "small_input.yaml": (
        spec("inputs: {x: [3, 3, 3]}", "layers:", "  - {op: conv2d, name: big, out: 4, kernel: 5}"),
        (3, 5),
        "layer 'big'",
    ),
    "add.yaml": (
        spec(HEAD, "layers:", "  - {op: conv2d, name: a, out: 4, kernel: 3}", "  - {op: add, name: s, inputs: [a, x]}"),
        (4, 5),
        "'a' gives [4, 6, 6] but 'x' gives [3, 8, 8]",
    ),
    "cycle.yaml": (
        spec(HEAD, "layers:", "  - {op: relu, name: a, inputs: [b]}", "  - {op: relu, name: b, inputs: [a]}"),
        (3, 34),
        "a -> b -> a",
    ),
    "undefined_var.yaml": (
        spec("params: {width: 4}", HEAD, "layers:", "  - {op: linear, out: $widht}"),
        (4, 23),
        "undefined variable '$widht'",
    ),
    "div0.yaml": (
        spec("params: {width: 4}", HEAD, "layers:", "  - {op: linear, out: $width % 0}"),
        (4, 30),
        "division by zero",
    ),
    "tag.yaml": (
        spec(HEAD, 'layers: !!python/object/apply:os.system ["touch pwned_xyz"]'),
        (2, 9),
        "'!!python/object/apply:os.system'",
    ),
    "bomb.yaml": (
        spec(HEAD, "layers: [relu]", "params:", "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]")
        + "".join(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10)),
        (9, 47),
        "alias expansion bomb",
    ),
    "dupkey.yaml": (spec(HEAD, "layers:", "  - {op: linear, out: 4, out: 5}"), (3, 26), "duplicate key 'out'"),
    "two_docs.yaml": (spec(HEAD, "layers: [relu]", "---", "x: 1"), (3, 1), "one YAML document"),
    "repeat.yaml": (spec(HEAD, "layers:", "  - {op: relu, repeat: 10000000}"), (3, 24), "'repeat' must be an integer"),
}


def test_cli_check_reports_each_mistake_on_one_located_line(tmp_path: Path) -> None:
    for name, (text, *_) in CLI_CASES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "ok.yaml").write_text(spec(HEAD, "layers: [relu]"))
    r = run_cli("check", *CLI_CASES, "ok.yaml", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stdout.strip() == "ok.yaml: ok (2 layers, 0 params, 0 MACs)"
    errors = cli_errors(r.stderr)
    assert [e[0] for e in errors] == list(CLI_CASES)
    for (path, line, col, message), (_, at, fragment) in zip(errors, CLI_CASES.values()):
        assert (line, col) == at, (path, message)
        assert fragment in message, (path, message)
    assert not (tmp_path / "pwned_xyz").exists()
    assert "  hint: did you mean 'conv2d'?" in r.stderr.splitlines()


def test_cli_summary_error_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(
        spec(HEAD, "params: {width: 4}", "layers:", "  - {op: conv2d, out: $width, kernel: 3}")
    )
    r = run_cli("summary", "spec.yaml", "--set", "nope=1", "--format", "json", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert cli_errors(r.stderr) == [
        ("spec.yaml", 2, 1, "cannot set 'nope': the spec has no such variable (its variables: width)")
    ]


def test_cli_malformed_set(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(spec(HEAD, "params: {width: 4}", "layers: [relu]"))
    r = run_cli("summary", "spec.yaml", "--set", "width", cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert cli_errors(r.stderr) == [("--set", 1, 1, "--set 'width': expects NAME=VALUE")]


def _failing_analyze(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("boom from a test")


def test_internal_error_is_one_line_exit_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from netspec import cli

    monkeypatch.setattr(cli, "analyze", _failing_analyze)
    assert cli.main(["summary", str(REPO / "specs" / "lenet5.yaml")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("netspec: internal error") and "boom from a test" in err and "--debug" in err
    with pytest.raises(RuntimeError, match="boom from a test"):
        cli.main(["--debug", "summary", str(REPO / "specs" / "lenet5.yaml")])


def test_debug_shows_the_traceback_of_an_internal_error() -> None:
    code = (
        "import sys\nfrom netspec import cli\n"
        "def boom(*a, **k):\n    raise RuntimeError('boom from a test')\n"
        "cli.analyze = boom\nsys.exit(cli.main(sys.argv[1:]))\n"
    )
    debug = run_cli("--debug", "summary", "specs/lenet5.yaml", cwd=REPO, code=code)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "RuntimeError: boom from a test" in debug.stderr


@pytest.mark.parametrize(
    "value,col,says",
    [
        ("$width * $widht", 32, "undefined variable '$widht'"),  # plain: the column of the bad name
        ('"$width // (2 - 2)"', 31, "division by zero"),  # quoted: past the opening quote
        ("'$width +'", 32, "ends too early"),
    ],
)
def test_expression_errors_point_inside_the_expression(value: str, col: int, says: str) -> None:
    e = error_of(spec("params: {width: 8}", "inputs: {x: [3]}", "layers:", f"  - {{op: linear, out: {value}}}"))
    assert_at(e, 4, col)
    assert_says(e, says)


def test_huge_adaptive_pooling_is_counted_at_once() -> None:
    with at_most_lines(200_000):  # a loop over the 2^31 windows would run billions
        a = netspec.analyze_text(
            spec("inputs: {x: [1, 3, 3]}", "layers:", "  - {op: adaptive_avgpool2d, size: [2147483647, 1]}")
        )
    assert a.layers[-1].output_shape == (1, 2_147_483_647, 1)
