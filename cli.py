"""The ``netspec`` command: a thin layer over the Python API.

It parses arguments, calls the library and formats its output. A mistake in a spec or
on the command line prints ``path:line:col: error: message`` and exits with 2; an
internal failure prints one line and exits with 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
from collections.abc import Sequence
from typing import Any


def _skip_pydantic_plugin_scan() -> None:
    """pydantic looks for plugins among the installed packages' entry points when it
    builds its first validator; importing importlib.metadata for that costs ~60 ms, an
    eighth of a summary's time budget. The CLI process uses no pydantic plugins, so it
    answers "none" without that import (set NETSPEC_PYDANTIC_PLUGINS=1 to scan)."""
    if os.environ.get("NETSPEC_PYDANTIC_PLUGINS") or "pydantic.plugin._loader" in sys.modules:
        return
    stub = types.ModuleType("pydantic.plugin._loader")
    stub.get_plugins = lambda: ()  # type: ignore[attr-defined]
    sys.modules[stub.__name__] = stub


_skip_pydantic_plugin_scan()

from netspec import Location, SpecError, __version__, analyze, format_analysis, load  # noqa: E402
from netspec.spec.load import parse_override  # noqa: E402
from netspec.spec.recipe import Recipe  # noqa: E402
from netspec.summary import COLUMNS, DEFAULT_COLUMNS, DTYPES, FORMATS, View  # noqa: E402

#: a few real invocations of each command, for its --help
EXAMPLES = {
    "summary": [
        "netspec summary resnet50 --depth 1",
        "netspec summary vgg16 --set classes=10 --set resolution=32 --columns shape,attrs,params,memory",
        "netspec summary my_net.yaml --format json --batch 64 --dtype bfloat16",
    ],
    "check": ["netspec check specs/*.yaml", "netspec check my_net.yaml --set width=2"],
    "zoo": ["netspec zoo", "netspec zoo --format json"],
    "schema": ["netspec schema > netspec.schema.json"],
    "completion": ['eval "$(netspec completion bash)"   # in ~/.bashrc', "netspec completion fish | source"],
    "run": ["netspec run edges.yaml --input image.npy", "netspec run lenet5 --input digit.png --weights best.pt"],
    "diff": ["netspec diff resnet18 resnet34 --depth 1", "netspec diff my_net.yaml my_net.yaml --set width=2"],
    "vars": ["netspec vars efficientnet_b0 --set variant=b3", "netspec vars my_net.yaml --format json"],
    "compile": [
        "netspec compile resnet18 -o resnet18.py",
        "netspec compile resnet18 -o resnet18.onnx --weights resnet18.pth",
    ],
    "render": [
        "netspec render resnet18 -o resnet18.svg --depth 2",
        "netspec render resnet50 -o block.svg --block bottleneck --show shapes",
        "netspec render vgg16 -o vgg16.png --wrap 12",
    ],
    "train": [
        "netspec train lenet5",
        "netspec train my_net.yaml --data cifar.npz --epochs 30 --lr 0.1 --optimizer sgd",
        "netspec train --resume runs/my_net/1",
        "netspec train resnet18 --weights resnet18.pth --set classes=2 --data pets/ --freeze backbone --unfreeze 3:layer4,6:all",
        "netspec train resnet18 --devices 2 --batch-size 256   # data-parallel, through torchrun",
    ],
    "eval": [
        "netspec eval lenet5 --weights runs/lenet5/1/best.pt",
        "netspec eval my_net.yaml --weights runs/my_net/1/best.pt --data cifar.npz --json",
    ],
    "predict": [
        "netspec predict lenet5 --weights runs/lenet5/1/best.pt digit.png",
        "netspec predict my_net.yaml --weights model.pt --classes classes.txt a.jpg b.jpg --json",
    ],
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="netspec", description="Neural networks as YAML specs: analyse, compile, draw.")
    p.add_argument("--version", action="version", version=f"netspec {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_set(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--set", action="append", default=[], metavar="NAME=VALUE", help="override a variable of the spec's params"
        )

    s = sub.add_parser("summary", help="per-layer table of shapes, parameters and MACs")
    s.add_argument("spec", help="a spec file, or the name of a built-in spec (see 'netspec zoo')")
    s.add_argument("--format", "-f", choices=FORMATS, default="table")
    s.add_argument(
        "--depth",
        "-d",
        type=_depth,
        metavar="N",
        help="collapse blocks: one row per name prefix of N parts (1: per stage, 2: per block instance)",
    )
    s.add_argument(
        "--columns",
        "-c",
        type=_columns,
        default=DEFAULT_COLUMNS,
        metavar="LIST",
        help=f"table and markdown columns, of {','.join(COLUMNS)} (default: {','.join(DEFAULT_COLUMNS)})",
    )
    s.add_argument("--batch", type=_depth, default=1, metavar="N", help="batch size of the memory figures (default 1)")
    s.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="dtype of the memory figures")
    with_set(s)

    c = sub.add_parser("check", help="validate specs (exit 2 if any has an error)")
    c.add_argument("specs", nargs="+", metavar="spec")
    with_set(c)

    z = sub.add_parser("zoo", help="list the built-in specs with their parameters and MACs")
    z.add_argument("--format", "-f", choices=("table", "json"), default="table")

    sub.add_parser("schema", help="print the JSON Schema of the spec language (for editors' YAML support)")

    sh = sub.add_parser("completion", help='print a shell completion script: eval "$(netspec completion bash)"')
    sh.add_argument("shell", choices=("bash", "zsh", "fish"))

    u = sub.add_parser("run", help="run a spec on an input file (.npy or an image) and print its outputs")
    u.add_argument("spec")
    u.add_argument(
        "--input", "-i", action="append", required=True, metavar="[NAME=]FILE", help="the input (repeat: one per input)"
    )
    u.add_argument("--weights", "-w", metavar="CKPT", help="a state_dict or checkpoint (.pt, .pth, .safetensors)")
    u.add_argument("--top", type=_depth, default=5, metavar="K", help="classes shown of a classifier's output")
    with_set(u)

    d = sub.add_parser("diff", help="what changes from spec A to spec B: layers added, removed, changed; totals")
    d.add_argument("a", metavar="A")
    d.add_argument("b", metavar="B")
    d.add_argument("--format", "-f", choices=("table", "json", "markdown"), default="table")
    d.add_argument("--depth", "-d", type=_depth, metavar="N", help="compare name prefixes of N parts (1: stages)")
    d.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="set a variable of B (repeatable)")
    d.add_argument("--set-a", action="append", default=[], metavar="NAME=VALUE", help="set a variable of A")

    v = sub.add_parser("vars", help="a spec's variables: value in force, default, type, variants, where each is used")
    v.add_argument("spec")
    v.add_argument("--format", "-f", choices=("table", "json"), default="table")
    with_set(v)

    k = sub.add_parser(
        "compile", help="write standalone PyTorch source (.py), an initialised state_dict (.pt) or ONNX (.onnx)"
    )
    k.add_argument("spec", help="a spec file, or the name of a built-in spec")
    k.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="model.py (source), model.pt (state_dict) or model.onnx; default: source to stdout",
    )
    k.add_argument(
        "--init",
        choices=("torchvision", "pytorch"),
        help="weight initialisation (default: the spec's 'init', else torchvision)",
    )
    k.add_argument("--weights", metavar="CKPT", help="load this state_dict (keys by name, else by order and shape)")
    k.add_argument("--device", help="build on this device (e.g. cpu, cuda:0)")
    k.add_argument("--dtype", help="float32 (default), bfloat16, float16 or float64")
    o = k.add_argument_group("ONNX (-o model.onnx)")
    o.add_argument("--opset", type=int, metavar="N", help="ONNX opset (default 17)")
    o.add_argument("--dynamic-batch", action="store_true", help="a symbolic batch axis 'N' (default: batch 1)")
    o.add_argument(
        "--seed", type=int, metavar="N", help="without --weights: torch.manual_seed(N) before init (default 0)"
    )
    o.add_argument(
        "--no-weights", action="store_true", help="structure only: parameters become graph inputs; needs no torch"
    )
    with_set(k)

    r = sub.add_parser("render", help="draw the graph with Graphviz (.svg, .png, .pdf, or .dot source)")
    r.add_argument("spec", help="a spec file, or the name of a built-in spec")
    r.add_argument("-o", "--output", metavar="FILE", required=True, help="out.svg, out.png, out.pdf or out.dot")
    r.add_argument(
        "--depth", "-d", type=_depth, metavar="N", help="collapse name prefixes of N parts into one node (as summary)"
    )
    r.add_argument("--rankdir", choices=("TB", "LR"), default="TB", help="top to bottom (default) or left to right")
    r.add_argument("--show", default="", metavar="LIST", help="add to layer nodes: params,macs,shapes")
    r.add_argument("--block", metavar="NAME", help="draw one block's body (from its first instance) instead")
    r.add_argument("--wrap", type=_depth, metavar="N", help="lay a long network out in columns of about N nodes")
    with_set(r)

    t = sub.add_parser("train", help="train a spec (default: on the bundled digits) into a run directory")
    t.add_argument("spec", nargs="?", help="a spec file, or the name of a built-in spec")
    t.add_argument(
        "--data",
        default="digits",
        help="'digits' (bundled, the default), an .npz, an image folder or CIFAR-10's binary folder",
    )
    t.add_argument("--weights", metavar="CKPT", help="fine-tune from a checkpoint: every tensor that fits is loaded")
    t.add_argument("--out", default="runs", metavar="DIR", help="runs go to DIR/<spec>/<n>/ (default: runs)")
    t.add_argument("--name", metavar="NAME", help="the run's directory name instead of the next number")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last.pt with its own recipe")
    t.add_argument("--print-config", action="store_true", help="print the resolved recipe and variables, and stop")
    t.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if there is one)")
    t.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    t.add_argument(
        "--devices", type=int, metavar="N", help="data-parallel in N processes on this machine (through torchrun)"
    )
    g = t.add_argument_group("recipe (flags win over the spec's train: section)")
    for key, info in Recipe.model_fields.items():
        flag, dest = "--" + key.replace("_", "-"), "recipe_" + key
        if info.annotation is bool:
            g.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None)
        elif key in ("freeze", "unfreeze", "lr_groups"):
            g.add_argument(flag, dest=dest, metavar="LIST", help=f"e.g. {_TRANSFER_EXAMPLES[key]}")
        elif key == "augment":
            g.add_argument(
                flag, dest=dest, metavar="LIST", help="augmentation names, e.g. flip,crop ('none': no augmentation)"
            )
        else:
            g.add_argument(flag, dest=dest, metavar=key.upper(), help=f"default {info.default}")
    with_set(t)

    ev = sub.add_parser("eval", help="a spec's trained weights on a data set's test split: loss, accuracy, confusion")
    ev.add_argument("spec", help="a spec file, or the name of a built-in spec")
    ev.add_argument("--weights", required=True, metavar="CKPT", help="a run's best.pt/last.pt, or a state_dict .pt")
    ev.add_argument("--data", default="digits", help="as for train (default: digits, the run's test split)")
    ev.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if there is one)")
    ev.add_argument("--batch-size", type=int, default=256, metavar="N", help="images per forward pass (default 256)")
    ev.add_argument("--json", action="store_true", help="print JSON")
    with_set(ev)

    pr = sub.add_parser("predict", help="the most probable classes of image files under a spec's trained weights")
    pr.add_argument("spec", help="a spec file, or the name of a built-in spec")
    pr.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    pr.add_argument("--weights", required=True, metavar="CKPT", help="a run's best.pt/last.pt, or a state_dict .pt")
    pr.add_argument("--classes", metavar="FILE", help="class names, one a line (default: the checkpoint's)")
    pr.add_argument("--top", type=int, default=5, metavar="K", help="classes shown per image (default 5)")
    pr.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if there is one)")
    pr.add_argument("--json", action="store_true", help="print JSON")
    with_set(pr)
    for name, example in EXAMPLES.items():  # shown under each command's --help
        command = sub.choices[name]
        command.epilog = "examples:\n" + "\n".join(f"  {line}" for line in example)
        command.formatter_class = argparse.RawDescriptionHelpFormatter
    return p


def _depth(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _overrides(items: list[str]) -> dict[str, Any]:
    return dict(parse_override(item) for item in items)


def _columns(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())  # checked by View, with a did-you-mean


def cmd_summary(args: argparse.Namespace) -> int:
    analysis = analyze(args.spec, _overrides(args.set))
    view = View(columns=args.columns, batch=args.batch, dtype=args.dtype)
    sys.stdout.write(format_analysis(analysis, args.format, args.depth, view))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    overrides = _overrides(args.set)
    failed = 0
    for spec in args.specs:
        try:
            a = analyze(spec, overrides)
        except SpecError as e:
            failed += 1
            print(e.format(), file=sys.stderr)
            continue
        t = a.totals
        print(f"{a.path}: ok ({len(a.layers)} layers, {t.params:,} params, {t.macs:,} MACs)")
    return 2 if failed else 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from netspec import zoo

    rows = []
    for name in zoo.names():
        a = analyze(name)
        t = a.totals
        shape = "x".join(str(d) for v in a.inputs.values() for d in v)
        rows.append((name, shape, t.params, t.macs, a.description))
    if args.format == "json":
        import json

        keys = ("name", "input", "params", "macs", "description")
        print(json.dumps([dict(zip(keys, row)) for row in rows], indent=2))
        return 0
    head = ("Spec", "Input", "Params", "MACs", "Description")
    cells = [head] + [(n, s, f"{p:,}", f"{m:,}", d) for n, s, p, m, d in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    for k, r in enumerate(cells):
        print("  ".join(c.rjust(w) if i in (2, 3) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    return 0


def cmd_vars(args: argparse.Namespace) -> int:
    from netspec.variables import format_variables, variables_dict

    spec = load(args.spec, _overrides(args.set))
    text = json.dumps(variables_dict(spec), indent=1) + "\n" if args.format == "json" else format_variables(spec)
    sys.stdout.write(text)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from netspec.backends import run  # torch is imported only for this command

    analysis = analyze(args.spec, _overrides(args.set))
    inputs: dict[str, str] = {}
    for item in args.input:
        name, _, path = item.partition("=")
        if path and name in analysis.inputs:
            inputs[name] = path
        elif len(analysis.inputs) == 1:
            inputs[next(iter(analysis.inputs))] = item
        else:
            raise SpecError(
                f"--input {item!r}: name the input it is for",
                hint=f"--input NAME=FILE, NAME one of: {', '.join(analysis.inputs)}",
            )
    sys.stdout.write(run.format_outputs(analysis, run.run(analysis, inputs, args.weights), args.top))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from netspec.diff import format_diff

    a, b = analyze(args.a, _overrides(args.set_a)), analyze(args.b, _overrides(args.set))
    sys.stdout.write(format_diff(a, b, args.format, args.depth))
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    from netspec.completion import script

    sys.stdout.write(script(args.shell, _parser()))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from netspec.schema import spec_schema

    sys.stdout.write(json.dumps(spec_schema(), indent=1) + "\n")
    return 0


def cmd_compile_onnx(args: argparse.Namespace) -> int:
    from netspec.backends import onnx as onnx_backend  # imports torch only to read or make weights

    for flag, value in (("--device", args.device), ("--dtype", args.dtype)):
        if value is not None:
            raise SpecError(f"{flag} does not apply to ONNX output (the model is float32, device-neutral)")
    onnx_backend.export(
        args.spec,
        args.output,
        _overrides(args.set),
        weights=args.weights,
        seed=0 if args.seed is None else args.seed,
        init=args.init,
        opset=onnx_backend.DEFAULT_OPSET if args.opset is None else args.opset,
        dynamic_batch=args.dynamic_batch,
        structure_only=args.no_weights,
    )
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    if args.output is not None and os.path.splitext(args.output)[1] == ".onnx":
        return cmd_compile_onnx(args)
    for flag, value in (("--opset", args.opset), ("--seed", args.seed)):
        if value is not None:
            raise SpecError(f"{flag} applies to ONNX output only (-o model.onnx)")
    for flag, on in (("--dynamic-batch", args.dynamic_batch), ("--no-weights", args.no_weights)):
        if on:
            raise SpecError(f"{flag} applies to ONNX output only (-o model.onnx)")
    from netspec.backends import torch as backend  # torch is imported only for this command

    source = backend.write(
        args.spec,
        args.output,
        _overrides(args.set),
        weights=args.weights,
        init=args.init,
        device=args.device,
        dtype=args.dtype,
        note=lambda line: print(line, file=sys.stderr),
    )
    if args.output is None:
        sys.stdout.write(source)
    else:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from netspec.backends import graphviz as backend  # graphviz is imported only for this command

    path = backend.render(
        args.spec,
        args.output,
        _overrides(args.set),
        depth=args.depth,
        rankdir=args.rankdir,
        show=args.show,
        block=args.block,
        wrap=args.wrap,
    )
    print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from netspec.backends import train as training  # torch is imported only for this command

    recipe: dict[str, Any] = {}
    for key in Recipe.model_fields:
        value = getattr(args, "recipe_" + key)
        if value is None:
            continue
        if key == "augment":
            value = [] if value.strip() == "none" else [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, str) and value.lower() in ("none", "null"):
            value = None  # --grad-clip none
        recipe[key] = value
    options: dict[str, Any] = {"recipe": recipe, "params": _overrides(args.set), "flags": True}
    if args.weights is not None:
        options["weights"] = args.weights
    if args.devices is not None and "WORLD_SIZE" not in os.environ:  # not yet under torchrun
        from netspec.backends.train import distributed

        distributed.check_devices(args.devices, args.device)
        if args.devices > 1:
            return distributed.launch(args.devices, _without_devices(args.argv))
    if args.print_config:
        sys.stdout.write(training.config_text(args.spec, args.data, resume=args.resume, device=args.device, **options))
        return 0
    training.train(
        args.spec,
        args.data,
        out=args.out,
        name=args.name,
        resume=args.resume,
        device=args.device,
        quiet=args.quiet,
        **options,
    )
    return 0


_TRANSFER_EXAMPLES = {
    "freeze": "backbone or layer1,conv1",
    "unfreeze": '"3:layer4,6:all"',
    "lr_groups": "layer4=0.1,fc=1",
}


def _without_devices(argv: Sequence[str]) -> list[str]:
    """The command line minus ``--devices N``: what each process runs."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--devices":
            skip = True
        elif not arg.startswith("--devices="):
            out.append(arg)
    return out


def cmd_eval(args: argparse.Namespace) -> int:
    from netspec.backends.train import evaluate as ev  # torch is imported only for this command

    if args.batch_size < 1:
        raise SpecError("must be at least 1", Location("--batch-size"))
    result = ev.evaluate(
        args.spec, args.weights, args.data, params=_overrides(args.set), device=args.device, batch_size=args.batch_size
    )
    print(json.dumps(result.as_dict(), indent=2) if args.json else ev.format_evaluation(result))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from netspec.backends.train import evaluate as ev  # torch is imported only for this command

    if args.top < 1:
        raise SpecError("must be at least 1", Location("--top"))
    found = ev.predict(
        args.spec,
        args.weights,
        args.images,
        classes=args.classes,
        top=args.top,
        params=_overrides(args.set),
        device=args.device,
    )
    if args.json:
        print(json.dumps([p.as_dict() for p in found], indent=2))
    else:
        print(ev.format_predictions(found))
    return 0


#: the extra that brings each optional library a command may need
EXTRAS = {
    "torch": "torch",
    "numpy": "onnx",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "safetensors": "onnx",
    "graphviz": "render",
    "networkx": "graph",
    "sklearn": "train",
    "PIL": "images",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return {
            "summary": cmd_summary,
            "check": cmd_check,
            "zoo": cmd_zoo,
            "schema": cmd_schema,
            "completion": cmd_completion,
            "vars": cmd_vars,
            "diff": cmd_diff,
            "run": cmd_run,
            "compile": cmd_compile,
            "render": cmd_render,
            "train": cmd_train,
            "eval": cmd_eval,
            "predict": cmd_predict,
        }[args.command](args)
    except SpecError as e:
        print(e.format(), file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as e:
        extra = EXTRAS.get((e.name or "").split(".")[0])
        if extra is None or args.debug:
            raise
        print(
            f"netspec {args.command}: error: this needs {e.name}, which is not installed\n"
            f"  hint: pip install 'netspec[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except Exception as e:  # an internal failure: a bug in netspec, not the user's mistake
        if args.debug:
            raise
        print(f"netspec: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
