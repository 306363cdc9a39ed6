"""Shell completion (``netspec completion``) and the examples under each command's
``--help``: the bash script is run by bash itself, on real command lines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_cli import run

from netspec import zoo
from netspec.cli import EXAMPLES, _parser
from netspec.completion import commands, script

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def complete(words: list[str], cwd: Path) -> list[str]:
    """What the bash script offers for the last word of ``words``."""
    test = (
        f"source {cwd / 'netspec.bash'}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; COMPREPLY=()\n"
        '_netspec; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    r = subprocess.run(["bash", "-c", test], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.splitlines() if w]


@needs_bash
def test_bash_completes_commands_options_values_and_specs(tmp_path: Path) -> None:
    (tmp_path / "netspec.bash").write_text(script("bash", _parser()))
    (tmp_path / "mine.yaml").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert complete(["netspec", "su"], tmp_path) == ["summary"]
    assert complete(["netspec", "summary", "lenet5", "--form"], tmp_path) == ["--format"]
    assert complete(["netspec", "summary", "lenet5", "--format", ""], tmp_path) == ["table", "json", "csv", "markdown"]
    assert complete(["netspec", "compile", "x", "--init", "py"], tmp_path) == ["pytorch"]
    assert complete(["netspec", "summary", "lenet5", "--depth", ""], tmp_path) == []  # a number: nothing to offer
    assert complete(["netspec", "summary", "res"], tmp_path) == [n for n in zoo.names() if n.startswith("res")]
    offered = complete(["netspec", "check", ""], tmp_path)
    assert "mine.yaml" in offered and "notes.txt" not in offered and "vgg16" in offered
    assert complete(["netspec", "compile", "x", "-o", "no"], tmp_path) == ["notes.txt"]  # a path


def test_every_command_and_option_is_in_every_script() -> None:
    cmds = commands(_parser())
    assert {c.name for c in cmds} >= {"summary", "check", "compile", "render", "train", "diff", "vars", "run"}
    for shell in ("bash", "zsh", "fish"):
        text = script(shell, _parser())
        for c in cmds:
            assert c.name in text
            for o in c.options:
                long = next((f for f in o.flags if f.startswith("--")), None)
                if long:
                    assert (long if shell != "fish" else f"-l {long[2:]}") in text, (shell, c.name, long)
    assert script("zsh", _parser()).splitlines()[1] == "autoload -U +X bashcompinit && bashcompinit"


def test_cli_prints_the_script_and_every_command_has_examples() -> None:
    r = run("completion", "bash")
    assert r.returncode == 0 and r.stdout == script("bash", _parser())
    assert set(EXAMPLES) == set(_parser()._actions[-1].choices)  # type: ignore[arg-type]
    r = run("diff", "--help")
    assert "examples:\n  netspec diff resnet18 resnet34 --depth 1\n" in r.stdout


def test_every_example_parses() -> None:
    import re
    import shlex

    for name, lines in EXAMPLES.items():
        for line in lines:
            command = re.split(r"[|>#)]", line[line.index("netspec ") :])[0]  # the netspec part of a shell line
            argv = shlex.split(command)[1:]
            assert argv[0] == name
            _parser().parse_args(argv)  # exits (fails the test) on an option that is not there
