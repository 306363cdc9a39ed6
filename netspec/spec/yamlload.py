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

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from netspec.errors import Location, SpecError

MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_VALUES = 2_000_000  # values after alias expansion
MAX_DEPTH = 100

Path = tuple[Any, ...]

_Y = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {None, "!", _Y + "str", _Y + "int", _Y + "float", _Y + "bool", _Y + "null", _Y + "map", _Y + "seq"}
_SCALAR_TAGS = {_Y + "int", _Y + "float", _Y + "bool", _Y + "null"}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Document:
    """Parsed YAML data with the location of each value (and of each mapping key)."""

    data: Any
    path: str
    locs: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_locs: dict[Path, tuple[int, int]] = field(default_factory=dict)
    #: the column where the text of each one-line expression starts (after a quote)
    text_cols: dict[Path, int] = field(default_factory=dict)
    _cache: dict[Path, Location] = field(default_factory=dict, repr=False)  # loc() results

    def loc(self, path: Path = (), *, key: bool = False) -> Location:
        """Location of the value at ``path`` (of its key with ``key=True``).

        Falls back to the nearest enclosing value that has one, e.g. for values that
        came from an alias or that are missing.
        """
        p = tuple(path)
        if key and p in self.key_locs:
            return Location(self.path, *self.key_locs[p])
        found = self._cache.get(p)
        if found is None:
            q = p
            while q and q not in self.locs:
                q = q[:-1]
            found = self._cache[p] = Location(self.path, *self.locs.get(q, (1, 1)))
        return found

    def text_loc(self, path: Path, offset: int) -> Location:
        """Location of character ``offset`` of the string at ``path`` (for expressions);
        the string's own location where its characters cannot be placed exactly."""
        loc = self.loc(path)
        col = self.text_cols.get(tuple(path))
        return Location(self.path, loc.line, col + offset) if col is not None else loc


def _at(path: str, mark: Any) -> Location:
    return Location(path, mark.line + 1, mark.column + 1) if mark is not None else Location(path, 1, 1)


class _Frame:
    __slots__ = ("anchor", "container", "is_map", "key", "key_mark", "merged", "path", "weight")

    def __init__(self, container: Any, path: Path, anchor: str | None) -> None:
        self.container = container
        self.path = path
        self.is_map = isinstance(container, dict)
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

    def check_tag(tag: str | None, mark: Any) -> None:
        if tag not in _ALLOWED_TAGS:
            shown = "!!" + tag[len(_Y) :] if tag and tag.startswith(_Y) else tag  # as it was written
            raise SpecError(
                f"YAML tag '{shown}' is not allowed: a spec holds plain data only (mappings, lists, numbers, strings)",
                _at(path, mark),
            )

    def add(value: Any, weight: int, new: int, mark: Any, anchor: str | None) -> None:
        """Attach a finished value (``weight`` values once expanded, ``new`` of them not
        yet counted) to the container on top of the stack."""
        nonlocal total
        total += new
        if total > MAX_VALUES:
            raise SpecError(
                f"spec expands to more than {MAX_VALUES:,} values (an alias expansion bomb?)", _at(path, mark)
            )
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
                doc.key_locs[(*top.path, value)] = (mark.line + 1, mark.column + 1)
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

    try:
        for event in yaml.parse(text, Loader=loader):
            mark = event.start_mark
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise SpecError("a spec file holds one YAML document; found a second one", _at(path, mark))
            elif isinstance(event, yaml.ScalarEvent):
                check_tag(event.tag, mark)
                value = _scalar(event, resolver, ctor, scalars)
                if not (stack and stack[-1].is_map and stack[-1].key_mark is None):
                    p = child_path() if stack else ()
                    doc.locs[p] = (mark.line + 1, mark.column + 1)
                    if "$" in event.value and event.style in (None, "", "'", '"') and event.end_mark.line == mark.line:
                        doc.text_cols[p] = mark.column + 1 + bool(event.style)  # plain style is None or ""
                add(value, 1, 1, mark, event.anchor)
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                check_tag(event.tag, mark)
                if len(stack) >= MAX_DEPTH:
                    raise SpecError(f"nesting deeper than {MAX_DEPTH} levels", _at(path, mark))
                if stack and stack[-1].is_map and stack[-1].key_mark is None:
                    raise SpecError("a mapping key must be a plain value", _at(path, mark))
                p = child_path() if stack else ()
                doc.locs[p] = (mark.line + 1, mark.column + 1)
                container: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
                stack.append(_Frame(container, p, event.anchor))
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = stack.pop()  # its children were counted as they were added
                add(frame.container, frame.weight, 1, mark, frame.anchor)
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    raise SpecError(f"unknown alias '*{event.anchor}'", _at(path, mark))
                value, weight = anchors[event.anchor]
                if not (stack and stack[-1].is_map and stack[-1].key_mark is None):
                    doc.locs[child_path() if stack else ()] = (mark.line + 1, mark.column + 1)
                add(value, weight, weight, mark, None)
    except yaml.MarkedYAMLError as e:
        if loader is not yaml.SafeLoader and e.problem == "exceeded maximum nesting depth":
            raise _DeeperThanLibyaml from None
        where = e.problem_mark or e.context_mark
        msg = e.problem or e.context or "invalid YAML"
        raise SpecError(f"YAML syntax error: {msg}", _at(path, where)) from None
    except yaml.reader.ReaderError as e:  # control characters; str(e) spans two lines, without a line number
        raise SpecError(f"YAML error: {_reader_problem(e)}", _offset_at(path, text, e.position, loader)) from None
    except yaml.YAMLError as e:
        raise SpecError(f"YAML error: {' '.join(str(e).split())}", Location(path)) from None
    return doc


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


def _scalar(event: Any, resolver: Any, ctor: Any, cache: dict[tuple[str, Any], Any]) -> Any:
    tag = event.tag
    if tag not in (None, "!"):  # explicit standard tags (others were refused)
        return _construct(tag, event, ctor)
    # An untagged scalar's value depends on its text only, and specs repeat a few texts.
    key = (event.value, event.implicit)
    if key not in cache:
        tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _Y + "str" and event.implicit[0] and _FLOAT_12.match(event.value):
            tag = _Y + "float"  # '1e-5': a float in YAML 1.2 and to every reader, a string in YAML 1.1
        cache[key] = _construct(tag, event, ctor)
    return cache[key]


_FLOAT_12 = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _construct(tag: str, event: Any, ctor: Any) -> Any:
    if tag == _Y + "merge":
        return MERGE
    if tag in _SCALAR_TAGS:
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark)
        return ctor.yaml_constructors[tag](ctor, node)
    return event.value  # strings, and implicit timestamps etc. kept as text
