"""The spec's ``init`` key: a scheme, or a scheme with rules for some tensors.

``init: torchvision`` (the default) or ``init: pytorch`` names a scheme. The mapping
form adds rules, which set chosen parameters after the scheme, as a reference
implementation's ``_initialize_weights`` does::

    init:
      scheme: torchvision
      ops:                        # every layer of an op
        conv2d: {weight: kaiming_uniform, bias: zeros}
      layers:                     # layers by name, block or glob (applied after ops)
        classifier.1: {weight: "normal(std=0.01)"}

An initializer is written as a call of one of ``torch.nn.init``'s functions, without
its trailing underscore and with its defaults: ``kaiming_normal(mode=fan_out,
nonlinearity=relu)``, ``trunc_normal(std=0.02)``, ``constant(0.5)``; a bare name calls
it without arguments. Numbers may be expressions of the spec's variables
(``uniform(-$classes ** -0.5, $classes ** -0.5)``). ``pytorch`` sets a tensor as PyTorch's module does when it is
made (``kaiming_uniform(a=sqrt(5))`` for convolution and linear weights, a uniform
bias of bound ``1/sqrt(fan_in)``, ones and zeros for norm layers). Pure Python: the texts are checked here, the rules are matched
to the layers by ``netspec.passes.init``, the torch backend writes the calls.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Tag

from netspec.errors import did_you_mean, name_list

SCHEMES = ("torchvision", "pytorch")

_MODES = ("fan_in", "fan_out")
_NONLINEARITIES = ("linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")
_KAIMING = (("a", 0.0), ("mode", "fan_in"), ("nonlinearity", "leaky_relu"))

#: each initializer's parameters in order, with torch.nn.init's defaults (None: required)
INITIALIZERS: dict[str, tuple[tuple[str, float | str | None], ...]] = {
    "zeros": (),
    "ones": (),
    "constant": (("val", None),),
    "normal": (("mean", 0.0), ("std", 1.0)),
    "uniform": (("a", 0.0), ("b", 1.0)),
    "trunc_normal": (("mean", 0.0), ("std", 1.0), ("a", -2.0), ("b", 2.0)),
    "kaiming_normal": _KAIMING,
    "kaiming_uniform": _KAIMING,
    "xavier_normal": (("gain", 1.0),),
    "xavier_uniform": (("gain", 1.0),),
    "pytorch": (),  # as the PyTorch module's constructor sets the tensor (the backend knows how)
}
#: the initializers that read a tensor's fans, which a tensor of fewer than 2 dimensions lacks
NEEDS_FANS = frozenset({"kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform"})
#: parameters whose values are words, and the words they take
_WORDS = {"mode": _MODES, "nonlinearity": _NONLINEARITIES}


class Expression(NamedTuple):
    """A numeric argument written with the spec's variables (``-$classes ** -0.5``),
    evaluated when the spec's variables are known (``Initializer.evaluated``)."""

    text: str

    def __str__(self) -> str:
        return self.text


class Initializer(NamedTuple):
    """A parsed initializer: ``torch.nn.init``'s function name (minus the ``_``) and the
    arguments given, by keyword, in the function's parameter order."""

    name: str
    args: tuple[tuple[str, float | str | Expression], ...] = ()

    @property
    def needs_fans(self) -> bool:
        return self.name in NEEDS_FANS

    def evaluated(self, evaluate: Callable[[str], Any]) -> Initializer:
        """The initializer with its expressions evaluated (``evaluate`` maps an
        expression's text to its value); a ValueError says what is wrong."""
        if not any(isinstance(v, Expression) for _, v in self.args):
            return self
        args = []
        for k, v in self.args:
            if isinstance(v, Expression):
                value = evaluate(v.text)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{self.name}: {k} = {v.text} is {value!r}, not a number")
                v = _finite(self.name, k, float(value))
            args.append((k, v))
        _check_ranges(self.name, dict(INITIALIZERS[self.name]) | dict(args))
        return Initializer(self.name, tuple(args))

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.args)
        return f"{self.name}({inner})" if self.args else self.name


def _number(node: ast.expr) -> float | None:
    """A number literal, signed or not (``0.01``, ``-2``)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def _finite(fn: str, param: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{fn}: {param} must be a finite number, not {value}")
    return value


_VARIABLE = "__netspec_var_"  # what ``$`` becomes for Python's parser
_ARITHMETIC = (ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.expr_context, ast.operator, ast.unaryop)


def _is_arithmetic(node: ast.expr) -> bool:
    """Numbers, the spec's variables and + - * / // % ** (the expression language
    evaluates it)."""
    return all(
        isinstance(n, _ARITHMETIC)
        and not (isinstance(n, ast.Name) and not n.id.startswith(_VARIABLE))
        and not (isinstance(n, ast.Constant) and (isinstance(n.value, bool) or not isinstance(n.value, (int, float))))
        for n in ast.walk(node)
    )


def _value(fn: str, param: str, node: ast.expr, source: str) -> float | str | Expression:
    words = _WORDS.get(param)
    if words is None:
        number = _number(node)
        if number is not None:
            return _finite(fn, param, number)
        if _is_arithmetic(node):
            return Expression((ast.get_source_segment(source, node) or "").replace(_VARIABLE, "$"))
        shown = ast.unparse(node).replace(_VARIABLE, "$")
        raise ValueError(f"{fn}: {param} must be a number or an expression of variables, not {shown!r}")
    word = node.id if isinstance(node, ast.Name) else node.value if isinstance(node, ast.Constant) else None
    if word not in words:
        shown = ast.unparse(node)
        hint = did_you_mean(shown, words) if isinstance(word, str) else None
        raise ValueError(
            f"{fn}: {param} must be one of {name_list(words)}, not {shown!r}" + (f" ({hint})" if hint else "")
        )
    return str(word)


@lru_cache(maxsize=256)
def parse_initializer(text: str) -> Initializer:
    """``"kaiming_uniform(mode=fan_out, nonlinearity=sigmoid)"`` as an Initializer; a
    ValueError says what is wrong (unknown function or parameter, a missing or
    misspelt value, a range the wrong way round)."""
    source = re.sub(r"\$(?=[A-Za-z_])", _VARIABLE, text.strip())
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError:
        raise ValueError(f"expected an initializer such as 'zeros' or 'normal(std=0.01)', not {text!r}") from None
    call = tree if isinstance(tree, ast.Call) else None
    head = call.func if call is not None else tree
    if not isinstance(head, ast.Name):
        raise ValueError(f"expected an initializer such as 'zeros' or 'normal(std=0.01)', not {text!r}")
    fn = head.id
    if fn not in INITIALIZERS:
        hint = did_you_mean(fn.removesuffix("_"), INITIALIZERS)
        raise ValueError(
            f"unknown initializer {fn!r}" + (f" ({hint})" if hint else f"; known: {name_list(INITIALIZERS)}")
        )
    params = dict(INITIALIZERS[fn])
    given: dict[str, float | str | Expression] = {}
    positional = call.args if call is not None else []
    keywords = call.keywords if call is not None else []
    if len(positional) > len(params):
        raise ValueError(f"{fn} takes at most {len(params)} argument(s) ({name_list(params) or 'none'})")
    for param, node in zip(params, positional):
        given[param] = _value(fn, param, node, source)
    for kw in keywords:
        if kw.arg is None:
            raise ValueError(f"{fn}: arguments are written name=value, not '**{ast.unparse(kw.value)}'")
        if kw.arg not in params:
            hint = did_you_mean(kw.arg, params)
            raise ValueError(
                f"{fn} has no parameter {kw.arg!r}"
                + (f" ({hint})" if hint else f"; it takes {name_list(params) or 'none'}")
            )
        if kw.arg in given:
            raise ValueError(f"{fn}: {kw.arg} is given twice")
        given[kw.arg] = _value(fn, kw.arg, kw.value, source)
    missing = [p for p, default in params.items() if default is None and p not in given]
    if missing:
        raise ValueError(f"{fn} needs {name_list(missing)} (e.g. '{fn}(0.5)')")
    _check_ranges(fn, params | given)
    return Initializer(fn, tuple((p, given[p]) for p in params if p in given))


def _check_ranges(fn: str, args: Mapping[str, Any]) -> None:
    """A range the wrong way round, a negative spread (once the values are numbers)."""
    a, b, std = args.get("a"), args.get("b"), args.get("std")
    if fn in ("uniform", "trunc_normal") and isinstance(a, float) and isinstance(b, float) and not a < b:
        raise ValueError(f"{fn}: the range a={a}, b={b} is empty (a must be below b)")
    if fn in ("normal", "trunc_normal") and isinstance(std, float) and std < 0:
        raise ValueError(f"{fn}: std must not be negative, not {std}")


def _initializer(text: Any) -> str:
    if not isinstance(text, str):
        raise ValueError(f"expected an initializer such as 'zeros' or 'normal(std=0.01)', not {text!r}")
    parse_initializer(text)
    return text


#: an initializer's text, checked when the spec is read
InitializerText = Annotated[str, AfterValidator(_initializer)]
#: parameter name (``weight``, ``bias``) -> its initializer
TensorRules = dict[str, InitializerText]


class InitRules(BaseModel):
    """The mapping form of ``init``: a scheme, then rules by op and by layer."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    #: what sets every tensor first
    scheme: Literal["torchvision", "pytorch"] = "torchvision"
    #: op name -> rules for every layer of that op
    ops: dict[str, TensorRules] = {}
    #: layer name, block or repeat name, or glob -> rules for those layers (after ``ops``)
    layers: dict[str, TensorRules] = {}


def _form(value: Any) -> str:
    return "<rules>" if isinstance(value, dict) else "<scheme>"


#: the ``init`` key: a scheme's name or the mapping. Validated by its form, so that an
#: error reads as that form's (the tags in angle brackets are left out of error keys)
Init = Annotated[
    Annotated[Literal["torchvision", "pytorch"], Tag("<scheme>")] | Annotated[InitRules, Tag("<rules>")],
    Discriminator(_form),
]


def scheme_of(init: str | InitRules) -> str:
    return init if isinstance(init, str) else init.scheme
