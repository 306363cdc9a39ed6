"""A safe YAML reader that remembers where every value came from.

It builds plain Python data (dicts, lists, str, int, float, bool, None) straight from
the parser's event stream, without recursion, so that:

* every value and every mapping key has a line and column (``Document.loc``);
* tags that would construct Python objects are refused, never executed;
* duplicate keys are an error instead of a silent overwrite;
* alias expansion bombs, very deep nesting and huge files are refused early, with
  bounded memory (aliases share one object; their expanded size is counted).
"""

from __future__ import annotations

import math
import re
from array import array
from dataclasses import dataclass, field
from typing import Any

import yaml

from netspec.errors import Location, SpecError
from netspec.spec.expr import LIMIT

MAX_FILE_BYTES = 32 * 1024 * 1024
# Values after alias expansion. PyYAML takes ~1 us to hand over each value, so this
# also bounds the time to refuse a huge list (~1 s); a 100,000-layer flat spec has 650,000.
MAX_VALUES = 1_000_000
MAX_DEPTH = 100

Path = tuple[Any, ...]

_Y = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_Y + "int", _Y + "float", _Y + "bool", _Y + "null"}
# the tags a spec may write, by the kind of node they fit
_TAGS_OF = {"scalar": {None, "!", _Y + "str", *_SCALAR_TAGS}, "mapping": {None, "!", _Y + "map"}}
_TAGS_OF["list"] = {None, "!", _Y + "seq"}
_ALLOWED_TAGS = set().union(*_TAGS_OF.values())
_NULLS = {"", "~", "null", "Null", "NULL"}
_SURROGATE = re.compile("[\ud800-\udfff]")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Document:
    """Parsed YAML data with the location of each value (and of each mapping key)."""

    data: Any
    path: str
    #: where each value starts, by the path of its container: a list's values by index
    #: (an array), a mapping's by key, packed as ``line << 32 | column``. Per value that
    #: is 8 to 40 bytes; a dict of path tuples to (line, col) tuples took 220, so two
    #: million values held 450 MB of locations before MAX_VALUES refused them.
    locs: dict[Path, Any] = field(default_factory=dict)
    key_locs: dict[Path, dict[Any, int]] = field(default_factory=dict)  # a mapping's keys, by key
    root: int = 0  # where the top value starts (packed)
    #: the column where the text of each one-line expression starts (after a quote)
    text_cols: dict[Path, int] = field(default_factory=dict)
    _cache: dict[Path, Location] = field(default_factory=dict, repr=False)  # loc() results

    def loc(self, path: Path = (), *, key: bool = False) -> Location:
        """Location of the value at ``path`` (of its key with ``key=True``).

        Falls back to the nearest enclosing value that has one, e.g. for values that
        came from an alias or that are missing.
        """
        p = tuple(path)
        if key and p and (packed := self.key_locs.get(p[:-1], {}).get(p[-1], 0)):
            return self._location(packed)
        found = self._cache.get(p)
        if found is None:
            q, packed = p, 0
            while q and not (packed := self._packed(q)):
                q = q[:-1]
            found = self._cache[p] = self._location(packed if q else self.root)
        return found

    def _packed(self, path: Path) -> int:
        children = self.locs.get(path[:-1])
        if isinstance(children, dict):
            return children.get(path[-1], 0)  # type: ignore[no-any-return]
        i = path[-1]
        return children[i] if children is not None and type(i) is int and 0 <= i < len(children) else 0

    def _location(self, packed: int) -> Location:
        return Location(self.path, packed >> 32, packed & 0xFFFFFFFF) if packed else Location(self.path, 1, 1)

    def text_loc(self, path: Path, offset: int) -> Location:
        """Location of character ``offset`` of the string at ``path`` (for expressions);
        the string's own location where its characters cannot be placed exactly."""
        loc = self.loc(path)
        col = self.text_cols.get(tuple(path))
        return Location(self.path, loc.line, col + offset) if col is not None else loc


def _at(path: str, mark: Any) -> Location:
    return Location(path, mark.line + 1, mark.column + 1) if mark is not None else Location(path, 1, 1)


def _char_at(path: str, text: str, i: int) -> Location:
    """Location of character ``i`` of ``text``."""
    return Location(path, text.count("\n", 0, i) + 1, i - text.rfind("\n", 0, i))


class _Frame:
    __slots__ = ("anchor", "container", "is_map", "key", "key_locs", "key_mark", "locs", "merged", "path", "weight")

    def __init__(self, container: Any, path: Path, anchor: str | None) -> None:
        self.container = container
        self.path = path
        self.is_map = isinstance(container, dict)
        self.locs: Any = {} if self.is_map else array("Q")  # where the children start (packed)
        self.key_locs: dict[Any, int] = {}
        self.key: Any = None
        self.key_mark: Any = None
        self.weight = 1
        self.anchor = anchor
        self.merged: set[Any] = set()  # keys that came from a '<<' merge (explicit keys override them)


class _DeeperThanLibyaml(Exception):
    """libyaml's own nesting limit fired: its scanner reads ahead of the events (a whole
    run of '[' at once), so it can meet its limit before netspec sees level 100."""


def parse_yaml(text: str, path: str = "<string>") -> Document:
    """Parse one YAML document into located plain data, or raise a located SpecError."""
    if len(text) > MAX_FILE_BYTES:
        raise SpecError(f"spec is too large ({len(text):,} bytes; the limit is {MAX_FILE_BYTES:,})", Location(path))
    if not text.isascii() and (bad := _SURROGATE.search(text)):  # libyaml would fail to encode it
        char = f"U+{ord(bad.group()):04X}"
        raise SpecError(
            f"YAML error: character {char} is not allowed (a lone surrogate)", _char_at(path, text, bad.start())
        )
    try:
        return _parse(text, path, _Loader)
    except _DeeperThanLibyaml:
        # Only very deep text gets here; the pure-Python scanner has no limit of its
        # own, so netspec's limit reports it, at the level where it is crossed.
        return _parse(text, path, yaml.SafeLoader)


def _parse(text: str, path: str, loader: Any) -> Document:
    doc = Document(None, path)
    resolver = yaml.resolver.Resolver()
    ctor = yaml.constructor.SafeConstructor()
    anchors: dict[str, tuple[Any, int]] = {}
    scalars: dict[tuple[str, Any], Any] = {}
    stack: list[_Frame] = []
    total = 0
    documents = 0

    def child_path() -> Path:
        top = stack[-1]
        return top.path + ((top.key,) if top.is_map else (len(top.container),))

    def check_tag(tag: str | None, mark: Any, kind: str) -> None:
        if tag not in _TAGS_OF[kind]:
            if tag in _ALLOWED_TAGS:
                raise SpecError(f"YAML tag '{_shown(tag)}' does not fit a {kind}", _at(path, mark))
            raise SpecError(
                f"YAML tag '{_shown(tag)}' is not allowed: a spec holds plain data only (mappings, lists, numbers, strings)",
                _at(path, mark),
            )

    def place(top: _Frame | None, mark: Any) -> None:
        """Record where the value about to be added to ``top`` starts (a value, not a key)."""
        packed = (mark.line + 1) << 32 | (mark.column + 1)
        if top is None:
            doc.root = packed
        elif top.is_map:
            top.locs[top.key] = packed
        else:
            top.locs.append(packed)

    def add(value: Any, weight: int, new: int, mark: Any, anchor: str | None) -> None:
        """Attach a finished value (``weight`` values once expanded, ``new`` of them not
        yet counted) to the container on top of the stack."""
        nonlocal total
        total += new
        if total > MAX_VALUES:
            bomb = " (an alias expansion bomb?)" if anchors else ""
            raise SpecError(f"spec expands to more than {MAX_VALUES:,} values{bomb}", _at(path, mark))
        if anchor is not None:
            anchors[anchor] = (value, weight)
        if not stack:
            doc.data = value
            return
        top = stack[-1]
        top.weight += weight
        if not top.is_map:
            top.container.append("<<" if value is MERGE else value)
        elif top.key_mark is None:  # this value is a key
            if isinstance(value, (dict, list)):
                raise SpecError("a mapping key must be a plain value", _at(path, mark))
            if value in top.container and value not in top.merged:
                raise SpecError(f"duplicate key '{value}'", _at(path, mark))
            top.merged.discard(value)
            top.key, top.key_mark = value, mark
            if value is not MERGE:
                top.key_locs[value] = (mark.line + 1) << 32 | (mark.column + 1)
        elif top.key is MERGE:
            merge(top, value, mark)
        else:
            top.container[top.key] = "<<" if value is MERGE else value
            top.key_mark = None

    def merge(top: _Frame, value: Any, mark: Any) -> None:
        """YAML's merge key: ``<<: *base`` (or a list of them) adds the keys the mapping
        does not set itself; the first source wins among several."""
        sources = value if isinstance(value, list) else [value]
        if not sources or not all(isinstance(v, dict) for v in sources):
            raise SpecError("a merge key '<<' takes a mapping or a list of mappings", _at(path, mark))
        for source in sources:
            for k, v in source.items():
                if k not in top.container:
                    top.container[k] = v
                    top.merged.add(k)
        top.key_mark = None

    parser = None
    try:
        # get_event() in a loop, and events told apart by class, the commonest first: a
        # spec is mostly scalars, and yaml.parse's generator and isinstance chains took
        # a third of the time to the MAX_VALUES limit.
        parser = loader(text)
        while (cls := (event := parser.get_event()).__class__) is not yaml.StreamEndEvent:
            mark = event.start_mark
            top = stack[-1] if stack else None
            is_key = top is not None and top.is_map and top.key_mark is None
            if cls is yaml.ScalarEvent:
                if event.tag is not None:
                    check_tag(event.tag, mark, "scalar")
                try:
                    value = _scalar(event, resolver, ctor, scalars)
                except _BadScalar as e:
                    keys = [k for k in (child_path() if top and not is_key else ()) if isinstance(k, str)]
                    raise SpecError(f"'{keys[-1]}': {e}" if keys else str(e), _at(path, mark)) from None
                if not is_key:
                    place(top, mark)
                    if "$" in event.value and event.style in (None, "", "'", '"') and event.end_mark.line == mark.line:
                        # the plain style is None or ""; a quoted text starts after its quote
                        doc.text_cols[child_path() if stack else ()] = mark.column + 1 + bool(event.style)
                add(value, 1, 1, mark, event.anchor)
            elif cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
                frame = stack.pop()  # its children were counted as they were added
                add(frame.container, frame.weight, 1, mark, frame.anchor)
            elif cls is yaml.MappingStartEvent or cls is yaml.SequenceStartEvent:
                is_map = cls is yaml.MappingStartEvent
                check_tag(event.tag, mark, "mapping" if is_map else "list")
                if len(stack) >= MAX_DEPTH:
                    raise SpecError(f"nesting deeper than {MAX_DEPTH} levels", _at(path, mark))
                if is_key:
                    raise SpecError("a mapping key must be a plain value", _at(path, mark))
                p = child_path() if stack else ()
                place(top, mark)
                frame = _Frame({} if is_map else [], p, event.anchor)
                doc.locs[p] = frame.locs
                if is_map:
                    doc.key_locs[p] = frame.key_locs
                stack.append(frame)
            elif cls is yaml.AliasEvent:
                if event.anchor not in anchors:
                    raise SpecError(f"unknown alias '*{event.anchor}'", _at(path, mark))
                value, weight = anchors[event.anchor]
                if not is_key:
                    place(top, mark)
                add(value, weight, weight, mark, None)
            elif cls is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise SpecError("a spec file holds one YAML document; found a second one", _at(path, mark))
    except yaml.MarkedYAMLError as e:
        if loader is not yaml.SafeLoader and e.problem == "exceeded maximum nesting depth":
            raise _DeeperThanLibyaml from None
        where = e.problem_mark or e.context_mark
        msg = e.problem or e.context or "invalid YAML"
        raise SpecError(f"YAML syntax error: {msg}", _at(path, where), hint=_syntax_hint(text, where, msg)) from None
    except yaml.reader.ReaderError as e:  # control characters; str(e) spans two lines, without a line number
        raise SpecError(f"YAML error: {_reader_problem(e)}", _offset_at(path, text, e.position, loader)) from None
    except yaml.YAMLError as e:
        raise SpecError(f"YAML error: {' '.join(str(e).split())}", Location(path)) from None
    finally:
        if parser is not None:
            parser.dispose()
    return doc


def _syntax_hint(text: str, mark: Any, problem: str) -> str | None:
    """What a YAML syntax error usually means, in a spec's words."""
    line = text.splitlines()[mark.line] if mark is not None and mark.line < len(text.splitlines()) else ""
    if mark is not None and "\t" in line[: mark.column + 1]:
        return "YAML indents with spaces, not tabs: replace the tab"
    if "expected key" in problem or "mapping values are not allowed" in problem or "expected <block end>" in problem:
        return "check this line's indentation: the items of one list or mapping start in the same column"
    if "flow" in problem or "expected ',' or" in problem:
        return "inside {...} or [...], separate items with commas and quote values that contain ':' or ','"
    return None


def _reader_problem(e: Any) -> str:
    char = e.character
    return f"character {f'U+{char:04X}' if isinstance(char, int) else repr(char)} is not allowed ({e.reason})"


def _offset_at(path: str, text: str, position: int, loader: Any) -> Location:
    # libyaml counts the offset in UTF-8 bytes, the pure-Python reader in characters
    before = (
        text.encode("utf-8")[:position].decode("utf-8", "ignore") if loader is not yaml.SafeLoader else text[:position]
    )
    return Location(path, before.count("\n") + 1, len(before) - before.rfind("\n"))


MERGE = object()  # a plain '<<' key: YAML's merge key


def _shown(tag: str | None) -> str | None:
    return "!!" + tag[len(_Y) :] if tag and tag.startswith(_Y) else tag  # as it was written


class _BadScalar(Exception):
    """A scalar that is no value of its tag, or a number out of range (no location yet)."""


def _scalar(event: Any, resolver: Any, ctor: Any, cache: dict[tuple[str, Any], Any]) -> Any:
    tag = event.tag
    if tag is not None and tag != "!":  # explicit standard tags (others were refused)
        return _construct(tag, event, ctor, explicit=True)
    # An untagged scalar's value depends on its text only, and specs repeat a few texts
    # (a bounded cache: a list of a million different numbers would fill it for nothing).
    key = (event.value, event.implicit)
    value = cache.get(key, cache)
    if value is cache:
        tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _Y + "str" and event.implicit[0] and _FLOAT_12.match(event.value):
            tag = _Y + "float"  # '1e-5': a float in YAML 1.2 and to every reader, a string in YAML 1.1
        value = _construct(tag, event, ctor)
        if len(cache) < 10_000:
            cache[key] = value
    return value


_FLOAT_12 = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _construct(tag: str, event: Any, ctor: Any, explicit: bool = False) -> Any:
    """The value of a scalar; numbers are bounded here, where they enter, so that no
    later arithmetic meets a 5,000-digit integer or an infinity."""
    if tag == _Y + "merge":
        return MERGE
    text = event.value
    if tag not in _SCALAR_TAGS:
        return text  # strings, and implicit timestamps etc. kept as text
    if tag == _Y + "int" and len(text.lstrip("+-0_")) > 100:  # before int(), which refuses 4,300 digits
        raise _BadScalar(f"integer {text} is beyond 64-bit integers")
    try:
        value = ctor.yaml_constructors[tag](ctor, yaml.ScalarNode(tag, text, event.start_mark, event.end_mark))
    except Exception:  # PyYAML's constructors assume text their tag's pattern matched
        if not explicit:
            return text  # an implicit match that is no number after all ('._'): a string
        raise _BadScalar(f"value '{text}' is not a valid {_shown(tag)}") from None
    if tag == _Y + "null" and text not in _NULLS:  # PyYAML makes None of any text
        raise _BadScalar(f"value '{text}' is not a valid !!null")
    if isinstance(value, float) and not math.isfinite(value):
        raise _BadScalar(f"number {text} is not finite (or too large for a float)")
    if type(value) is int and not -LIMIT < value < LIMIT:
        raise _BadScalar(f"integer {text} is beyond 64-bit integers")
    return value
