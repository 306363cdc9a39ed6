"""Shell completion for ``netspec`` (``netspec completion bash|zsh|fish``): commands,
their options, the values of options with a fixed set of them, paths where an option
takes a file, and built-in spec names and ``.yaml`` files where a command takes a
spec. Written from the CLI's own argument parser, so a new command or option
completes without more work."""

from __future__ import annotations

import argparse
from typing import NamedTuple

from netspec import zoo

SHELLS = ("bash", "zsh", "fish")
#: positional arguments that name a spec
SPEC_ARGS = {"spec", "specs", "a", "b"}
#: option values that are paths (the others complete to their choices, or to nothing)
FILE_DESTS = {"output", "out", "weights", "data", "input", "resume"}


class Option(NamedTuple):
    flags: list[str]
    value: str  # "" (a flag), "file", "choice" or "any" (a number, NAME=VALUE)
    choices: list[str]


class Command(NamedTuple):
    name: str
    help: str
    options: list[Option]
    takes_spec: bool


def _option(a: argparse.Action) -> Option:
    if a.nargs == 0:
        return Option(list(a.option_strings), "", [])
    if a.choices:
        return Option(list(a.option_strings), "choice", [str(c) for c in a.choices])
    return Option(list(a.option_strings), "file" if a.dest in FILE_DESTS else "any", [])


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """The parser's commands with their options (argparse keeps them in private
    attributes; its public API has no way to list them)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    return [
        Command(
            name,
            helps.get(name, ""),
            [_option(a) for a in p._actions if a.option_strings and a.dest != "help"],
            any(not a.option_strings and a.dest in SPEC_ARGS for a in p._actions),
        )
        for name, p in sub.choices.items()
    ]


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    if shell not in SHELLS:
        raise ValueError(f"unknown shell {shell!r}")
    cmds = commands(parser)
    return _fish(cmds) if shell == "fish" else _bash(cmds, zsh=shell == "zsh")


def _bash(cmds: list[Command], zsh: bool) -> str:
    names = " ".join(c.name for c in cmds)
    values: list[str] = []
    options: list[str] = []
    for c in cmds:
        options.append(f"        {c.name}) opts='{' '.join(f for o in c.options for f in o.flags)}' ;;")
        for o in c.options:
            words = {"choice": f"compgen -W '{' '.join(o.choices)}' -- \"$cur\"", "file": 'compgen -f -- "$cur"'}
            if o.value in ("choice", "file", "any"):
                reply = f"$({words[o.value]})" if o.value in words else ""
                values.append(f"        {'|'.join(f'{c.name}:{f}' for f in o.flags)}) COMPREPLY=({reply}); return ;;")
    spec_cmds = "|".join(c.name for c in cmds if c.takes_spec)
    specs = " ".join(zoo.names())
    lines = [
        f'# netspec completion ({"zsh" if zsh else "bash"}): eval "$(netspec completion {"zsh" if zsh else "bash"})"',
        *(["autoload -U +X bashcompinit && bashcompinit"] if zsh else []),  # zsh runs bash completion functions
        "_netspec() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" cmd="${COMP_WORDS[1]}" opts=""',
        '    if [ "$COMP_CWORD" -eq 1 ]; then',
        f"        COMPREPLY=($(compgen -W '{names} --help --version --debug' -- \"$cur\")); return",
        "    fi",
        '    case "$cmd:$prev" in',
        *values,
        "    esac",
        '    case "$cmd" in',
        *options,
        "    esac",
        '    if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts --help" -- "$cur")); return; fi',
        f'    case "$cmd" in {spec_cmds})',
        f'        COMPREPLY=($(compgen -W \'{specs}\' -- "$cur") $(compgen -f -X \'!*.y*ml\' -- "$cur") $(compgen -d -- "$cur")) ;;',
        '    *) COMPREPLY=($(compgen -f -- "$cur")) ;;',
        "    esac",
        "}",
        "complete -o filenames -F _netspec netspec",
    ]
    return "\n".join(lines) + "\n"


def _fish(cmds: list[Command]) -> str:
    def quote(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    lines = ["# netspec completion (fish): netspec completion fish | source", "complete -c netspec -f"]
    for c in cmds:
        lines.append(f"complete -c netspec -n __fish_use_subcommand -a {c.name} -d {quote(c.help)}")
        when = f"-n '__fish_seen_subcommand_from {c.name}'"
        for o in c.options:
            spelled = " ".join(f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}" for f in o.flags)
            value = {"choice": f" -xa {quote(' '.join(o.choices))}", "file": " -r -F", "any": " -x", "": ""}[o.value]
            lines.append(f"complete -c netspec {when} {spelled}{value}")
        if c.takes_spec:
            lines.append(f"complete -c netspec {when} -a {quote(' '.join(zoo.names()))}")
            lines.append(f"complete -c netspec {when} -a '(__fish_complete_suffix .yaml)'")
    return "\n".join(lines) + "\n"
