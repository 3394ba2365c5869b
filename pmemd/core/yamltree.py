"""(pure) ``pmemd.yaml``'s bytes → a small tree of located nodes, before any value is read.

The YAML is read as PyYAML's event stream, not loaded into Python objects, so that what a
config has no use for (several documents, anchors and aliases, explicit tags, absurd
nesting) is refused with its line and column, and so that YAML 1.1's surprises (``no``
→ false, ``010`` → 8) never happen: every scalar stays the text that was written, and
:mod:`pmemd.core.config` interprets it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from pmemd.core.sizes import SizeError, format_compared, parse_size
from pmemd.errors import Location, Problem, quoted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 16
# Values, lists and mappings in one document: 1,024 regions written out in full take about
# 30,000; a document of more is refused where it crosses the limit, which bounds the work
# (and the problems) of any input, about a second on a slow machine.
MAX_NODES = 50_000
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NULLS = ("", "~", "null", "Null", "NULL")
_STARTS = (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)
# What YAML does not allow in a stream (its c-printable set, which PyYAML checks too).
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd"
                            "\U00010000-\U0010ffff]")


@dataclass
class Node:
    kind: str  # "scalar" | "mapping" | "sequence"
    line: int
    column: int
    text: str = ""
    plain: bool = True  # a scalar written without quotes
    pairs: list[tuple[Node, Node]] = field(default_factory=list)
    items: list[Node] = field(default_factory=list)

    @property
    def is_null(self) -> bool:
        return self.kind == "scalar" and self.plain and self.text in _NULLS

    def describe(self) -> str:
        if self.kind != "scalar":
            return f"a {self.kind}"
        if self.is_null:
            return "nothing (null)"
        return quoted(self.text)


@dataclass(frozen=True)
class Document:
    """A config file's text, as lines (for the source line of a problem), and its tree
    (``None``: the file holds no document at all)."""

    path: str
    lines: tuple[str, ...]
    root: Node | None

    def problem(self, message: str, line: int, column: int) -> Problem:
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return Problem(message, "", Location(self.path, line, column), source)


class _Refused(Exception):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.line, self.column = line, column


def _mark(event: yaml.Event) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


class _Builder:
    """Builds the tree from the event stream, one event at a time."""

    def __init__(self) -> None:
        self.root: Node | None = None
        self.stack: list[Node] = []
        self.pending_key: list[Node | None] = []  # per open mapping: a key awaiting its value
        self.documents = 0
        self.nodes = 0

    def feed(self, event: yaml.Event) -> None:
        line, column = _mark(event)
        self._check(event, line, column)
        if isinstance(event, _STARTS):
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise _Refused(f"more than {MAX_NODES} YAML nodes (values, lists and "
                               "mappings); a pmemd.yaml has far fewer", line, column)
        if isinstance(event, yaml.ScalarEvent):
            self._attach(Node("scalar", line, column, text=event.value, plain=not event.style))
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(self.stack) >= MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", line, column)
            kind = "mapping" if isinstance(event, yaml.MappingStartEvent) else "sequence"
            node = Node(kind, line, column)
            self._attach(node)
            self.stack.append(node)
            self.pending_key.append(None)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            self.stack.pop()
            self.pending_key.pop()

    def _check(self, event: yaml.Event, line: int, column: int) -> None:
        """Refuse what pmemd's config has no use for."""
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise _Refused("more than one YAML document; pmemd reads one", line, column)
        if isinstance(event, yaml.AliasEvent):
            raise _Refused("YAML aliases (*name) are not allowed in pmemd.yaml", line, column)
        if not isinstance(event, _STARTS):
            return
        if event.anchor is not None:
            raise _Refused("YAML anchors (&name) are not allowed in pmemd.yaml", line, column)
        implicit = event.implicit[0] if isinstance(event, yaml.ScalarEvent) else event.implicit
        if event.tag is not None and not implicit:
            raise _Refused(f"YAML tags ({event.tag}) are not allowed in pmemd.yaml",
                           line, column)

    def _attach(self, node: Node) -> None:
        if not self.stack:
            self.root = node
            return
        parent = self.stack[-1]
        if parent.kind == "sequence":
            parent.items.append(node)
            return
        key = self.pending_key[-1]
        if key is None:
            self.pending_key[-1] = node
        else:
            parent.pairs.append((key, node))
            self.pending_key[-1] = None


def too_large(path: str, size: str) -> Problem:
    """A config of ``size`` (``50 MiB``, ``2000000 characters``) over the size limit."""
    return Problem(f"file is {size}; pmemd reads configs of at most "
                   f"{format_compared(0, MAX_CONFIG_BYTES)[1]}", location=Location(path, 1, 1))


def _decode(data: bytes, path: str) -> str | Problem:
    if len(data) > MAX_CONFIG_BYTES:
        size, limit = format_compared(len(data), MAX_CONFIG_BYTES)
        return Problem(f"file is {size}; pmemd reads configs of at most {limit}",
                       location=Location(path, 1, 1))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        column = len(before.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")) + 1
        return Problem(f"not UTF-8: byte 0x{data[err.start]:02x} cannot be decoded",
                       location=Location(path, line, column))
    text = text.removeprefix("\ufeff")
    refused = _NOT_PRINTABLE.search(text)
    if refused is not None:
        return _refused_character(text, refused.start(), path)
    return text


def _refused_character(text: str, position: int, path: str) -> Problem:
    """The first character YAML does not allow (NUL, escape, DEL …), at its line and column
    as YAML counts them, with its source line."""
    lines = text[:position].splitlines(keepends=True)
    if not lines or lines[-1].splitlines()[0] != lines[-1]:  # at the start of a line
        line, column = len(lines) + 1, 1
    else:
        line, column = len(lines), len(lines[-1]) + 1
    char = text[position]
    source = text.splitlines()[line - 1] if text.splitlines()[line - 1:] else None
    return Problem(f"character U+{ord(char):04X} is not allowed: pmemd.yaml holds printable "
                   "text only (no control characters)", "", Location(path, line, column),
                   source)


def read_document(data: bytes, path: str) -> Document | Problem:
    """The located tree of ``data``, or the one problem that stops it being read."""
    text = _decode(data, path)
    if isinstance(text, Problem):
        return text
    document = Document(path, tuple(text.splitlines()), None)
    builder = _Builder()
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except _Refused as err:
        return document.problem(str(err), err.line, err.column)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return document.problem(f"not valid YAML: {err.problem or err.context}", line, column)
    except yaml.YAMLError as err:
        return Problem(f"not valid YAML: {err}", "", Location(path, 1, 1))
    return Document(path, document.lines, builder.root)


# --- reading values -----------------------------------------------------------------------


if TYPE_CHECKING:
    from enum import StrEnum
    from typing import TypeVar

    E = TypeVar("E", bound=StrEnum)
    T = TypeVar("T")


class TreeReader:
    """Walks a document's tree, collecting problems (all of them) and the location of every
    key path, so that later stages (the planner) can point at the right line too."""

    def __init__(self, path: str, lines: tuple[str, ...]) -> None:
        self.path = path
        self.lines = lines
        self.problems: list[Problem] = []
        self.locations: dict[str, tuple[int, int]] = {}
        self.region: int | None = None  # the region being read, for problems about it

    def problem(self, key: str, message: str, line: int, column: int,
                region: int | None = None) -> None:
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        self.problems.append(Problem(message, key, Location(self.path, line, column), source,
                                     self.region if region is None else region))

    def at(self, key: str, node: Node, message: str) -> None:
        self.problem(key, message, node.line, node.column)

    def has_problem(self, key: str) -> bool:
        """A problem was already reported at ``key`` (one complaint per value)."""
        return any(p.key == key for p in self.problems)

    def mapping(self, key: str, node: Node, allowed: tuple[str, ...]) -> dict[str, Node]:
        """The entries of a mapping node, refusing unknown, duplicate and non-string keys."""
        self.locations[key] = (node.line, node.column)
        if node.kind != "mapping":
            self.at(key, node, f"expected a mapping, got {node.describe()}")
            return {}
        entries: dict[str, Node] = {}
        for key_node, value in node.pairs:
            name = key_node.text
            child = f"{key}.{name}" if key else name
            if key_node.kind != "scalar":
                self.at(key or "(top)", key_node, "keys must be plain words")
                continue
            if name in entries:
                first = entries[name]
                self.at(child, key_node,
                        f"duplicate key {quoted(name)} (first set on line {first.line})")
                continue
            if name not in allowed:
                import difflib  # only for this message: keeps the generator's start-up lean

                hint = difflib.get_close_matches(name, allowed, n=1)
                known = (f"did you mean {hint[0]!r}?" if hint
                         else "known keys: " + ", ".join(allowed))
                self.at(child, key_node, f"unknown key {quoted(name)}; {known}")
                continue
            entries[name] = value
            self.locations[child] = (value.line, value.column)
        return entries

    def require(self, key: str, parent: Node, entries: dict[str, Node], name: str) -> Node | None:
        child = f"{key}.{name}" if key else name
        if name not in entries:
            self.at(child, parent, f"missing required key {name!r}")
            return None
        if entries[name].is_null:
            self.at(child, entries[name], f"{name!r} needs a value")
            return None
        return entries[name]

    def string(self, key: str, node: Node) -> str | None:
        if node.kind != "scalar" or node.is_null:
            self.at(key, node, f"expected a string, got {node.describe()}")
            return None
        return node.text

    def choice(self, key: str, node: Node | None, enum: type[E], default: E) -> E:
        if node is None:
            return default
        text = self.string(key, node)
        if text is None:
            return default
        try:
            return enum(text)
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            self.at(key, node, f"{node.describe()} is not one of: {allowed}")
            return default

    def size(self, key: str, node: Node, *, allow_zero: bool = False) -> int | None:
        text = self.string(key, node)
        if text is None:
            return None
        try:
            return parse_size(text, allow_zero=allow_zero)
        except SizeError as err:
            shift = 0 if node.plain else 1
            self.problem(key, str(err), node.line, node.column + shift + err.column)
            return None

    def optional(self, key: str, entries: dict[str, Node], name: str,
                 read: Callable[[str, Node], T | None]) -> T | None:
        node = entries.get(name)
        if node is None or node.is_null:
            return None
        return read(f"{key}.{name}", node)
