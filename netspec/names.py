"""Layer names: those a PyTorch module cannot take, checked in the core (no torch),
and picking layers by pattern.

A layer's dotted name becomes the path of its module in the generated ``nn.Module``:
the first part is an attribute of the model, the others keys of nested
``nn.ModuleDict`` containers. A part that is already an attribute there (``forward``,
``training``, ``INPUT_SHAPES``; ``keys`` inside a block) would shadow it or be refused by
PyTorch when the model is built, so the spec is refused instead, where ``netspec check``
sees it. The lists are written out here, not read from torch, so the check needs no
torch; the torch backend uses them too, and a test keeps them a superset of what the
installed torch has.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

from netspec.errors import Location, SpecError, did_you_mean, name_list
from netspec.graph.ir import Graph, Node, instance_notes


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: ``dir(torch.nn.Module())`` (torch 2.13), with the attributes of older releases
MODULE_ATTRS = _words(
    """
    T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double
    dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule
    half ipu load_state_dict modules mtia named_buffers named_children named_modules named_parameters
    parameters register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
    register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to
    to_empty train training type xpu zero_grad
    __annotations__ __call__ __class__ __delattr__ __dict__ __dir__ __doc__ __eq__ __format__ __ge__
    __getattr__ __getattribute__ __getstate__ __gt__ __hash__ __init__ __init_subclass__ __le__ __lt__
    __module__ __ne__ __new__ __reduce__ __reduce_ex__ __repr__ __setattr__ __setstate__ __sizeof__
    __str__ __subclasshook__ __weakref__ __firstlineno__ __static_attributes__
    _apply _backward_hooks _backward_pre_hooks _buffers _call_impl _compiled_call_impl _forward_hooks
    _forward_hooks_always_called _forward_hooks_with_kwargs _forward_pre_hooks
    _forward_pre_hooks_with_kwargs _get_backward_hooks _get_backward_pre_hooks _get_name
    _is_full_backward_hook _load_from_state_dict _load_state_dict_post_hooks _load_state_dict_pre_hooks
    _maybe_warn_non_full_backward_hook _modules _named_members _non_persistent_buffers_set _parameters
    _register_load_state_dict_pre_hook _register_state_dict_hook _replicate_for_data_parallel
    _save_to_state_dict _slow_forward _state_dict_hooks _state_dict_pre_hooks _version _wrapped_call_impl
    """
)

#: what the generated module class defines beside nn.Module's own members
CLASS_MEMBERS = frozenset({"INPUTS", "INPUT_SHAPES", "OUTPUTS", "init_torchvision", "set_fixed_weights"})

#: ``dir(torch.nn.ModuleDict())`` beyond nn.Module's
MODULE_DICT_ATTRS = MODULE_ATTRS | _words(
    "clear items keys pop update values __contains__ __delitem__ __getitem__ __iter__ __len__ __setitem__"
)

#: names the first part of a layer's name cannot take, and those the other parts cannot
ROOT_RESERVED = MODULE_ATTRS | CLASS_MEMBERS
NESTED_RESERVED = MODULE_DICT_ATTRS


def reserved_why(part: str, depth: int) -> str | None:
    """Why ``part``, the ``depth``-th part of a dotted layer name, is reserved, or None."""
    if depth == 0:
        if part in CLASS_MEMBERS:
            return "a member of the generated PyTorch module class"
        return "an attribute of PyTorch's nn.Module" if part in MODULE_ATTRS else None
    if part in NESTED_RESERVED:
        return "an attribute of PyTorch's nn.ModuleDict (blocks and repeats become ModuleDicts)"
    return None


def reserved_error(node: Node, depth: int, why: str) -> SpecError:
    """A located error for the ``depth``-th part of ``node``'s name; a block instance
    or repeat is pointed at where it is written."""
    parts = node.name.split(".")
    prefix = ".".join(parts[: depth + 1])
    where = node.location
    if depth < len(parts) - 1:  # a container: the block instance or repeat that made it
        where = next((loc for inst, loc in node.callers if inst == prefix or inst.startswith(prefix + ".")), where)
    what = "layer" if depth == len(parts) - 1 else "block instance or repeat"
    return SpecError(
        f"layer '{node.name}': the name '{parts[depth]}' is reserved: it is {why}",
        where,
        hint=f"rename the {what} '{prefix}'",
        layer=node.name,
        notes=instance_notes(node.callers),
    )


def check_layer_names(graph: Graph) -> None:
    """Refuse a layer whose name (any dotted part) PyTorch reserves."""
    for node in graph:
        parts = node.name.split(".")
        if parts[0] not in ROOT_RESERVED and (len(parts) == 1 or NESTED_RESERVED.isdisjoint(parts[1:])):
            continue  # the common case, kept fast for specs of a million layers
        if node.name in graph.inputs:
            continue  # graph inputs are forward() arguments, never attributes
        for depth, part in enumerate(parts):
            why = reserved_why(part, depth)
            if why is not None:
                raise reserved_error(node, depth, why)


# --- picking layers by name -------------------------------------------------------
#
# A pattern is a layer-name prefix (``layer4`` picks ``layer4.0.conv1``, not
# ``layer40``) or a glob (``classifier.*``, ``layer[34]``); either picks a layer when it
# matches the layer's name or one of its dotted prefixes. Used by the spec's init
# rules, partial weight loading (``exclude``) and freezing and unfreezing.


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def picks(pattern: str, name: str) -> bool:
    """Whether ``pattern`` (a prefix or a glob) picks the layer ``name``."""
    if any(c in pattern for c in "*?["):
        return any(fnmatch.fnmatchcase(p, pattern) for p in _prefixes(name))
    return name == pattern or name.startswith(pattern + ".")


def pick(
    pattern: str, names: Sequence[str], what: str, where: Location | None, choices: Iterable[str] | None = None
) -> list[str]:
    """The names ``pattern`` picks, in order; none is a SpecError ("``what`` 'x' names
    no layer") with a did-you-mean over the names and their prefixes."""
    chosen = [n for n in names if picks(pattern, n)]
    if not chosen:
        words = dict.fromkeys(p for n in (choices if choices is not None else names) for p in _prefixes(n))
        hint = did_you_mean(pattern, words) or f"layers: {name_list(words)}"
        raise SpecError(f"{what} '{pattern}' names no layer", where, hint=hint)
    return chosen
