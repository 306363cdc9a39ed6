"""The hints of the commonest first mistakes: a wrong case, a path that does not exist,
tabs and indentation, the shape of 'inputs', and a command whose library is not
installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import run
from test_errors import assert_at, error_of, spec

import netspec

HEAD = "inputs: {x: [3, 8, 8]}"


def test_a_name_that_differs_only_in_case_is_suggested() -> None:
    e = error_of(spec(HEAD, "layers:", "  - {op: reLU}"))
    assert e.hint == "did you mean 'relu'?"
    e = error_of(spec(HEAD, "layers:", "  - {op: Conv2D, out: 4, kernel: 3}"))
    assert e.hint == "did you mean 'conv2d'?"


def test_a_path_is_not_taken_for_a_zoo_name(tmp_path: Path) -> None:
    with pytest.raises(netspec.SpecError) as e:
        netspec.analyze("models/net.yaml")
    assert e.value.message == "no such file" and "check the path" in (e.value.hint or "")
    with pytest.raises(netspec.SpecError) as e:
        netspec.analyze("resnet81")
    assert e.value.message == "no such file, and no built-in spec of that name"
    assert e.value.hint == "did you mean 'resnet18'?"


@pytest.mark.parametrize(
    ("text", "where", "hint"),
    [
        (spec(HEAD, "layers:", "\t- relu"), (3, 1), "YAML indents with spaces, not tabs: replace the tab"),
        (spec(HEAD, "layers:", "  - relu", " - relu"), (4, 2), "check this line's indentation"),
        (spec(HEAD, "layers:", "  - {op: conv2d, out: 4 kernel: 3}"), (3, 31), "inside {...} or [...], separate items"),
    ],
)
def test_yaml_syntax_errors_say_what_they_usually_mean(text: str, where: tuple[int, int], hint: str) -> None:
    e = error_of(text)
    assert_at(e, *where)
    assert e.message.startswith("YAML syntax error")
    assert (e.hint or "").startswith(hint)


def test_inputs_written_as_a_shape_get_an_example() -> None:
    e = error_of(spec("inputs: [3, 32, 32]", "layers: [relu]"))
    assert_at(e, 1, 9)
    assert e.message == "'inputs' names each input and gives its shape"
    assert e.hint == "write inputs: {image: [3, 32, 32]}"


MISSING_TORCH = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
"""


def test_a_command_whose_library_is_missing_says_which_extra_to_install(tmp_path: Path) -> None:
    r = run("compile", "lenet5", "-o", str(tmp_path / "m.pt"), prelude=MISSING_TORCH)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [
        "netspec compile: error: this needs torch, which is not installed",
        "  hint: pip install 'netspec[torch]'",
    ]
    assert not (tmp_path / "m.pt").exists()
    r = run("check", "bad.yaml", cwd=tmp_path, prelude=MISSING_TORCH)  # other errors are unchanged
    assert r.returncode == 2 and r.stderr.startswith("bad.yaml: error: no such file")


def test_an_error_from_a_set_value_names_the_option_too() -> None:
    with pytest.raises(netspec.SpecError) as e:
        netspec.analyze("lenet5", {"classes": 0})
    assert e.value.location is not None and e.value.location.line == 21  # where it is used: fc3's out
    assert e.value.notes == ["'$classes' is 0 here, from --set classes=0"]
    text = spec(
        "params: {width: 8, wide: $width * 2}",
        HEAD,
        "layers:",
        "  - flatten",
        "  - {op: linear, out: $wide - 20}",
    )
    with pytest.raises(netspec.SpecError) as e:
        netspec.analyze_text(text, {"width": 9})
    assert e.value.notes == ["'$wide' is 18 here, from --set width=9"]  # computed from a value set outside
    plain = error_of(spec("params: {n: 0}", HEAD, "layers: [flatten, {op: linear, out: $n}]"))
    assert plain.notes == []  # nothing set from outside


def test_writing_source_needs_no_torch(tmp_path: Path) -> None:
    r = run("compile", "resnet18", "-o", str(tmp_path / "r18.py"), prelude=MISSING_TORCH)
    assert r.returncode == 0, r.stderr
    with_torch = run("compile", "resnet18")
    assert with_torch.returncode == 0, with_torch.stderr
    assert (tmp_path / "r18.py").read_text() == with_torch.stdout  # the same source either way
