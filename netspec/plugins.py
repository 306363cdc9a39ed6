"""Custom ops from plugins: a user's Python file, or a module an installed package
names in the entry point group ``netspec.ops``, registers ops with the same API as the
built-in ops (an ``Op`` subclass with ``Attrs`` and rules, ``@register_op``), and
their lowerings:

* PyTorch: ``@torch_module(op, args)`` on an ``nn.Module`` class: the layer is an
  instance built with the keyword arguments ``args(attrs, ins, out)`` gives (plain
  values: numbers, booleans, strings, tuples of them) and called on the layer's inputs.
* ONNX and Graphviz (optional): ``@lowering("onnx", op)`` on a function of the onnx
  backend's ``Ctx`` (as the built-in lowerings are written), ``@lowering("graphviz",
  op)`` on a function of the graphviz backend's ``Ctx`` returning the label. A backend
  without a lowering for a plugin op refuses it in one located line naming the op and
  the plugin.

A spec names files with ``plugins: [my_ops.py]`` (relative to the spec). Loading is
idempotent (a file is imported once per process, by its resolved path, so two specs may
name it), and atomic: a file that fails to import, registers no op, or registers a name
that exists (a built-in op never is shadowed) is one located ``SpecError`` and leaves
the registry as it was. Entry points load when a spec names an op the registry does not
know (scanning installed packages takes tens of milliseconds, paid only then).

The generated PyTorch source reaches a plugin's class through the same loading:
``plugin_x = load_plugin("/abs/path/x.py")`` (or ``import pkg.mod as plugin_x`` for
an installed package), so the in-memory module and the written file build the same
class. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from netspec.errors import Location, SpecError
from netspec.ops import REGISTRY, Shape

BACKENDS = ("onnx", "graphviz")  # those with optional lowerings; torch has torch_module
ENTRY_POINT_GROUP = "netspec.ops"

T = TypeVar("T")


@dataclass(frozen=True)
class TorchModule:
    """A plugin op's PyTorch lowering: the class (an attribute of its plugin's module)
    and the constructor's keyword arguments for a layer."""

    class_name: str
    args: Callable[[Any, list[Shape], Shape], Mapping[str, Any]]


@dataclass(eq=False)  # each loaded plugin is itself (hashable by identity)
class Plugin:
    """A loaded plugin: where it came from, its module and the ops it registered."""

    source: str  # what messages name: the file's path as the spec wrote it, or "package.module"
    module: ModuleType
    #: how generated source imports it (``load_plugin`` of the resolved path, or a package import)
    path: str | None
    alias: str  # the module's name in generated source
    ops: list[str] = field(default_factory=list)
    torch: dict[str, TorchModule] = field(default_factory=dict)
    lowerings: dict[str, dict[str, Callable[..., Any]]] = field(default_factory=dict)  # backend -> op -> fn


#: loaded plugins by module name (``sys.modules`` key)
_PLUGINS: dict[str, Plugin] = {}
#: plugin op name -> its plugin
_OPS: dict[str, Plugin] = {}
_entry_points_loaded = False


def _module_plugin(module_name: str, what: str) -> Plugin:
    plugin = _PLUGINS.get(module_name)
    if plugin is None:
        raise TypeError(f"{what} is used outside a netspec plugin (module '{module_name}')")
    return plugin


def torch_module(op: str, args: Callable[[Any, list[Shape], Shape], Mapping[str, Any]]) -> Callable[[T], T]:
    """Class decorator: ``op``'s PyTorch lowering builds this ``nn.Module`` class with
    ``cls(**args(attrs, input_shapes, output_shape))`` and calls it on the layer's
    inputs. Under the torchvision scheme it is initialised with ``reset_module``."""

    def deco(cls: T) -> T:
        plugin = _module_plugin(getattr(cls, "__module__", ""), "@torch_module")
        plugin.torch[op] = TorchModule(getattr(cls, "__qualname__", ""), args)
        return cls

    return deco


def lowering(backend: str, op: str) -> Callable[[T], T]:
    """Function decorator: ``op``'s lowering in ``backend`` (``onnx``: a function of the
    onnx backend's ``Ctx`` that emits nodes; ``graphviz``: a function of the graphviz
    backend's ``Ctx`` that returns the label)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}' (plugins lower to {', '.join(BACKENDS)}; torch: @torch_module)")

    def deco(fn: T) -> T:
        plugin = _module_plugin(getattr(fn, "__module__", ""), "@lowering")
        plugin.lowerings.setdefault(backend, {})[op] = fn  # type: ignore[assignment]
        return fn

    return deco


def plugin_of(op: str) -> Plugin | None:
    """The plugin that registered ``op``, or None for a built-in op."""
    return _OPS.get(op)


def backend_lowering(backend: str, op: str, layer: str, where: Location | None) -> Any:
    """A plugin op's lowering in ``backend`` ("torch": its ``TorchModule``), None for an
    op no plugin registered, or a SpecError (located at the layer) if its plugin has none."""
    plugin = _OPS.get(op)
    if plugin is None:
        return None
    found = plugin.torch.get(op) if backend == "torch" else plugin.lowerings.get(backend, {}).get(op)
    if found is None:
        raise SpecError(
            f"layer '{layer}': op '{op}' of plugin {plugin.source} has no {backend} lowering",
            where,
            hint=f"the plugin can give one with @{'torch_module' if backend == 'torch' else 'lowering'}",
            layer=layer,
        )
    return found


def source_imports(ops: Iterable[str]) -> list[str]:
    """The lines of generated source that import the plugins of ``ops`` (none for
    built-in ops only)."""
    used = list(dict.fromkeys(p for p in (_OPS.get(op) for op in ops) if p is not None))
    if not used:
        return []
    lines = ["from netspec.plugins import load_plugin, reset_module", ""]
    for p in used:
        if p.path is not None:
            lines.append(f"{p.alias} = load_plugin({json.dumps(p.path)})  # ops {', '.join(p.ops)}")
        else:
            lines.append(f"import {p.module.__name__} as {p.alias}  # ops {', '.join(p.ops)}")
    return lines


def reset_module(module: Any) -> None:
    """A plugin module's initialisation under the torchvision scheme (its tensors are
    materialised uninitialised): ``reset_parameters()`` of the module, or, where it has
    none, of each of its submodules in turn. A module holding tensors of its own without
    ``reset_parameters`` is refused: they would keep whatever the memory held."""
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()
        return
    own = [n for n, _ in module.named_parameters(recurse=False)] + [n for n, _ in module.named_buffers(recurse=False)]
    if own:
        raise SpecError(
            f"plugin module {type(module).__qualname__} holds tensors of its own ({', '.join(own)}) "
            "but has no reset_parameters() to initialise them",
            hint="define reset_parameters(), or build the layer with init: pytorch",
        )
    for child in module.children():
        reset_module(child)


# --- loading -------------------------------------------------------------------------


def _alias(stem: str) -> str:
    base = "plugin_" + (re.sub(r"\W", "_", stem) or "ops")
    taken = {p.alias for p in _PLUGINS.values()}
    alias, k = base, 2
    while alias in taken:
        alias, k = f"{base}_{k}", k + 1
    return alias


def _owner(name: str) -> str:
    plugin = _OPS.get(name)
    return f"plugin {plugin.source}" if plugin is not None else "a built-in op"


def _failure(exc: BaseException, path: str | None, source: str) -> SpecError:
    """One located line for an exception raised while importing a plugin: at the line
    of the plugin's file that raised it (or the innermost frame of it)."""
    import traceback  # imported when needed: every spec loads this module

    if isinstance(exc, SyntaxError) and exc.filename and path and os.path.realpath(exc.filename) == path:
        return SpecError(
            f"plugin {source} cannot be imported: {exc.msg}",
            Location(exc.filename, exc.lineno or 0, exc.offset or 0),
        )
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if path is None or os.path.realpath(f.filename) == path
    ]
    where = Location(frames[-1].filename, frames[-1].lineno or 0, (frames[-1].colno or 0) + 1) if frames else None
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    match = re.fullmatch(r"op name '(.+)' is registered twice", text)
    if isinstance(exc, ValueError) and match:
        name = match.group(1)
        return SpecError(
            f"plugin {source} registers op '{name}', which is {_owner(name)}",
            where,
            hint="a plugin never shadows an op: give yours another name",
        )
    return SpecError(f"plugin {source} cannot be imported: {type(exc).__name__}{': ' + text if text else ''}", where)


def _load(module_name: str, source: str, path: str | None, run: Callable[[ModuleType | None], ModuleType]) -> Plugin:
    """Import a plugin (``run`` executes it), recording the ops it registers; on any
    failure the registry and ``sys.modules`` are left as they were."""
    before = dict(REGISTRY)
    stem = os.path.splitext(os.path.basename(path))[0] if path else module_name.rpartition(".")[2]
    plugin = Plugin(source, ModuleType(module_name), path, _alias(stem))
    _PLUGINS[module_name] = plugin
    try:
        plugin.module = run(plugin.module)
        plugin.ops = sorted({op.name for key, op in REGISTRY.items() if key not in before})
        if not plugin.ops:
            raise SpecError(
                f"plugin {source} defines no op",
                Location(path) if path else None,
                hint="register one with @register_op from netspec.ops, as the built-in ops do",
            )
        given: list[tuple[str, list[str]]] = [("torch", list(plugin.torch))]
        given += [(b, list(plugin.lowerings.get(b, {}))) for b in BACKENDS]
        for what, ops in given:
            stray = [op for op in ops if op not in plugin.ops]
            if stray:
                raise SpecError(
                    f"plugin {source} gives op '{stray[0]}' a lowering in {what} but does not register it",
                    Location(path) if path else None,
                )
    except BaseException as e:
        REGISTRY.clear()
        REGISTRY.update(before)
        del _PLUGINS[module_name]
        sys.modules.pop(module_name, None)
        if isinstance(e, SpecError):
            raise
        if not isinstance(e, Exception):  # KeyboardInterrupt, SystemExit
            raise
        raise _failure(e, path, source) from None
    for op in plugin.ops:
        _OPS[op] = plugin
    return plugin


def load_plugin(path: str | os.PathLike[str], source: str | None = None) -> ModuleType:
    """Import the plugin file ``path`` once per process (again: the same module) and
    return its module; ``source`` is how messages name it (default: the path)."""
    import importlib.util

    real = os.path.realpath(os.fspath(path))
    module_name = "netspec_plugin_" + re.sub(r"\W", "_", real)
    if module_name in _PLUGINS:
        return _PLUGINS[module_name].module
    shown = source or os.fspath(path)
    if not os.path.isfile(real):
        raise SpecError(f"plugin {shown}: no such file", Location(os.fspath(path)))
    spec = importlib.util.spec_from_file_location(module_name, real)
    if spec is None or spec.loader is None:
        raise SpecError(f"plugin {shown} is not a Python file", Location(os.fspath(path)), hint="name a .py file")
    loader = spec.loader

    def run(_: ModuleType | None) -> ModuleType:
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        _PLUGINS[module_name].module = module
        loader.exec_module(module)
        return module

    return _load(module_name, shown, real, run).module


def load_plugins(names: Iterable[str], spec_path: str, where: Callable[[int], Location]) -> None:
    """The plugin files a spec names (relative to the spec's directory; ``where(i)``
    locates item ``i`` of the spec's ``plugins`` list)."""
    base = os.path.dirname(spec_path) if not spec_path.startswith("<") else os.getcwd()
    for i, name in enumerate(names):
        path = os.path.join(base, os.path.expanduser(name))
        if not name.endswith(".py"):
            raise SpecError(f"plugin {name} is not a Python file", where(i), hint="name a .py file")
        if not os.path.isfile(path):
            raise SpecError(
                f"plugin {name}: no such file ({os.path.abspath(path)})",
                where(i),
                hint="plugins are named relative to the spec's directory",
            )
        load_plugin(path, name)


def load_entry_points() -> None:
    """The modules installed packages name in the entry point group ``netspec.ops``
    (once per process)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    from importlib.metadata import entry_points  # tens of milliseconds to import: only here

    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        module_name = ep.module
        if module_name in _PLUGINS:
            continue
        source = f"{module_name} (entry point '{ep.name}' of {ep.dist.name if ep.dist else 'an installed package'})"

        def run(_: ModuleType | None, name: str = module_name) -> ModuleType:
            return importlib.import_module(name)

        _load(module_name, source, None, run)


def load_spec_plugins(model: Any, doc: Any) -> None:
    """What a spec needs loaded before its layers are validated: the files its
    ``plugins`` key names, and the entry points if it names an op nobody registered."""
    load_plugins(model.plugins, doc.path, lambda i: doc.loc(("plugins", i)))
    if unknown_ops(model):
        load_entry_points()


def unknown_ops(model: Any) -> bool:
    """Whether a spec's layers or blocks name an op that is neither registered nor one
    of its blocks (then the entry points may define it)."""
    blocks = set(getattr(model, "blocks", {}) or {})
    entries: list[Any] = list(model.layers)
    for block in (model.blocks or {}).values():
        entries += block.layers
    for entry in entries:
        op = entry.get("op") if isinstance(entry, dict) else entry
        if isinstance(op, str) and op not in REGISTRY and op not in blocks:
            return True
    return False
