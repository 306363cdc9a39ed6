"""The PyTorch backend: a spec becomes an ``nn.Module`` (or its standalone source).

The backend writes Python source for the whole module, a class whose ``__init__``
builds the layers that have parameters and whose ``forward`` runs the graph as a
straight-line list of statements in the analysis' topological order, then executes
that source. The in-memory module and the file ``netspec compile -o model.py``
writes are therefore the same code, and the forward has no Python control flow at
all: ``torch.compile(fullgraph=True)`` and ``torch.export`` see one static graph.

* Dispatch goes through ``LOWERINGS``, a table keyed by op name (aliases included);
  each entry turns a node's attributes and inferred shapes into a module constructor
  (layers with parameters or buffers) or a functional expression (everything else,
  which adds no ``state_dict`` keys).
* Names carry through: a node ``layer2.0.conv1`` is registered as
  ``self.layer2["0"]["conv1"]`` (nested ``nn.ModuleDict`` containers per dotted
  component), so its ``state_dict`` keys are exactly ``layer2.0.conv1.weight`` ...
* Memory: each intermediate is deleted right after its last use (liveness from the
  graph order), and activations run in place when that is safe (see ``_plan``), so
  the forward keeps what a hand-written module keeps.
* Initialisation: ``torchvision`` (kaiming normal, fan out, for convolutions; ones
  and zeros for batch norm; normal(0, 0.01) and zero bias for linear layers) or
  ``pytorch`` (each module's own default). With ``torchvision`` the modules are
  built on the meta device and then initialised once, instead of running PyTorch's
  default initialisation first and overwriting it as hand-written modules do.

Values written into the generated source are ints, floats, booleans, tuples of them
and string literals, all rendered with ``repr`` from validated attribute models, and
layer names appear only as string literals or as sanitised identifiers, so nothing
in a spec can inject code.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import io
import itertools
import json
import keyword
import linecache
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from netspec import plugins
from netspec.analysis import Analysis
from netspec.backends.common import analysis_of, check_directory, match_keys, shape_of, write_atomic
from netspec.errors import Location, SpecError
from netspec.graph.ir import Node
from netspec.names import NESTED_RESERVED, ROOT_RESERVED, reserved_error, reserved_why
from netspec.ops import REGISTRY, Shape, op_names
from netspec.ops.conv2d import Conv2d
from netspec.ops.slice import Slice
from netspec.passes.init import InitRule
from netspec.spec.init import SCHEMES
from netspec.spec.load import Spec

if TYPE_CHECKING:  # torch is imported where it is used: writing source needs none
    import torch
    from torch import nn

INITS = SCHEMES  # the schemes a model is built with (a spec may add rules: netspec/spec/init.py)


# --- lowerings -------------------------------------------------------------------


@dataclass(frozen=True)
class Ctx:
    """What a lowering sees of one node."""

    attrs: Any  # the op's validated attribute model
    ins: list[Shape]  # per-sample input shapes
    out: Shape  # per-sample output shape
    args: list[str]  # source expressions of the inputs
    module: str  # source expression of the node's own module (when it has one)
    inplace: bool  # the (single) input may be overwritten


@dataclass(frozen=True)
class Emit:
    """A lowering's result: the forward expression, and for a layer with parameters
    or buffers the constructor of its module, the statements (on ``m``, the module)
    that initialise every one of its tensors under the torchvision scheme, and any
    fixed values of its tensors.

    Under that scheme modules are built on the meta device and materialised with
    ``torch.empty``: a module without ``init`` would keep uninitialised memory as
    weights, so lowering one is an error (``_Layers.add_module``)."""

    expr: str
    module: str | None = None  # e.g. "nn.Conv2d(3, 64, 3, padding=1, **kw)"
    init: tuple[str, ...] | None = None  # e.g. ("nn.init.zeros_(m.bias)",)
    fixed: dict[str, Any] = field(default_factory=dict)  # tensor name -> nested values


@dataclass(frozen=True)
class Lowering:
    emit: Callable[[Ctx], Emit]
    #: the output is a new tensor that autograd does not keep and that aliases no
    #: input, so a consumer may overwrite it in place
    fresh: bool = False
    #: the op can run in place on its (single) input
    can_inplace: bool = False


def _lit(value: Any) -> str:
    """Python source for a plain value (strings double-quoted, as ruff formats them)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_lit(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _r(value: Any) -> str:
    """Source for an attribute: a square pair is written as one int, as people write it."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1] and isinstance(value[0], int):
        return repr(value[0])
    return _lit(value)


def _kwargs(pairs: list[tuple[str, Any, Any]]) -> str:
    """``, name=value`` for each (name, value, default) whose value is not the default."""
    return "".join(f", {k}={_r(v)}" for k, v, default in pairs if v != default)


#: torchvision's rules (its ResNet, VGG, DenseNet): He normal for kernels, N(0, 0.01)
#: for linear weights, zero biases; norm layers start at weight 1, bias 0
_CONV_INIT = (
    'nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
    "if m.bias is not None:",
    "    nn.init.zeros_(m.bias)",
)
_LINEAR_INIT = ("nn.init.normal_(m.weight, 0.0, 0.01)", "if m.bias is not None:", "    nn.init.zeros_(m.bias)")
_NORM_INIT = ("m.reset_parameters()  # weight 1, bias 0, fresh running statistics",)

#: the ``pytorch`` initializer of an init rule: what the module's own constructor does
#: to each tensor, as one statement on ``m``
_WEIGHT_DEFAULT = "nn.init.kaiming_uniform_(m.weight, a=5**0.5)"
_BIAS_DEFAULT = "nn.init.uniform_(m.bias, -(m.weight[0].numel() ** -0.5), m.weight[0].numel() ** -0.5)"
PYTORCH_DEFAULTS: dict[str, dict[str, str]] = {
    "conv2d": {"weight": _WEIGHT_DEFAULT, "bias": _BIAS_DEFAULT},
    "linear": {"weight": _WEIGHT_DEFAULT, "bias": _BIAS_DEFAULT},
    "batchnorm": {"weight": "nn.init.ones_(m.weight)", "bias": "nn.init.zeros_(m.bias)"},
}


def _conv2d(c: Ctx) -> Emit:
    a = c.attrs
    c_out, groups = Conv2d.resolve(a, c.ins[0][0])
    extra = _kwargs(
        [
            ("stride", a.stride, (1, 1)),
            ("padding", a.padding, (0, 0)),
            ("dilation", a.dilation, (1, 1)),
            ("groups", groups, 1),
            ("bias", bool(a.bias), True),
        ]
    )
    fixed: dict[str, Any] = {}
    if a.weight is not None:
        fixed["weight"] = a.weight
    if isinstance(a.bias, tuple):
        fixed["bias"] = a.bias
    module = f"nn.Conv2d({c.ins[0][0]}, {c_out}, {_r(a.kernel)}{extra}, **kw)"
    return Emit(f"{c.module}({c.args[0]})", module, _CONV_INIT, fixed)


def _linear(c: Ctx) -> Emit:
    a = c.attrs
    module = f"nn.Linear({c.ins[0][-1]}, {a.out}{_kwargs([('bias', a.bias, True)])}, **kw)"
    return Emit(f"{c.module}({c.args[0]})", module, _LINEAR_INIT)


def _batchnorm(c: Ctx) -> Emit:
    a = c.attrs
    kind = "nn.BatchNorm2d" if len(c.ins[0]) == 3 else "nn.BatchNorm1d"
    extra = _kwargs(
        [
            ("eps", a.eps, 1e-5),
            ("momentum", a.momentum, 0.1),
            ("affine", a.affine, True),
            ("track_running_stats", a.track_running_stats, True),
        ]
    )
    return Emit(f"{c.module}({c.args[0]})", f"{kind}({c.ins[0][0]}{extra}, **kw)", _NORM_INIT)


def _maxpool2d(c: Ctx) -> Emit:
    a = c.attrs
    extra = _kwargs(
        [
            ("stride", a.stride or a.kernel, a.kernel),
            ("padding", a.padding, (0, 0)),
            ("dilation", a.dilation, (1, 1)),
            ("ceil_mode", a.ceil_mode, False),
        ]
    )
    return Emit(f"F.max_pool2d({c.args[0]}, {_r(a.kernel)}{extra})")


def _avgpool2d(c: Ctx) -> Emit:
    a = c.attrs
    extra = _kwargs(
        [
            ("stride", a.stride or a.kernel, a.kernel),
            ("padding", a.padding, (0, 0)),
            ("ceil_mode", a.ceil_mode, False),
            ("count_include_pad", a.count_include_pad, True),
        ]
    )
    return Emit(f"F.avg_pool2d({c.args[0]}, {_r(a.kernel)}{extra})")


def _global(fn: str) -> Callable[[Ctx], Emit]:
    def emit(c: Ctx) -> Emit:
        pooled = f"{fn}({c.args[0]}, 1)"
        return Emit(f"torch.flatten({pooled}, 1)" if c.attrs.flatten else pooled)

    return emit


def _adaptive_avgpool2d(c: Ctx) -> Emit:
    return Emit(f"F.adaptive_avg_pool2d({c.args[0]}, {_r(c.attrs.size)})")


def _flatten(c: Ctx) -> Emit:
    return Emit(f"torch.flatten({c.args[0]}, {c.attrs.start_dim}{_kwargs([('end_dim', c.attrs.end_dim, -1)])})")


def _dropout(c: Ctx) -> Emit:
    return Emit(f"F.dropout({c.args[0]}, {c.attrs.p!r}, self.training)")


def _lrn(c: Ctx) -> Emit:
    a = c.attrs
    return Emit(f"F.local_response_norm({c.args[0]}, {a.size}, alpha={a.alpha!r}, beta={a.beta!r}, k={a.k!r})")


def _activation(fn: str, *extra: str) -> Callable[[Ctx], Emit]:
    """An element-wise activation ``fn(x, <attrs>, inplace=...)``."""

    def emit(c: Ctx) -> Emit:
        args = "".join(f", {getattr(c.attrs, name)!r}" for name in extra)
        return Emit(f"{fn}({c.args[0]}{args}{', inplace=True' if c.inplace else ''})")

    return emit


def _plain(fn: str) -> Callable[[Ctx], Emit]:
    return lambda c: Emit(f"{fn}({c.args[0]})")


def _softmax(c: Ctx) -> Emit:
    return Emit(f"torch.softmax({c.args[0]}, {c.attrs.dim})")


def _gelu(c: Ctx) -> Emit:
    return Emit(f"F.gelu({c.args[0]}{_kwargs([('approximate', c.attrs.approximate, 'none')])})")


def _slice(c: Ctx) -> Emit:
    lo, hi = Slice.bounds(c.attrs, c.ins[0][0])
    return Emit(f"{c.args[0]}[:, {lo}:{hi}]")


def _clamp(c: Ctx) -> Emit:
    bounds = "".join(f", {k}={v!r}" for k, v in (("min", c.attrs.min), ("max", c.attrs.max)) if v is not None)
    return Emit(f"torch.clamp({c.args[0]}{bounds})")


def _channel_shuffle(c: Ctx) -> Emit:
    # the [N, g, C/g, ...] view transposed and merged back (torchvision's ShuffleNetV2)
    g = c.attrs.groups
    return Emit(f"torch.flatten({c.args[0]}.unflatten(1, ({g}, {c.ins[0][0] // g})).transpose(1, 2), 1, 2)")


def _reshape(c: Ctx) -> Emit:
    return Emit(f"{c.args[0]}.reshape({c.args[0]}.shape[0], {', '.join(map(str, c.out))})")


def _permute(c: Ctx) -> Emit:
    return Emit(f"{c.args[0]}.permute(0, {', '.join(str(d + 1) for d in c.attrs.dims)})")


def _pad(c: Ctx) -> Emit:
    return Emit(f"F.pad({c.args[0]}, {_lit(c.attrs.padding)}{_kwargs([('value', c.attrs.value, 0.0)])})")


def _crop(c: Ctx) -> Emit:
    left, right, top, bottom = c.attrs.crop
    _, h, w = c.ins[0]
    rows = f"{top or ''}:{h - bottom if bottom else ''}"
    cols = f"{left or ''}:{w - right if right else ''}"
    return Emit(f"{c.args[0]}[:, :, {rows}, {cols}]")


def _input(c: Ctx) -> Emit:
    return Emit("")  # graph inputs are the forward's arguments


LOWERINGS: dict[str, Lowering] = {
    "input": Lowering(_input),
    "conv2d": Lowering(_conv2d, fresh=True),
    "linear": Lowering(_linear, fresh=True),
    "batchnorm": Lowering(_batchnorm, fresh=True),
    "maxpool2d": Lowering(_maxpool2d, fresh=True),
    "avgpool2d": Lowering(_avgpool2d, fresh=True),
    "adaptive_avgpool2d": Lowering(_adaptive_avgpool2d, fresh=True),
    "global_avgpool": Lowering(_global("F.adaptive_avg_pool2d"), fresh=True),
    # autograd keeps the indices of max pooling, not its output; staying conservative
    "global_maxpool": Lowering(_global("F.adaptive_max_pool2d")),
    "flatten": Lowering(_flatten),  # a view of its input
    "dropout": Lowering(_dropout),  # returns its input itself in eval mode
    "lrn": Lowering(_lrn),
    "relu": Lowering(_activation("F.relu"), can_inplace=True),
    "relu6": Lowering(_activation("F.relu6"), can_inplace=True),
    "leaky_relu": Lowering(_activation("F.leaky_relu", "negative_slope"), can_inplace=True),
    "silu": Lowering(_activation("F.silu"), can_inplace=True),
    "hardswish": Lowering(_activation("F.hardswish"), can_inplace=True),
    "hardsigmoid": Lowering(_activation("F.hardsigmoid"), can_inplace=True),
    "hardtanh": Lowering(_activation("F.hardtanh", "min_val", "max_val"), can_inplace=True),
    # clamp's backward reads its input, not its output: a consumer may overwrite it
    "clamp": Lowering(_clamp, fresh=True),
    "sigmoid": Lowering(_plain("torch.sigmoid")),  # autograd keeps their outputs:
    "tanh": Lowering(_plain("torch.tanh")),  # never overwritten in place
    "softmax": Lowering(_softmax),
    "gelu": Lowering(_gelu),
    "add": Lowering(lambda c: Emit(" + ".join(c.args)), fresh=True),
    "multiply": Lowering(lambda c: Emit(" * ".join(c.args)), fresh=True),
    "concat": Lowering(lambda c: Emit(f"torch.cat([{', '.join(c.args)}], {c.attrs.dim})"), fresh=True),
    "channel_shuffle": Lowering(_channel_shuffle),  # a view where a group or a row is one channel
    "reshape": Lowering(_reshape),  # views of their input
    "permute": Lowering(_permute),
    "crop": Lowering(_crop),
    "pad": Lowering(_pad, fresh=True),
    "slice": Lowering(_slice),  # a view of its input
}


def _plugin_value(value: Any, node: Node) -> str:
    """A constructor argument a plugin computed, as source: plain values only."""
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_plugin_value(v, node) for v in value) + ("," if len(value) == 1 else "") + ")"
    if value is None or isinstance(value, (bool, int, float, str)):
        return _lit(value)
    plugin = plugins.plugin_of(node.op)
    raise SpecError(
        f"layer '{node.name}': the torch_module arguments of op '{node.op}' (plugin "
        f"{plugin.source if plugin else '?'}) hold a {type(value).__name__}: only numbers, booleans, strings "
        "and tuples of them can be written into the source",
        node.location,
        layer=node.name,
    )


def _plugin_lowering(node: Node) -> Lowering | None:
    """A plugin op's lowering: its module class (reached through the plugin's import in
    the source), built with the keyword arguments its plugin computes for the layer,
    initialised under the torchvision scheme by ``reset_module``."""
    found = plugins.backend_lowering("torch", node.op, node.name, node.location)
    plugin = plugins.plugin_of(node.op)
    if found is None or plugin is None:
        return None
    module: plugins.TorchModule = found

    def emit(c: Ctx) -> Emit:
        kwargs = module.args(c.attrs, c.ins, c.out)
        bad = next((k for k in kwargs if not isinstance(k, str) or not k.isidentifier() or keyword.iskeyword(k)), None)
        if bad is not None:
            raise SpecError(
                f"layer '{node.name}': op '{node.op}' (plugin {plugin.source}) gives {bad!r} as a keyword argument",
                node.location,
                layer=node.name,
            )
        args = ", ".join(f"{k}={_plugin_value(v, node)}" for k, v in kwargs.items())
        constructor = f"{plugin.alias}.{module.class_name}({args}).to(**kw)"
        return Emit(f"{c.module}({', '.join(c.args)})", constructor, ("reset_module(m)",))

    return Lowering(emit)


def missing_lowerings() -> list[str]:
    """Ops (canonical names: nodes carry them, never an alias) that this backend cannot lower."""
    return [name for name in op_names() if name not in LOWERINGS]


# --- source generation -----------------------------------------------------------

#: names the generated file binds or reads at module level or in forward(): a local
#: variable or the class must not shadow them (``class F`` would hide functional,
#: a local ``getattr`` would break ``getattr(self, "class")`` above its assignment)
_SOURCE_NAMES = frozenset({"self", "torch", "nn", "F", "annotations", *dir(builtins)})


@functools.cache
def _reserved(depth: int) -> frozenset[str]:
    """Names the ``depth``-th part of a layer's name cannot take: the core's list (the
    analysis refuses these already) and what the installed torch has beyond it."""
    try:
        from torch import nn
    except ImportError:  # writing source needs no torch; the core's lists cover the releases known
        return ROOT_RESERVED if depth == 0 else NESTED_RESERVED
    if depth == 0:
        return ROOT_RESERVED | frozenset(dir(nn.Module()))
    return NESTED_RESERVED | frozenset(dir(nn.ModuleDict()))


def _attribute(name: str) -> bool:
    """Whether ``self.<name>`` reaches the child module ``name``: an identifier that is
    no keyword and that Python does not mangle inside a class body (``__x``)."""
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__")


def _identifier(name: str, taken: set[str]) -> str:
    """A readable local variable name for a node, unique, and never a keyword, a
    builtin, a name the file uses or one that Python would mangle."""
    base = re.sub(r"\W", "_", name)
    if not base.isidentifier() or base.startswith("__"):
        base = "v" + base
    if keyword.iskeyword(base) or base in _SOURCE_NAMES:
        base += "_"
    ident, k = base, 2
    while ident in taken:
        ident, k = f"{base}_{k}", k + 1
    taken.add(ident)
    return ident


def class_name(name: str) -> str:
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    ident = "".join(w[:1].upper() + w[1:] for w in words) or "Net"
    clash = not ident[0].isalpha() or keyword.iskeyword(ident) or ident in _SOURCE_NAMES
    return "Net" + ident if clash else ident


class _Modules:
    """Registers modules under dotted names in nested nn.ModuleDict containers and
    writes the ``__init__`` lines that do it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.kinds: dict[str, str] = {}  # dotted path -> "dict" (a container) or "leaf"

    @staticmethod
    def _check(node: Node, depth: int, part: str) -> None:
        # The analysis refuses the core's list; this catches a newer torch's additions.
        if part in _reserved(depth):
            raise reserved_error(
                node, depth, reserved_why(part, depth) or "an attribute of the installed PyTorch's modules"
            )

    @staticmethod
    def access(node: Node) -> str:
        """The expression that reaches the node's module in ``forward``."""
        first, *rest = node.name.split(".")
        expr = f"self.{first}" if _attribute(first) else f"getattr(self, {_lit(first)})"
        return expr + "".join(f"[{_lit(part)}]" for part in rest)

    def add(self, node: Node, constructor: str) -> None:
        """Register ``constructor`` under the node's name (containers as needed)."""
        parts = node.name.split(".")
        expr, path = "self", ""
        for depth, part in enumerate(parts):
            self._check(node, depth, part)
            child = f"{path}.{part}" if path else part
            leaf = depth == len(parts) - 1
            kind = self.kinds.get(child)
            if depth:
                access = f"{expr}[{_lit(part)}]"
            else:
                access = f"self.{part}" if _attribute(part) else f"getattr(self, {_lit(part)})"
            if kind is not None and (leaf or kind == "leaf"):
                other = child if kind == "leaf" else f"{child}.*"
                raise SpecError(
                    f"layer '{node.name}' cannot be registered in PyTorch: '{other}' also holds parameters under "
                    f"the name '{child}'",
                    node.location,
                    hint="rename one of the layers so that no layer's name is a prefix of another's",
                    layer=node.name,
                )
            if kind is None:
                value = constructor if leaf else "nn.ModuleDict()"
                if depth == 0 and not _attribute(part):
                    line = f"self.add_module({_lit(part)}, {value})"
                else:
                    line = f"{access} = {value}"
                self.lines.append(line + (f"  # {node.label}" if leaf and node.label else ""))
                self.kinds[child] = "leaf" if leaf else "dict"
            expr, path = access, child


def _lowering(node: Node) -> Lowering:
    lowering = LOWERINGS.get(node.op) or _plugin_lowering(node)
    if lowering is None:
        raise SpecError(
            f"layer '{node.name}': the torch backend has no lowering for op '{node.op}'",
            node.location,
            layer=node.name,
        )
    return lowering


def _values(value: Any) -> str:
    """Nested tuples of floats as list source (integers without a trailing .0)."""
    if isinstance(value, tuple):
        return "[" + ", ".join(_values(v) for v in value) + "]"
    return repr(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)


@dataclass
class _Layers:
    """What the layers put into the source: the ``__init__`` lines that register their
    modules, the forward body, the statements that fix or freeze tensors, and the module
    classes to initialise (in first-use order)."""

    modules: _Modules = field(default_factory=_Modules)
    body: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # module class -> its init

    def add_module(self, node: Node, access: str, emit: Emit) -> None:
        """The node's module (``emit.module``, its constructor) and its initialisation,
        its fixed values, its freezing. A lowering that makes a module without an
        initialisation, or one class with two, is a bug in netspec, not in the spec:
        NotImplementedError (the CLI's "internal error"), not a SpecError."""
        assert emit.module is not None
        self.modules.add(node, emit.module)
        kind = emit.module.split("(", 1)[0]
        if emit.init is None:
            raise NotImplementedError(
                f"the torch backend has no torchvision initialisation for {kind} "
                f"(layer '{node.name}', op '{node.op}'); its lowering must give one (Emit.init)"
            )
        if self.classes.setdefault(kind, emit.init) != emit.init:
            raise NotImplementedError(
                f"two lowerings initialise {kind} differently (layer '{node.name}', op '{node.op}')"
            )
        for tensor, values in emit.fixed.items():
            self.fixed.append(f"{access}.{tensor}.copy_(torch.tensor({_values(values)}))")
        if not node.trainable:
            self.frozen.append(f"{access}.requires_grad_(False)  # trainable: false")


def _lower_layers(analysis: Analysis, shapes: dict[str, Shape], var: dict[str, str]) -> _Layers:
    """Each node's module (if it has one) and its forward statement, each intermediate
    deleted after its last use."""
    graph = analysis.graph
    graph_inputs = set(graph.inputs)
    last = graph.last_use()
    reads = Counter([*(ref for node in graph for ref in node.inputs), *graph.outputs])
    layers = _Layers()
    for i, node in enumerate(graph):
        lowering = _lowering(node)
        if node.name in graph_inputs:
            continue
        # In place only when nothing else reads the input (not even as a graph output),
        # it is not the caller's tensor, and its producer made it fresh (autograd does
        # not keep it and it aliases nothing).
        src = node.inputs[0] if node.inputs else ""
        inplace = (
            lowering.can_inplace
            and len(node.inputs) == 1
            and reads[src] == 1
            and src not in graph_inputs
            and _lowering(graph[src]).fresh
        )
        access = _Modules.access(node)
        ins = [shapes[ref] for ref in node.inputs]
        emit = lowering.emit(Ctx(node.attrs, ins, shapes[node.name], [var[r] for r in node.inputs], access, inplace))
        if emit.module is not None:
            layers.add_module(node, access, emit)
        layers.body.append(f"{var[node.name]} = {emit.expr}")
        dead = [r for r in dict.fromkeys(node.inputs) if last[r] == i]
        if node.name not in last:
            dead.append(node.name)  # computed (the spec has it) but never read
        if dead:
            layers.body.append("del " + ", ".join(var[r] for r in dead))
    return layers


def _header(analysis: Analysis, shapes: dict[str, Shape], name: str) -> list[str]:
    """The module docstring, the imports and the class up to its methods."""
    graph = analysis.graph
    ins_doc = ", ".join(f"{n} [N, {', '.join(map(str, analysis.inputs[n]))}]" for n in graph.inputs)
    outs_doc = ", ".join(f"{n} [N, {', '.join(map(str, shapes[n]))}]" for n in graph.outputs)
    imports = ["", *plugins.source_imports(node.op for node in graph)]  # custom ops' modules, if any
    imports = imports if len(imports) > 1 else []
    return [
        f'"""{analysis.name}: {analysis.description or "a netspec model"}',
        "",
        f"Generated by netspec from {os.path.basename(analysis.path)}; this file needs "
        + ("only torch." if not imports else "torch, and netspec for its plugins."),
        "Modules are registered under the spec's layer names, so the state_dict keys are",
        '"<layer name>.<tensor>" (layer2.0.conv1.weight). Layers without parameters are',
        "plain function calls in forward(), which frees each result after its last use.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import torch",
        "from torch import nn",
        "from torch.nn import functional as F",
        *imports,
        "",
        "",
        f"class {name}(nn.Module):",
        f'    """Inputs: {ins_doc}. Outputs: {outs_doc}."""',
        "",
        f"    INPUTS = {_lit(tuple(graph.inputs))}",
        f"    INPUT_SHAPES = {_lit(tuple(analysis.inputs[n] for n in graph.inputs))}",
        f"    OUTPUTS = {_lit(tuple(graph.outputs))}",
    ]


def _init_method(init: str, layers: _Layers, rules: list[InitRule]) -> list[str]:
    """``__init__``: the modules on the meta device (torchvision scheme), materialised
    and initialised once, then the spec's init rules applied, fixed values set and
    frozen layers frozen."""
    lines = [
        "",
        "    def __init__(",
        f"        self, init: str = {_lit(init)}, device: torch.device | str | None = None, dtype: torch.dtype | None = None",
        "    ) -> None:",
        "        super().__init__()",
        f"        if init not in {_lit(INITS)}:",
        "            raise ValueError(f\"init must be 'torchvision' or 'pytorch', not {init!r}\")",
        "        # The torchvision scheme sets every tensor below, so the modules are built on the",
        "        # meta device (no memory, no default initialisation) and materialised once.",
        '        kw = {"device": "meta" if init == "torchvision" else device, "dtype": dtype}',
        *("        " + line for line in layers.modules.lines),
        '        if init == "torchvision":',
        "            target = torch.empty(0, device=device).device",
        '            if target.type != "meta":  # on the meta device there is nothing to initialise',
        "                # Module.to_empty(device=target), minus its slow path for meta tensors",
        "                self._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device=target))",
        "                self.init_torchvision()",
    ]
    if rules:
        lines += [
            '        if torch.empty(0, device=device).device.type != "meta":',
            "            self.init_rules()  # the spec's init rules, over either scheme",
        ]
    if layers.fixed:
        lines.append("        self.set_fixed_weights()")
    return lines + ["        " + line for line in layers.frozen]


def _set_by_rules(analysis: Analysis, shapes: dict[str, Shape]) -> list[str]:
    """The layers whose every tensor (buffers included) the spec's init rules set: the
    scheme leaves them to the rules rather than initialise them twice."""
    ruled: dict[str, set[str]] = {}
    for rule in analysis.init_rules:
        for name in rule.layers:
            ruled.setdefault(name, set()).add(rule.tensor)
    found = []
    for name, tensors in ruled.items():
        node = analysis.graph[name]
        held = REGISTRY[node.op].tensors(node.attrs, [shapes[r] for r in node.inputs], shapes[name])
        if {t.name for t in held} <= tensors:
            found.append(name)
    return found


def _weight_methods(layers: _Layers, by_rules: list[str]) -> list[str]:
    """``init_torchvision`` (one branch per module class, skipping the layers the
    rules set whole) and, if the spec fixes values, ``set_fixed_weights``."""

    lines = ["", "    @torch.no_grad()", "    def init_torchvision(self) -> None:"]
    if layers.classes and by_rules:
        lines += ["        by_rules = {", *(f"            {_lit(n)}," for n in by_rules), "        }"]
        lines += [
            "        for name, m in self.named_modules():",
            "            if name in by_rules:",
            "                continue  # the spec's init rules set all its tensors",
        ]
    elif layers.classes:
        lines.append("        for m in self.modules():")
    if layers.classes:
        for k, (kind, init) in enumerate(layers.classes.items()):
            lines.append(f"            {'if' if k == 0 else 'elif'} isinstance(m, {kind}):")
            lines += ["                " + stmt for stmt in init]
    else:
        lines.append("        pass  # no layer has parameters")
    if layers.fixed:
        lines += ["", "    @torch.no_grad()", "    def set_fixed_weights(self) -> None:"]
        lines += ["        " + line for line in layers.fixed]
    return lines


def _call(rule: InitRule) -> str:
    """The rule's statement on ``m``: ``nn.init.normal_(m.weight, std=0.01)``."""
    if rule.initializer.name == "pytorch":
        default = PYTORCH_DEFAULTS.get(rule.op, {}).get(rule.tensor)
        if default is None:
            raise SpecError(
                f"init: the torch backend knows no PyTorch default for the {rule.tensor} of op '{rule.op}'",
                rule.location,
                hint="give the initializer itself, e.g. 'normal(std=0.02)'",
            )
        return default
    args = "".join(f", {k}={_lit(v)}" for k, v in rule.initializer.args)
    return f"nn.init.{rule.initializer.name}_(m.{rule.tensor}{args})"


def _rules_method(rules: list[InitRule]) -> list[str]:
    """``init_rules``: the spec's init rules in order (ops, then layers); consecutive
    rules on the same layers (an op's weight and bias) share one loop."""
    if not rules:
        return []
    lines = ["", "    @torch.no_grad()", "    def init_rules(self) -> None:"]
    for layers, group in itertools.groupby(rules, key=lambda rule: rule.layers):
        same = list(group)
        lines += [f"        # init: {rule.written}" for rule in same]
        if len(layers) == 1:
            lines.append(f"        m = self.get_submodule({_lit(layers[0])})")
            indent = "        "
        else:
            lines += ["        for name in (", *(f"            {_lit(n)}," for n in layers), "        ):"]
            lines.append("            m = self.get_submodule(name)")
            indent = "            "
        lines += [indent + _call(rule) for rule in same]
    return lines


def _forward(analysis: Analysis, var: dict[str, str], layers: _Layers) -> list[str]:
    """``forward``: the layers' statements in graph order, returning the graph's outputs."""

    graph = analysis.graph
    args = ", ".join(f"{var[n]}: torch.Tensor" for n in graph.inputs)
    n_out = len(graph.outputs)
    ret = "torch.Tensor" if n_out == 1 else f"tuple[{', '.join(['torch.Tensor'] * n_out)}]"
    return [
        "",
        f"    def forward(self, {args}) -> {ret}:",
        *("        " + line for line in layers.body),
        f"        return {', '.join(var[o] for o in graph.outputs)}",
    ]


def _main(name: str) -> list[str]:
    """``python model.py`` runs the model once on random inputs and prints the outputs' shapes."""
    return [
        "",
        "",
        'if __name__ == "__main__":',
        f"    model = {name}().eval()",
        "    example = [torch.randn(1, *shape) for shape in model.INPUT_SHAPES]",
        "    with torch.no_grad():",
        "        result = model(*example)",
        "    for out, y in zip(model.OUTPUTS, result if isinstance(result, tuple) else (result,)):",
        "        print(out, tuple(y.shape))",
        "",
    ]


def generate_source(analysis: Analysis) -> str:
    """The standalone Python source (imports only torch) of the spec's module."""
    shapes = {info.name: info.output_shape for info in analysis.layers}
    taken: set[str] = set()
    var = {node.name: _identifier(node.name, taken) for node in analysis.graph}  # local variable names
    layers = _lower_layers(analysis, shapes, var)
    name = class_name(analysis.name)
    return "\n".join(
        [
            *_header(analysis, shapes, name),
            *_init_method(analysis.graph.init, layers, analysis.init_rules),
            *_weight_methods(layers, _set_by_rules(analysis, shapes)),
            *_rules_method(analysis.init_rules),
            *_forward(analysis, var, layers),
            *_main(name),
        ]
    )


@functools.lru_cache(maxsize=64)
def _module_class(source: str, name: str) -> type[nn.Module]:
    """Execute generated source (cached by its text) and return its module class.
    The source is registered with linecache so tracebacks and debuggers show it."""

    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<netspec {name} {digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"netspec_generated_{digest}"}
    exec(builtins.compile(source, filename, "exec"), namespace)  # our own generated source (see the module docstring)
    cls: type[nn.Module] = namespace[class_name(name)]
    return cls


# --- the public API --------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device | None:
    """The device, or a one-line SpecError if it is unknown or not available."""
    if device is None:
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise SpecError(f"unknown device {str(device)!r}: {str(e).splitlines()[0]}") from None
    try:
        torch.empty(0, device=dev)
    except Exception as e:  # torch raises RuntimeError, AssertionError, ... by backend
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecError(f"device '{dev}' is not available: {first}") from None
    return dev


_DTYPES = {"float32", "float", "float64", "double", "float16", "half", "bfloat16"}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        if isinstance(dtype, torch.dtype) and not dtype.is_floating_point:
            raise SpecError(f"dtype must be a floating-point type, not {dtype}")
        return dtype
    name = str(dtype).removeprefix("torch.")
    if name not in _DTYPES:
        raise SpecError(f"unknown dtype {dtype!r}", hint="use one of " + ", ".join(sorted(_DTYPES)))
    value: torch.dtype = getattr(torch, name)
    return value


def build(
    analysis: Analysis,
    *,
    init: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> nn.Module:
    """The module of an analysed spec, built on ``device`` with ``dtype``; ``init``
    defaults to the spec's ``init`` key (itself "torchvision" by default)."""
    init = init or analysis.graph.init
    if init not in INITS:
        raise SpecError(f"unknown init {init!r}", hint="use 'torchvision' or 'pytorch'")
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    cls = _module_class(generate_source(analysis), analysis.name)
    model = cls(init=init, device=dev, dtype=dt)
    return model


def compile(
    spec_or_path: str | os.PathLike[str] | Spec | Analysis,
    params: Mapping[str, Any] | None = None,
    *,
    weights: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    init: str | None = None,
    **overrides: Any,
) -> nn.Module:
    """A ``torch.nn.Module`` for a spec (a path, a built-in name, a ``Spec`` or an
    ``Analysis``). ``params`` and keyword ``overrides`` (``classes=10``) set the
    spec's variables; ``weights`` (a state_dict or a file) is loaded with
    ``load_weights``; ``init`` is ``"torchvision"`` or ``"pytorch"`` (default: the
    spec's ``init`` key, "torchvision" if it has none)."""
    values = {**(params or {}), **overrides}
    model = build(analysis_of(spec_or_path, values), init=init, device=device, dtype=dtype)
    if weights is not None:
        load_weights(model, weights)
    return model


def _read_state_dict(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[Mapping[str, Any], Location | None]:
    import torch

    if isinstance(source, Mapping):
        return source, None
    where = Location(os.fspath(source))
    try:
        data = torch.load(os.fspath(source), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SpecError("no such weights file", where) from None
    except Exception as e:  # torch reports unreadable files with many exception types
        raise SpecError(f"cannot read the weights: {str(e).strip().splitlines()[0]}", where) from None
    if isinstance(data, Mapping):
        # {"state_dict": ...} and {"model": ...} are common checkpoint layouts.
        for key in ("state_dict", "model"):
            inner = data.get(key)
            if isinstance(inner, Mapping) and not all(isinstance(v, torch.Tensor) for v in data.values()):
                return inner, where
        return data, where
    raise SpecError(f"the weights file holds a {type(data).__name__}, not a state_dict", where)


@dataclass(frozen=True)
class LoadReport:
    """What a non-strict ``load_weights`` did, tensor by tensor (model keys unless
    said otherwise). ``print(report)`` gives a short table: counts, and the layers of
    what was not loaded."""

    loaded: dict[str, str]  # model key -> the checkpoint key it got
    skipped: dict[str, tuple[str, list[int], list[int]]]  # -> (checkpoint key, model shape, its shape)
    excluded: list[str]
    missing: list[str]  # no checkpoint tensor for them: they keep their initialisation
    unexpected: list[str]  # checkpoint keys that fed nothing
    layers: tuple[str, ...] = ()  # the model's layer names, to name the keys' layers

    def rows(self) -> list[tuple[str, int, list[str]]]:
        """(what, how many tensors, which layers) per kind of outcome."""
        from netspec.backends.layer_names import collapse

        return [
            ("loaded", len(self.loaded), []),
            ("  by order", len(by_order(self.loaded)), collapse(by_order(self.loaded), self.layers)),
            ("skipped for shape", len(self.skipped), collapse(self.skipped, self.layers)),
            ("excluded", len(self.excluded), collapse(self.excluded, self.layers)),
            ("missing", len(self.missing), collapse(self.missing, self.layers)),
            ("unexpected", len(self.unexpected), collapse(self.unexpected)),
        ]

    def __str__(self) -> str:
        from netspec.errors import name_list

        rows = self.rows()
        width = max(len(what) for what, _, _ in rows)
        digits = max(len(str(n)) for _, n, _ in rows)
        lines = [f"{what:<{width}}  {n:>{digits}}  {name_list(names, 8)}".rstrip() for what, n, names in rows]
        return "\n".join(["weights (tensors)", *lines])


def by_order(mapping: Mapping[str, str]) -> list[str]:
    """The model keys a checkpoint fed by order and shape, not by name: two layers of
    the same shape swapped in the checkpoint would load without a word there."""
    return [k for k, src in mapping.items() if k != src]


def order_note(mapping: Mapping[str, str]) -> str | None:
    """One line saying how much of a load went by order, if any did."""
    keys = by_order(mapping)
    if not keys:
        return None
    return (
        f"note: {len(keys)} of {len(mapping)} tensors loaded by order and shape, not by name "
        f"(e.g. '{keys[0]}' <- '{mapping[keys[0]]}')"
    )


@overload
def load_weights(
    model: nn.Module,
    state_dict: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict: Literal[True] = True,
    exclude: Sequence[str] = (),
    analysis: Analysis | None = None,
) -> dict[str, str]: ...
@overload
def load_weights(
    model: nn.Module,
    state_dict: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict: Literal[False],
    exclude: Sequence[str] = (),
    analysis: Analysis | None = None,
) -> LoadReport: ...
@overload
def load_weights(
    model: nn.Module,
    state_dict: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict: bool,
    exclude: Sequence[str] = (),
    analysis: Analysis | None = None,
) -> dict[str, str] | LoadReport: ...
def load_weights(
    model: nn.Module,
    state_dict: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict: bool = True,
    exclude: Sequence[str] = (),
    analysis: Analysis | None = None,
) -> dict[str, str] | LoadReport:
    """Load a checkpoint of an equivalent model into ``model``.

    Keys that agree by name are mapped by name; the others are paired in order (the
    model's remaining keys with the checkpoint's remaining keys, as both list them).
    Checkpoints without BatchNorm's ``num_batches_tracked`` counters load too (the
    model keeps its own).

    ``strict`` (the default): every pair must agree in shape and nothing may be left
    over; a mismatch raises a ``SpecError`` naming the first mismatching key and both
    shapes. Returns the mapping from the model's keys to the checkpoint's.

    ``strict=False`` (fine-tuning): loads every pair that agrees in shape, skips the
    others (a new head) and the model keys whose layers ``exclude`` picks (prefixes or
    globs), and returns a ``LoadReport``. Loading nothing is a SpecError, and so is a
    layer of the backbone left unloaded (skipped or missing, not excluded) while the
    head changed size: the sign of a checkpoint of another architecture. The head is
    read from ``analysis`` when given (``layer_names.head``), else it is the layer of
    the model's last parameter.
    """
    source, where = _read_state_dict(state_dict)
    target = model.state_dict()
    if strict:
        if exclude:
            raise SpecError("exclude needs strict=False", where, hint="excluded layers are not loaded: not strict")
        mapping: dict[str, str] = match_keys({k: list(v.shape) for k, v in target.items()}, source, where)
        # strict unless BatchNorm counters were left to the model (a checkpoint without them)
        model.load_state_dict({k: source[src] for k, src in mapping.items()}, strict=len(mapping) == len(target))
        return mapping
    report = _partial(model, target, source, exclude, analysis, where)
    model.load_state_dict({k: source[src] for k, src in report.loaded.items()}, strict=False)
    return report


def _partial(
    model: nn.Module,
    target: Mapping[str, Any],
    source: Mapping[str, Any],
    exclude: Sequence[str],
    analysis: Analysis | None,
    where: Location | None,
) -> LoadReport:
    """The non-strict plan of ``load_weights``: pairs as ``match_keys`` makes them,
    sorted into loaded, skipped, excluded, missing and unexpected, then checked."""
    from netspec.backends.layer_names import collapse, head, layer_of
    from netspec.names import pick, picks

    exclude = [exclude] if isinstance(exclude, str) else list(exclude)
    params = [k for k, _ in model.named_parameters()]
    layers = tuple(info.name for info in analysis.layers) if analysis is not None else tuple(collapse(target))
    for pattern in exclude:
        pick(pattern, [layer_of(k, layers) for k in target], "exclude pattern", where)
    keep_counters = not any(k.endswith("num_batches_tracked") for k in source)
    wanted = [k for k in target if not (keep_counters and k.endswith("num_batches_tracked"))]
    by_name = {k for k in wanted if k in source}
    rest_model = [k for k in wanted if k not in by_name]
    rest_ckpt = [k for k in source if k not in by_name]
    pairs = {**dict(zip(rest_model, rest_ckpt)), **{k: k for k in by_name}}
    loaded: dict[str, str] = {}
    skipped: dict[str, tuple[str, list[int], list[int]]] = {}
    excluded: list[str] = []
    missing: list[str] = []
    for k in wanted:
        if any(picks(p, layer_of(k, layers)) for p in exclude):
            excluded.append(k)
        elif k not in pairs:
            missing.append(k)
        elif list(target[k].shape) != shape_of(source[pairs[k]]):
            skipped[k] = (pairs[k], list(target[k].shape), shape_of(source[pairs[k]]))
        else:
            loaded[k] = pairs[k]
    report = LoadReport(loaded, skipped, excluded, missing, rest_ckpt[len(rest_model) :], layers)
    if not loaded:
        raise SpecError(
            f"nothing in the checkpoint fits the model: {len(skipped)} tensors differ in shape, "
            f"{len(missing)} are missing, {len(report.unexpected)} checkpoint tensors are unused",
            where,
            hint="the checkpoint must come from a model of the same architecture (a different head is fine)",
        )
    heads = set(head(analysis)) if analysis is not None else {layer_of(params[-1], layers)} if params else set()
    if any(layer_of(k, layers) in heads for k in skipped):
        owners = collapse(params, layers)
        for k in [*skipped, *missing]:
            layer = layer_of(k, layers)
            if layer in owners and layer not in heads:
                how = f"has shape {skipped[k][1]}, the checkpoint's {skipped[k][2]}" if k in skipped else "is missing"
                changed = ", ".join(n for n in collapse(skipped, layers) if n in heads)
                raise SpecError(
                    f"the head ({changed}) changed size, and backbone layer '{layer}' would start from random "
                    f"weights: '{k}' {how}",
                    where,
                    hint="check the checkpoint comes from this architecture, or exclude that layer to train it anew",
                )
    return report


def write(
    spec: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    params: Mapping[str, Any] | None = None,
    *,
    weights: str | os.PathLike[str] | None = None,
    init: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    note: Callable[[str], None] | None = None,
) -> str:
    """What ``netspec compile`` does: the standalone source (``.py`` or no ``out``:
    returned) or a state_dict (``.pt``/``.pth``: saved). Returns the source, or "".
    ``note`` is told when ``weights`` loaded by order rather than by name."""
    if out is not None and Path(out).suffix not in (".py", ".pt", ".pth"):
        raise SpecError(
            f"cannot tell what to write from the name {os.fspath(out)!r}",
            hint="use .py (source), .pt (state_dict) or .onnx",
        )
    if out is not None:
        check_directory(out, "source" if Path(out).suffix == ".py" else "state_dict")
    analysis = analysis_of(spec, params)
    if out is None or Path(out).suffix == ".py":
        resolve_device(device)  # report an unavailable device even though source needs none
        source = generate_source(analysis)
        if out is not None:
            write_atomic(out, [source.encode()], "source")
        return source
    import torch  # a state_dict needs torch; source does not

    model = build(analysis, init=init, device=device, dtype=dtype)
    if weights is not None:
        said = order_note(load_weights(model, weights))
        if said is not None and note is not None:
            note(said)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_atomic(out, [buffer.getbuffer()], "state_dict")
    return ""
