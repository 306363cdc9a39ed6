"""Registry-driven tests: every registered op is checked, so a new op is covered by
adding its file (with its docstring example)."""

from __future__ import annotations

import ast
import re
import textwrap

import pytest
from conftest import REPO

import netspec
from netspec.ops import REGISTRY, op_names
from netspec.ops.base import Op, register_op

OPS = op_names()


def example(op: Op) -> tuple[str, tuple[int, ...]]:
    """The YAML example of an op's docstring and the output it states."""
    doc = textwrap.dedent((op.__doc__ or "").split("::", 1)[-1])
    text = textwrap.dedent("\n".join(line for line in doc.splitlines() if line.strip()))
    m = re.search(r"^# output: (\[.*\])$", text, re.M)
    assert m, f"op '{op.name}': its docstring example states no '# output: [...]'"
    return text, tuple(ast.literal_eval(m.group(1)))


@pytest.mark.parametrize("name", OPS)
def test_docstring_example_gives_the_stated_output(name: str) -> None:
    text, expected = example(REGISTRY[name])
    a = netspec.analyze_text(text, path=f"<{name} example>")
    assert name in {x.op for x in a.layers}, f"the example of '{name}' does not use it"
    assert a.layers[-1].output_shape == expected


@pytest.mark.parametrize("name", OPS)
def test_every_op_is_in_the_readme(name: str) -> None:
    readme = (REPO / "README.md").read_text()
    assert f"`{name}`" in readme, f"op '{name}' is not documented in the README"


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):

        @register_op("conv2d")
        class Again(Op):
            """layers: []"""


def test_aliases_resolve_to_the_same_op() -> None:
    assert REGISTRY["swish"] is REGISTRY["silu"]
    assert "swish" not in OPS


def test_no_op_names_are_branched_on_in_the_core() -> None:
    # The core dispatches through the registry; op-specific code lives in netspec/ops/.
    for path in (REPO / "netspec").rglob("*.py"):
        if "ops" in path.parts:
            continue
        src = path.read_text()
        for name in OPS:
            if name == "input":
                continue
            assert f'== "{name}"' not in src and f"== '{name}'" not in src, f"{path} branches on op '{name}'"
