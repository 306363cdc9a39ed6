"""The ONNX backend: a spec becomes an ``onnx.ModelProto``, emitted from the IR.

The graph is written directly with ``onnx.helper`` (no PyTorch tracing), one lowering
per op in ``LOWERINGS`` (aliases included), walking the analysis' topological order.

* Names carry through: each layer's output value and its (main) ONNX node are named
  after the layer (``layer2.0.conv1``); helper nodes and constants a lowering adds
  are ``<layer>/<what>``. Parameters and buffers are the tensors their op declares
  (``Op.tensors``), as initializers named exactly as the PyTorch backend's
  ``state_dict`` keys (``layer2.0.conv1.weight``, ``layer2.0.bn1.running_var``), so a
  checkpoint maps onto the file by name.
* Inference semantics, as ``model.eval()``: batch norm is ``BatchNormalization`` with
  the running statistics (or, for ``track_running_stats: false``, the batch's own
  statistics, as PyTorch does in eval mode); dropout is ``Identity``.
* Weights: a ``state_dict`` mapping (torch tensors or numpy arrays), an ``nn.Module``,
  a ``.pt`` file (``torch.load(weights_only=True)``) or a ``.safetensors`` file; or, with no weights, the
  PyTorch backend's own initialisation under ``torch.manual_seed(seed)``, so the file
  holds the same numbers as ``netspec.compile`` after that seed. Keys are matched as
  ``netspec.load_weights`` matches them (by name, else by order and shape).
  ``structure_only=True`` writes no tensors: parameters become graph inputs, and
  nothing imports torch (only onnx and numpy); nor does reading a ``.safetensors``
  file.
* The batch axis is 1 by default, or the symbolic ``N`` with ``dynamic_batch``.
* Writing goes to a temporary file beside the target, renamed when complete.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from netspec import plugins
from netspec.analysis import Analysis
from netspec.backends.common import analysis_of, check_directory, match_keys, write_atomic
from netspec.errors import Location, SpecError
from netspec.graph.ir import Node
from netspec.ops import REGISTRY, Shape, Tensor, op_names
from netspec.ops.conv2d import Conv2d
from netspec.ops.slice import Slice
from netspec.spec.load import Spec

DEFAULT_OPSET = 17
MIN_OPSET = 14  # HardSwish; Softmax's single-axis semantics (13)
FLOAT = TensorProto.FLOAT


# --- the graph under construction -------------------------------------------------


@dataclass
class Param:
    """A tensor of the PyTorch module's state_dict that the ONNX graph reads."""

    key: str
    shape: tuple[int, ...]
    fixed: np.ndarray | None = None  # values written in the spec (conv2d ``weight``)
    used: bool = True  # False for a tensor the graph does not read (num_batches_tracked): matched, never emitted


@dataclass
class Builder:
    opset: int
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    consts: list[onnx.TensorProto] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)

    def node(self, op: str, inputs: list[str], output: str, name: str, **attrs: Any) -> str:
        base, k = name, 2
        while name in self._names:
            name, k = f"{base}/{k}", k + 1
        self._names.add(name)
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))
        return output

    def const(self, name: str, value: Any, dtype: Any = np.float32) -> str:
        self.consts.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def hold(self, layer: str, tensors: list[Tensor], read: dict[str, Any]) -> None:
        """A layer's declared tensors; ``read`` maps those the graph reads to their fixed
        values (or None)."""
        for t in tensors:
            fixed = read.get(t.name)
            array = None if fixed is None else np.asarray(fixed, np.float32)
            self.params.append(Param(f"{layer}.{t.name}", t.shape, array, t.name in read))

    def reduce_mean(self, x: str, axes: list[int], out: str, name: str) -> str:
        if self.opset >= 18:  # axes became an input in opset 18
            return self.node("ReduceMean", [x, self.const(f"{name}/axes", axes, np.int64)], out, name, keepdims=1)
        return self.node("ReduceMean", [x], out, name, axes=axes, keepdims=1)


@dataclass(frozen=True)
class Ctx:
    """What a lowering sees of one node."""

    node: Node
    attrs: Any
    ins: list[Shape]  # per-sample input shapes
    out: Shape  # per-sample output shape
    args: list[str]  # input value names
    b: Builder
    tensors: list[Tensor]  # the op's declaration of the layer's parameters and buffers
    read: dict[str, Any] = field(default_factory=dict)  # the declared tensors the graph reads

    def tensor(self, name: str, fixed: Any = None) -> str:
        """The initializer of the declared tensor ``name``; ``fixed``: values the spec gives."""
        if name not in {t.name for t in self.tensors}:
            raise KeyError(f"op '{self.node.op}' declares no tensor '{name}'")
        self.read[name] = fixed
        return f"{self.name}.{name}"

    @property
    def name(self) -> str:
        return self.node.name

    def tmp(self, what: str) -> str:
        return f"{self.node.name}/{what}"

    def emit(self, op: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        """A node; its output is the layer's value unless ``out`` names a helper value."""
        output = out if out is not None else self.name
        return self.b.node(op, inputs, output, self.name if out is None else out, **attrs)


# --- lowerings ---------------------------------------------------------------------


def _pairs(p: tuple[int, int]) -> list[int]:
    return [p[0], p[1], p[0], p[1]]  # ONNX pads: begins of all axes, then ends


def _conv2d(c: Ctx) -> None:
    a = c.attrs
    _, groups = Conv2d.resolve(a, c.ins[0][0])
    inputs = [c.args[0], c.tensor("weight", a.weight)]
    if a.bias:
        inputs.append(c.tensor("bias", a.bias if isinstance(a.bias, tuple) else None))
    if a.padding == "same":  # PyTorch puts the odd pixel at the end
        total = [d * (k - 1) for d, k in zip(a.dilation, a.kernel)]
        pads = [total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2]
    else:
        pads = [0, 0, 0, 0] if a.padding == "valid" else _pairs(a.padding)
    c.emit(
        "Conv",
        inputs,
        kernel_shape=list(a.kernel),
        strides=list(a.stride),
        pads=pads,
        dilations=list(a.dilation),
        group=groups,
    )


def _linear(c: Ctx) -> None:
    a = c.attrs
    w = c.tensor("weight")
    bias = [c.tensor("bias")] if a.bias else []
    if len(c.ins[0]) == 1:
        c.emit("Gemm", [c.args[0], w, *bias], transB=1)
        return
    wt = c.emit("Transpose", [w], c.tmp("weight_t"), perm=[1, 0])
    if bias:
        y = c.emit("MatMul", [c.args[0], wt], c.tmp("matmul"))
        c.emit("Add", [y, bias[0]])
    else:
        c.emit("MatMul", [c.args[0], wt])


def _batchnorm(c: Ctx) -> None:
    a = c.attrs
    ch = c.ins[0][0]
    if a.affine:
        scale, shift = c.tensor("weight"), c.tensor("bias")
    else:
        scale, shift = c.b.const(c.tmp("scale"), np.ones(ch)), c.b.const(c.tmp("shift"), np.zeros(ch))
    if a.track_running_stats:
        mean, var = c.tensor("running_mean"), c.tensor("running_var")
        c.emit("BatchNormalization", [c.args[0], scale, shift, mean, var], epsilon=a.eps)
        return
    # No running statistics: PyTorch normalises with the batch's statistics, in eval too.
    axes = [0, *range(2, len(c.ins[0]) + 1)]
    x = c.args[0]
    mean = c.b.reduce_mean(x, axes, c.tmp("mean"), c.tmp("mean"))
    centred = c.emit("Sub", [x, mean], c.tmp("centred"))
    sq = c.emit("Mul", [centred, centred], c.tmp("square"))
    var = c.b.reduce_mean(sq, axes, c.tmp("var"), c.tmp("var"))
    std = c.emit("Sqrt", [c.emit("Add", [var, c.b.const(c.tmp("eps"), a.eps)], c.tmp("var_eps"))], c.tmp("std"))
    normed = c.emit("Div", [centred, std], c.tmp("normed"))
    bshape = [ch] + [1] * (len(c.ins[0]) - 1)
    s = c.emit("Reshape", [scale, c.b.const(c.tmp("bshape"), bshape, np.int64)], c.tmp("scale_b"))
    t = c.emit("Reshape", [shift, c.tmp("bshape")], c.tmp("shift_b"))
    c.emit("Add", [c.emit("Mul", [normed, s], c.tmp("scaled")), t])


def _pool(kind: str) -> Callable[[Ctx], None]:
    def lower(c: Ctx) -> None:
        a = c.attrs
        stride, dilation = a.stride or a.kernel, getattr(a, "dilation", (1, 1))
        x, pads, include_pad = c.args[0], _pairs(a.padding), getattr(a, "count_include_pad", False)
        # ONNX's ceil mode keeps a last window that starts in the right padding, which
        # PyTorch drops: ceil mode is written as floor mode over the end padding that
        # PyTorch's windows reach (the overhang), so the sizes are netspec's.
        over = [0, 0]
        for axis in (0, 1) if a.ceil_mode else ():
            reach = (c.out[axis + 1] - 1) * stride[axis] + dilation[axis] * (a.kernel[axis] - 1) + 1
            over[axis] = max(0, reach - c.ins[0][axis + 1] - 2 * a.padding[axis])
        if any(over) and kind == "MaxPool":
            # ONNX takes pads shorter than the kernel, and a dilated window's overhang
            # can be longer: pad with -inf, never a maximum (no window is all padding).
            ends = c.b.const(c.tmp("pads"), [0, 0, 0, 0, 0, 0, *over], np.int64)
            x = c.emit("Pad", [x, ends, c.b.const(c.tmp("lowest"), -np.inf)], c.tmp("padded"))
        elif any(over):
            if include_pad and any(a.padding):
                # PyTorch counts the declared padding, never the overhang: zeros written
                # out, then nothing counted but what lies inside
                begin = [0, 0, *a.padding]
                x = c.emit("Pad", [x, c.b.const(c.tmp("pads"), begin + begin, np.int64)], c.tmp("padded"))
                pads = [0, 0, 0, 0]
            pads[2:] = [pads[2] + over[0], pads[3] + over[1]]
            include_pad = False
        attrs: dict[str, Any] = {"kernel_shape": list(a.kernel), "strides": list(stride), "pads": pads}
        if kind == "MaxPool":
            attrs["dilations"] = list(dilation)
        else:
            attrs["count_include_pad"] = int(include_pad)
        c.emit(kind, [x], **attrs)

    return lower


def _global(kind: str) -> Callable[[Ctx], None]:
    def lower(c: Ctx) -> None:
        if c.attrs.flatten:
            c.emit("Flatten", [c.emit(kind, [c.args[0]], c.tmp("pool"))], axis=1)
        else:
            c.emit(kind, [c.args[0]])

    return lower


def _adaptive_matrix(n: int, m: int) -> np.ndarray:
    """[m, n]: row i averages PyTorch's window i, [floor(i*n/m), ceil((i+1)*n/m))."""
    mat = np.zeros((m, n), np.float32)
    for i in range(m):
        lo, hi = (i * n) // m, -(-(i + 1) * n // m)
        mat[i, lo:hi] = 1.0 / (hi - lo)
    return mat


def _adaptive_avgpool2d(c: Ctx) -> None:
    _, h, w = c.ins[0]
    oh, ow = c.attrs.size
    if h % oh == 0 and w % ow == 0:  # equal windows: a plain average pooling
        k = [h // oh, w // ow]
        c.emit("AveragePool", [c.args[0]], kernel_shape=k, strides=k)
        return
    # Overlapping or uneven windows: the average is separable, rows then columns,
    # so it is two matrix products with fixed averaging matrices.
    cols = c.b.const(c.tmp("cols"), _adaptive_matrix(w, ow).T)  # [W, ow]
    rows = c.b.const(c.tmp("rows"), _adaptive_matrix(h, oh))  # [oh, H]
    c.emit("MatMul", [rows, c.emit("MatMul", [c.args[0], cols], c.tmp("pool_w"))])


def _flatten(c: Ctx) -> None:
    a = c.attrs
    rank = len(c.ins[0]) + 1
    start = a.start_dim + rank if a.start_dim < 0 else a.start_dim
    end = a.end_dim + rank if a.end_dim < 0 else a.end_dim
    if start == 1 and end == rank - 1:  # ONNX's Flatten always gives 2-D: only this case
        c.emit("Flatten", [c.args[0]], axis=1)
        return
    # 0 copies an axis (the batch, whatever it is), -1 takes the merged ones
    target = [0] * start + [-1] + list(c.ins[0][end:])
    c.emit("Reshape", [c.args[0], c.b.const(c.tmp("shape"), target, np.int64)])


def _lrn(c: Ctx) -> None:
    a = c.attrs
    if a.size % 2 == 0:
        # ONNX centres an even window one channel later than PyTorch does.
        raise SpecError(
            f"layer '{c.name}': the onnx backend supports lrn with an odd size only (got {a.size})",
            c.node.location,
            layer=c.name,
        )
    attrs = {"size": a.size, "alpha": a.alpha, "beta": a.beta, "bias": a.k}
    if len(c.ins[0]) == 3:
        c.emit("LRN", [c.args[0]], **attrs)
        return
    # ONNX Runtime's LRN takes 4-D input only: [N, C] or [N, C, L] padded to [N, C, ., .]
    axes = c.b.const(c.tmp("axes"), list(range(len(c.ins[0]) + 1, 4)), np.int64)
    y = c.emit("LRN", [c.emit("Unsqueeze", [c.args[0], axes], c.tmp("4d"))], c.tmp("lrn"), **attrs)
    c.emit("Squeeze", [y, axes])


def _simple(op: str) -> Callable[[Ctx], None]:
    def lower(c: Ctx) -> None:
        c.emit(op, [c.args[0]])

    return lower


def _leaky_relu(c: Ctx) -> None:
    c.emit("LeakyRelu", [c.args[0]], alpha=c.attrs.negative_slope)


def _relu6(c: Ctx) -> None:
    c.emit("Clip", [c.args[0], c.b.const(c.tmp("min"), 0.0), c.b.const(c.tmp("max"), 6.0)])


def _silu(c: Ctx) -> None:
    c.emit("Mul", [c.args[0], c.emit("Sigmoid", [c.args[0]], c.tmp("sigmoid"))])


def _softmax(c: Ctx) -> None:
    c.emit("Softmax", [c.args[0]], axis=c.attrs.dim)


def _gelu(c: Ctx) -> None:
    x, approx = c.args[0], c.attrs.approximate
    if c.b.opset >= 20:
        c.emit("Gelu", [x], approximate=approx)
        return
    if approx == "none":  # 0.5 x (1 + erf(x / sqrt 2))
        inner = c.emit(
            "Erf", [c.emit("Div", [x, c.b.const(c.tmp("sqrt2"), math.sqrt(2))], c.tmp("scaled"))], c.tmp("erf")
        )
    else:  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = c.emit("Mul", [x, c.emit("Mul", [x, x], c.tmp("sq"))], c.tmp("cube"))
        poly = c.emit("Add", [x, c.emit("Mul", [cube, c.b.const(c.tmp("k"), 0.044715)], c.tmp("kcube"))], c.tmp("poly"))
        arg = c.emit("Mul", [poly, c.b.const(c.tmp("s"), math.sqrt(2 / math.pi))], c.tmp("arg"))
        inner = c.emit("Tanh", [arg], c.tmp("tanh"))
    one_plus = c.emit("Add", [inner, c.b.const(c.tmp("one"), 1.0)], c.tmp("one_plus"))
    half_x = c.emit("Mul", [x, c.b.const(c.tmp("half"), 0.5)], c.tmp("half_x"))
    c.emit("Mul", [half_x, one_plus])


def _chain(op: str) -> Callable[[Ctx], None]:
    """An n-ary element-wise op as left-to-right binary nodes (PyTorch's order)."""

    def lower(c: Ctx) -> None:
        acc = c.args[0]
        for k, arg in enumerate(c.args[1:], 1):
            last = k == len(c.args) - 1
            acc = c.emit(op, [acc, arg], None if last else c.tmp(f"{op.lower()}{k}"))

    return lower


def _concat(c: Ctx) -> None:
    c.emit("Concat", c.args, axis=c.attrs.dim)


def _slice(c: Ctx) -> None:
    lo, hi = Slice.bounds(c.attrs, c.ins[0][0])
    ints = [c.b.const(c.tmp(what), [v], np.int64) for what, v in (("starts", lo), ("ends", hi), ("axes", 1))]
    c.emit("Slice", [c.args[0], *ints])


def _hardsigmoid(c: Ctx) -> None:
    c.emit("HardSigmoid", [c.args[0]], alpha=1 / 6, beta=0.5)  # PyTorch's relu6(x + 3) / 6


def _clip(lo: str, hi: str) -> Callable[[Ctx], None]:
    """Clip between the attributes ``lo`` and ``hi`` (a missing bound: an empty input)."""

    def lower(c: Ctx) -> None:
        bounds = [getattr(c.attrs, lo), getattr(c.attrs, hi)]
        names = [c.b.const(c.tmp(k), v) if v is not None else "" for k, v in zip(("min", "max"), bounds)]
        c.emit("Clip", [c.args[0], *names] if names[1] else [c.args[0], names[0]])

    return lower


def _reshape_to(c: Ctx, x: str, shape: list[int], what: str, out: str | None = None) -> str:
    """Reshape to ``[batch, *shape]`` (a 0 copies the batch axis, whatever it is)."""
    return c.emit("Reshape", [x, c.b.const(c.tmp(what), [0, *shape], np.int64)], out)


def _channel_shuffle(c: Ctx) -> None:
    g, (ch, *rest) = c.attrs.groups, c.ins[0]
    grouped = _reshape_to(c, c.args[0], [g, ch // g, *rest], "grouped_shape", c.tmp("grouped"))
    perm = [0, 2, 1, *range(3, len(c.ins[0]) + 2)]
    shuffled = c.emit("Transpose", [grouped], c.tmp("transposed"), perm=perm)
    _reshape_to(c, shuffled, list(c.ins[0]), "shape")


def _reshape(c: Ctx) -> None:
    _reshape_to(c, c.args[0], list(c.out), "shape")


def _permute(c: Ctx) -> None:
    c.emit("Transpose", [c.args[0]], perm=[0, *(d + 1 for d in c.attrs.dims)])


def _pad(c: Ctx) -> None:
    left, right, top, bottom = c.attrs.padding
    pads = c.b.const(c.tmp("pads"), [0, 0, top, left, 0, 0, bottom, right], np.int64)
    c.emit("Pad", [c.args[0], pads, c.b.const(c.tmp("value"), c.attrs.value)], mode="constant")


def _crop(c: Ctx) -> None:
    left, right, top, bottom = c.attrs.crop
    _, h, w = c.ins[0]
    starts = c.b.const(c.tmp("starts"), [top, left], np.int64)
    ends = c.b.const(c.tmp("ends"), [h - bottom, w - right], np.int64)
    c.emit("Slice", [c.args[0], starts, ends, c.b.const(c.tmp("axes"), [2, 3], np.int64)])


def _input(c: Ctx) -> None:
    pass  # a graph input: declared by the graph, no node


LOWERINGS: dict[str, Callable[[Ctx], None]] = {
    "input": _input,
    "conv2d": _conv2d,
    "linear": _linear,
    "batchnorm": _batchnorm,
    "maxpool2d": _pool("MaxPool"),
    "avgpool2d": _pool("AveragePool"),
    "adaptive_avgpool2d": _adaptive_avgpool2d,
    "global_avgpool": _global("GlobalAveragePool"),
    "global_maxpool": _global("GlobalMaxPool"),
    "flatten": _flatten,
    "dropout": _simple("Identity"),  # inference: dropout passes its input through
    "lrn": _lrn,
    "relu": _simple("Relu"),
    "relu6": _relu6,
    "leaky_relu": _leaky_relu,
    "silu": _silu,
    "hardswish": _simple("HardSwish"),
    "hardsigmoid": _hardsigmoid,
    "clamp": _clip("min", "max"),
    "hardtanh": _clip("min_val", "max_val"),
    "sigmoid": _simple("Sigmoid"),
    "tanh": _simple("Tanh"),
    "softmax": _softmax,
    "gelu": _gelu,
    "add": _chain("Add"),
    "multiply": _chain("Mul"),
    "concat": _concat,
    "slice": _slice,
    "channel_shuffle": _channel_shuffle,
    "reshape": _reshape,
    "permute": _permute,
    "pad": _pad,
    "crop": _crop,
}


def missing_lowerings() -> list[str]:
    """Ops (canonical names: nodes carry them, never an alias) that this backend cannot lower."""
    return [name for name in op_names() if name not in LOWERINGS]


def _lowering(node: Node) -> Callable[[Ctx], None]:
    lowering = LOWERINGS.get(node.op) or plugins.backend_lowering("onnx", node.op, node.name, node.location)
    if lowering is None:
        raise SpecError(
            f"layer '{node.name}': the onnx backend has no lowering for op '{node.op}'",
            node.location,
            layer=node.name,
        )
    return lowering


# --- weights -----------------------------------------------------------------------


def _torch_order(params: list[Param]) -> list[Param]:
    """The params in PyTorch's state_dict order: modules sit in nested containers
    created at their first use, so ``a.0.x`` comes before ``b`` even if ``a.1.y``
    comes after ``b`` in the graph (matters when keys are paired by position)."""
    tree: dict[str, Any] = {}
    for p in params:
        layer, _, _ = p.key.rpartition(".")
        level = tree
        for part in layer.split("."):
            level = level.setdefault(part, {})
        level.setdefault("", []).append(p)

    out: list[Param] = []

    def walk(level: dict[str, Any]) -> None:
        for k, v in level.items():
            if k == "":
                out.extend(v)
            else:
                walk(v)

    walk(tree)
    return out


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def _read_weights(source: Any) -> tuple[Mapping[str, Any], Location | None]:
    if isinstance(source, Mapping):
        return source, None
    if hasattr(source, "state_dict") and callable(source.state_dict):  # an nn.Module
        return source.state_dict(), None
    if isinstance(source, (str, os.PathLike)):
        where = Location(os.fspath(source))
        if Path(source).suffix == ".safetensors":
            return _read_safetensors(source, where), where
        from netspec.backends import torch as torch_backend  # a .pt file needs torch

        read: tuple[Mapping[str, Any], Location | None] = torch_backend._read_state_dict(source)
        return read
    raise SpecError(f"weights must be a state_dict, an nn.Module or a file, not {type(source).__name__}")


def _read_safetensors(source: str | os.PathLike[str], where: Location) -> Mapping[str, Any]:
    """A ``.safetensors`` file as numpy arrays (no torch needed)."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise SpecError(
            "reading .safetensors weights needs the safetensors package", where, hint="pip install safetensors"
        ) from None
    try:
        data: Mapping[str, Any] = load_file(os.fspath(source))
    except FileNotFoundError:
        raise SpecError("no such weights file", where) from None
    except Exception as e:  # safetensors reports a damaged file with its own exception types
        raise SpecError(f"cannot read the weights: {str(e).strip().splitlines()[0]}", where) from None
    return data


def match_weights(params: list[Param], source: Mapping[str, Any], where: Location | None) -> dict[str, np.ndarray]:
    """The arrays for ``params``, matched as ``netspec.load_weights`` matches a
    checkpoint to a module (see ``match_keys``)."""
    mapping = match_keys({p.key: list(p.shape) for p in _torch_order(params)}, source, where)
    return {p.key: _array(source[mapping[p.key]]) for p in params if p.used and p.key in mapping}


def _seeded_weights(analysis: Analysis, seed: int, init: str | None) -> Mapping[str, Any]:
    """The state_dict ``netspec.compile`` gives after ``torch.manual_seed(seed)``."""
    import torch

    from netspec.backends import torch as torch_backend

    torch.manual_seed(seed)
    state: Mapping[str, Any] = torch_backend.build(analysis, init=init).state_dict()
    return state


# --- the model ---------------------------------------------------------------------


def _value(name: str, shape: Shape, batch: int | str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, FLOAT, [batch, *shape])


def _check_opset(opset: int) -> None:
    latest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= latest:
        raise SpecError(f"opset {opset} is not supported", hint=f"use an opset from {MIN_OPSET} to {latest}")


def build_model(
    analysis: Analysis,
    weights: Any = None,
    **options: Any,
) -> onnx.ModelProto:
    """The ONNX model of an analysed spec (see the module docstring for ``weights``;
    options as ``export``)."""
    model, tensors = lower_model(analysis, weights, **options)
    for name, array in tensors:
        _tensor(model.graph.initializer.add(), name, array)
    return model


def lower_model(
    analysis: Analysis,
    weights: Any = None,
    *,
    seed: int = 0,
    init: str | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    batch: int = 1,
    structure_only: bool = False,
) -> tuple[onnx.ModelProto, list[tuple[str, np.ndarray]]]:
    """The model without its weight tensors, and those tensors (name, float32 array):
    ``save`` streams them into the file without copying them into the proto."""
    _check_opset(opset)
    if batch < 1:
        raise SpecError(f"batch must be at least 1, not {batch}")
    graph = analysis.graph
    shapes = {info.name: info.output_shape for info in analysis.layers}
    b = Builder(opset)
    for node in graph:
        lowering = _lowering(node)
        ins, out = [shapes[r] for r in node.inputs], shapes[node.name]
        ctx = Ctx(node, node.attrs, ins, out, list(node.inputs), b, REGISTRY[node.op].tensors(node.attrs, ins, out))
        lowering(ctx)
        b.hold(node.name, ctx.tensors, ctx.read)

    dim: int | str = "N" if dynamic_batch else batch
    # The proto is filled in place: helper.make_graph and make_model copy their
    # arguments, which for ResNet-50's 100 MB of tensors took most of the export.
    model = onnx.ModelProto()
    opsets = [helper.make_opsetid("", opset)]
    model.ir_version = helper.find_min_ir_version_for(opsets)
    model.opset_import.extend(opsets)
    model.producer_name = "netspec"
    g = model.graph
    g.name = analysis.name
    g.doc_string = analysis.description
    g.node.extend(b.nodes)
    g.input.extend(_value(n, shapes[n], dim) for n in graph.inputs)
    g.initializer.extend(b.consts)
    tensors: list[tuple[str, np.ndarray]] = []
    used = [p for p in b.params if p.used]
    if structure_only:
        # No tensors: parameters are inputs of the graph (fixed spec values stay in).
        for p in used:
            if p.fixed is not None:
                _tensor(g.initializer.add(), p.key, p.fixed)
            else:
                g.input.append(helper.make_tensor_value_info(p.key, FLOAT, list(p.shape)))
    else:
        if weights is None:
            source, where = _seeded_weights(analysis, seed, init), None
        else:
            source, where = _read_weights(weights)
        arrays = match_weights(b.params, source, where)
        tensors = [(p.key, arrays[p.key]) for p in used]
    g.output.extend(_value(n, shapes[n], dim) for n in graph.outputs)
    skip = set(graph.inputs) | set(graph.outputs)
    g.value_info.extend(_value(n.name, shapes[n.name], dim) for n in graph if n.name not in skip)
    return model, tensors


def _tensor(t: onnx.TensorProto, name: str, array: np.ndarray) -> None:
    t.name = name
    t.data_type = FLOAT
    t.dims.extend(array.shape)
    t.raw_data = np.ascontiguousarray(array, dtype="<f4").tobytes()


# --- writing -----------------------------------------------------------------------


def check_output_path(out: str | os.PathLike[str]) -> Path:
    """The output path, or a one-line SpecError if it cannot be written."""
    if Path(out).suffix != ".onnx":
        raise SpecError(
            f"cannot tell what to write from the name {os.fspath(out)!r}", Location(os.fspath(out)), hint="use .onnx"
        )
    path: Path = check_directory(out, "model")
    return path


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _serialize(model: onnx.ModelProto, tensors: list[tuple[str, np.ndarray]]) -> list[Any]:
    """The file's bytes as pieces: the model with its graph, whose ``initializer``
    entries for ``tensors`` are encoded here around each array's own buffer, so the
    weights are neither copied into the proto nor serialised by protobuf (for
    ResNet-50 that was two thirds of the export). Every parser sees one ordinary
    ModelProto: one graph field, initializers after the graph's other fields."""
    head = onnx.ModelProto()
    head.CopyFrom(model)
    head.ClearField("graph")
    graph_bytes = model.graph.SerializeToString()
    pieces: list[Any] = [graph_bytes]
    size = len(graph_bytes)
    for name, array in tensors:
        data = np.ascontiguousarray(array, dtype="<f4")
        header = onnx.TensorProto(name=name, data_type=FLOAT, dims=data.shape).SerializeToString()
        header += b"\x4a" + _varint(data.nbytes)  # raw_data: field 9, length-delimited
        entry = b"\x2a" + _varint(len(header) + data.nbytes) + header  # GraphProto.initializer: field 5
        pieces += [entry, data.data.cast("B")]
        size += len(entry) + data.nbytes
    return [head.SerializeToString() + b"\x3a" + _varint(size), *pieces]  # ModelProto.graph: field 7


def save(
    model: onnx.ModelProto, out: str | os.PathLike[str], tensors: list[tuple[str, np.ndarray]] | None = None
) -> None:
    """Write the model (and ``tensors``, initializers streamed from their arrays) to a
    temporary file beside ``out``, then rename it: a failure never leaves a partial
    file behind."""
    write_atomic(check_output_path(out), _serialize(model, tensors or []), "model")


def export(
    spec_or_path: str | os.PathLike[str] | Spec | Analysis,
    out: str | os.PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    weights: Any = None,
    seed: int = 0,
    init: str | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    batch: int = 1,
    structure_only: bool = False,
    **overrides: Any,
) -> onnx.ModelProto | None:
    """The ONNX model of a spec; or, with ``out`` (``.onnx``), None after writing it
    (the weights go from their arrays to the file, never into a proto).

    ``weights``: a state_dict, an ``nn.Module`` or a ``.pt`` file; without them the
    PyTorch backend's initialisation (``init``, default the spec's) after
    ``torch.manual_seed(seed)``. ``structure_only=True`` writes no tensors (the
    parameters become graph inputs) and needs no torch."""
    if out is not None:
        check_output_path(out)  # before the work: a bad path fails fast
    if structure_only and weights is not None:
        raise SpecError("weights and structure_only exclude each other")
    analysis = analysis_of(spec_or_path, {**(params or {}), **overrides})
    model, tensors = lower_model(
        analysis,
        weights,
        seed=seed,
        init=init,
        opset=opset,
        dynamic_batch=dynamic_batch,
        batch=batch,
        structure_only=structure_only,
    )
    if out is not None:
        save(model, out, tensors)
        return None
    for name, array in tensors:
        _tensor(model.graph.initializer.add(), name, array)
    return model
