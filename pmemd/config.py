"""(pure) ``pmemd.yaml`` text → :class:`Config`, with every problem located.

The YAML is read as an event stream and built into a small located tree here, so that
duplicate keys, anchors/aliases, tags and YAML 1.1 surprises (``no`` → false, ``010`` →
8) are caught before any value is interpreted. Every problem carries
``file:line:column``, the key path and the source line; all are reported at once.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeVar

import yaml

from pmemd.errors import ConfigError, Location, Problem
from pmemd.model import (
    MIN_ALIGNMENT,
    XFS_MIN_SIZE,
    BootloaderChoice,
    BootSettings,
    Config,
    ConfigSource,
    Filesystem,
    FsType,
    KaslrPolicy,
    MemorySettings,
    MemRange,
    OnBoot,
    RebootPolicy,
    Region,
)
from pmemd.sizes import SizeError, format_bytes, parse_size, render_size

MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 16
SUPPORTED_VERSION = 1
NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")

# Mountpoints that would hide the running system: refused at or below these ...
FORBIDDEN_TREES = ("/proc", "/sys", "/dev", "/run", "/boot", "/etc", "/usr", "/bin", "/sbin",
                   "/lib", "/lib32", "/lib64", "/libx32")
# ... and refused exactly (mounting over them hides what they hold).
FORBIDDEN_EXACT = ("/", "/var", "/home", "/root", "/tmp", "/srv", "/opt", "/mnt", "/media")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NULLS = ("", "~", "null", "Null", "NULL")


# --- the located tree ---------------------------------------------------------------------


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
        return f"{self.text!r}"


class _YamlProblem(Exception):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.line, self.column = line, column


def _mark(event: yaml.Event) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _build_tree(text: str) -> Node | None:
    """Events → :class:`Node`; refuses what pmemd's config has no use for."""
    root: Node | None = None
    stack: list[Node] = []
    pending_key: list[Node | None] = []
    documents = 0

    def attach(node: Node) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        parent = stack[-1]
        if parent.kind == "sequence":
            parent.items.append(node)
        elif pending_key[-1] is None:
            pending_key[-1] = node
        else:
            key = pending_key[-1]
            assert key is not None
            parent.pairs.append((key, node))
            pending_key[-1] = None

    for event in yaml.parse(text, Loader=_Loader):
        line, column = _mark(event)
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _YamlProblem("more than one YAML document; pmemd reads one", line, column)
            continue
        if isinstance(event, yaml.AliasEvent):
            raise _YamlProblem("YAML aliases (*name) are not allowed in pmemd.yaml", line, column)
        if isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if event.anchor is not None:
                raise _YamlProblem("YAML anchors (&name) are not allowed in pmemd.yaml",
                                   line, column)
            implicit = event.implicit[0] if isinstance(event, yaml.ScalarEvent) else event.implicit
            if event.tag is not None and not implicit:
                raise _YamlProblem(f"YAML tags ({event.tag}) are not allowed in pmemd.yaml",
                                   line, column)
        if isinstance(event, yaml.ScalarEvent):
            attach(Node("scalar", line, column, text=event.value, plain=not event.style))
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) >= MAX_DEPTH:
                raise _YamlProblem(f"nested deeper than {MAX_DEPTH} levels", line, column)
            kind = "mapping" if isinstance(event, yaml.MappingStartEvent) else "sequence"
            node = Node(kind, line, column)
            attach(node)
            stack.append(node)
            pending_key.append(None)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            stack.pop()
            pending_key.pop()
    return root


def _decode(data: bytes, path: str) -> str:
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([Problem(
            f"file is {format_bytes(len(data))}; pmemd reads configs of at most "
            f"{format_bytes(MAX_CONFIG_BYTES)}", location=Location(path, 1, 1))])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        column = len(before.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")) + 1
        raise ConfigError([Problem(
            f"not UTF-8: byte 0x{data[err.start]:02x} cannot be decoded",
            location=Location(path, line, column))]) from None
    return text.removeprefix("\ufeff")


# --- interpreting the tree ----------------------------------------------------------------

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")


class _Reader:
    """Walks the tree, collecting problems and the location of every key path."""

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
                        f"duplicate key {name!r} (first set on line {first.line})")
                continue
            if name not in allowed:
                import difflib  # only for this message: keeps the generator's start-up lean

                hint = difflib.get_close_matches(name, allowed, n=1)
                known = (f"did you mean {hint[0]!r}?" if hint
                         else "known keys: " + ", ".join(allowed))
                self.at(child, key_node, f"unknown key {name!r}; {known}")
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


def parse_config(data: bytes | str, path: str = "pmemd.yaml") -> Config:
    """Parse and validate a config; raise :class:`ConfigError` with every problem found."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    text = _decode(raw, path)
    lines = tuple(text.splitlines())
    try:
        root = _build_tree(text)
    except _YamlProblem as err:
        source = lines[err.line - 1] if 0 < err.line <= len(lines) else None
        raise ConfigError([Problem(str(err), "", Location(path, err.line, err.column),
                                   source)]) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        source = lines[line - 1] if 0 < line <= len(lines) else None
        message = f"not valid YAML: {err.problem or err.context}"
        raise ConfigError([Problem(message, "", Location(path, line, column), source)]) from None
    except yaml.YAMLError as err:
        raise ConfigError([Problem(f"not valid YAML: {err}", "", Location(path, 1, 1))]) from None
    reader = _Reader(path, lines)
    if root is None or root.is_null:
        raise ConfigError([Problem("the config is empty; it needs at least 'version: 1'", "",
                                   Location(path, 1, 1))])
    config = _read_config(reader, root)
    if reader.problems:
        raise ConfigError(sorted(reader.problems, key=_problem_order), _usable_part(config, reader))
    return config


def _usable_part(config: Config, reader: _Reader) -> Config | None:
    """The config without the regions that have problems; None if any problem is global."""
    bad = {p.region for p in reader.problems}
    if None in bad:
        return None
    return replace(config, regions=tuple(r for r in config.regions if r.index not in bad))


def _problem_order(problem: Problem) -> tuple[int, int]:
    loc = problem.location
    return (loc.line, loc.column) if loc is not None else (0, 0)


def _read_config(reader: _Reader, root: Node) -> Config:
    top = reader.mapping("", root, ("version", "boot", "memory", "regions"))
    if root.kind != "mapping":
        return Config()
    version = _read_version(reader, root, top)
    boot = _read_boot(reader, top.get("boot"))
    memory = _read_memory(reader, top.get("memory"))
    regions = _read_regions(reader, top.get("regions"), memory)
    source = ConfigSource(reader.path, reader.lines, dict(reader.locations))
    return Config(version, boot, memory, regions, source)


def _read_version(reader: _Reader, root: Node, top: dict[str, Node]) -> int:
    node = reader.require("", root, top, "version")
    if node is None:
        return SUPPORTED_VERSION
    if node.kind != "scalar" or not node.plain or not node.text.isdigit():
        reader.at("version", node,
                  f"expected the number {SUPPORTED_VERSION}, got {node.describe()}")
    elif int(node.text) != SUPPORTED_VERSION:
        reader.at("version", node, f"unsupported version {node.text}; this pmemd reads version "
                  f"{SUPPORTED_VERSION}")
    return SUPPORTED_VERSION


def _read_boot(reader: _Reader, node: Node | None) -> BootSettings:
    if node is None or node.is_null:
        return BootSettings()
    entries = reader.mapping("boot", node, ("bootloader", "reboot", "kaslr"))
    return BootSettings(
        bootloader=reader.choice("boot.bootloader", entries.get("bootloader"), BootloaderChoice,
                                 BootloaderChoice.AUTO),
        reboot=reader.choice("boot.reboot", entries.get("reboot"), RebootPolicy,
                             RebootPolicy.NEVER),
        kaslr=reader.choice("boot.kaslr", entries.get("kaslr"), KaslrPolicy, KaslrPolicy.WARN),
    )


def _read_memory(reader: _Reader, node: Node | None) -> MemorySettings:
    default = MemorySettings()
    if node is None or node.is_null:
        return default
    entries = reader.mapping("memory", node, ("alignment", "min-system-ram"))
    alignment = reader.optional("memory", entries, "alignment", reader.size)
    if alignment is not None and (alignment < MIN_ALIGNMENT or alignment & (alignment - 1)):
        reader.at("memory.alignment", entries["alignment"],
                  f"alignment must be a power of two of at least {render_size(MIN_ALIGNMENT)} "
                  "(the kernel cannot map pmem ranges aligned more finely)")
        alignment = None
    min_ram = reader.optional("memory", entries, "min-system-ram",
                              lambda key, n: reader.size(key, n, allow_zero=True))
    return MemorySettings(
        alignment=alignment if alignment is not None else default.alignment,
        min_system_ram=min_ram if min_ram is not None else default.min_system_ram,
    )


def _read_regions(reader: _Reader, node: Node | None,
                  memory: MemorySettings) -> tuple[Region, ...]:
    if node is None or node.is_null:
        return ()
    reader.locations["regions"] = (node.line, node.column)
    if node.kind != "sequence":
        reader.at("regions", node, f"expected a list of regions, got {node.describe()}")
        return ()
    regions = []
    for index, item in enumerate(node.items):
        reader.region = index
        region = _read_region(reader, f"regions[{index}]", item, index, memory)
        reader.region = None
        if region is not None:
            regions.append(region)
    _check_regions_together(reader, node, regions)
    return tuple(regions)


def _read_region(reader: _Reader, key: str, node: Node, index: int,
                 memory: MemorySettings) -> Region | None:
    entries = reader.mapping(key, node, ("name", "size", "offset", "filesystem"))
    if node.kind != "mapping":
        return None
    problems_before = len(reader.problems)
    name_node = reader.require(key, node, entries, "name")
    name = reader.string(f"{key}.name", name_node) if name_node else None
    if name is not None and name_node is not None and not NAME_PATTERN.fullmatch(name):
        reader.at(f"{key}.name", name_node,
                  f"{name!r} is not a valid region name: use 1-32 characters of a-z, 0-9 and "
                  "'-', starting and ending with a letter or digit")
    size_node = reader.require(key, node, entries, "size")
    size = reader.size(f"{key}.size", size_node) if size_node else None
    offset = reader.optional(key, entries, "offset",
                             lambda k, n: reader.size(k, n, allow_zero=True))
    for what, value in (("size", size), ("offset", offset)):
        if value is not None and value % memory.alignment:
            reader.at(f"{key}.{what}", entries[what], _misaligned(what, value, memory.alignment))
    filesystem = None
    fs_node = entries.get("filesystem")
    if fs_node is not None and not fs_node.is_null:
        filesystem = _read_filesystem(reader, f"{key}.filesystem", fs_node, size)
    if len(reader.problems) != problems_before or name is None or size is None:
        return None
    return Region(name, size, offset, filesystem, index)


def _misaligned(what: str, value: int, alignment: int) -> str:
    lower = value // alignment * alignment
    upper = lower + alignment
    nearest = " or ".join(render_size(v) for v in (lower, upper) if v > 0 or what == "offset")
    return (f"{render_size(value)} is not a multiple of the {render_size(alignment)} alignment "
            f"(memory.alignment); nearest: {nearest}")


def _read_filesystem(reader: _Reader, key: str, node: Node, size: int | None) -> Filesystem | None:
    entries = reader.mapping(key, node, ("type", "mountpoint", "options", "on-boot"))
    if node.kind != "mapping":
        return None
    type_node = reader.require(key, node, entries, "type")
    fs_type = reader.choice(f"{key}.type", type_node, FsType, FsType.EXT4) if type_node else None
    if fs_type is FsType.XFS and size is not None and size < XFS_MIN_SIZE and type_node:
        reader.at(f"{key}.type", type_node,
                  f"xfs needs at least {render_size(XFS_MIN_SIZE)} (mkfs.xfs refuses smaller "
                  f"filesystems); this region is {render_size(size)}: use ext4 or a larger size")
    mount_node = reader.require(key, node, entries, "mountpoint")
    mountpoint = reader.string(f"{key}.mountpoint", mount_node) if mount_node else None
    if mountpoint is not None and mount_node is not None:
        complaint = mountpoint_problem(mountpoint)
        if complaint:
            reader.at(f"{key}.mountpoint", mount_node, complaint)
    options = _read_options(reader, f"{key}.options", entries.get("options"))
    on_boot = reader.choice(f"{key}.on-boot", entries.get("on-boot"), OnBoot, OnBoot.RECREATE)
    if fs_type is None or mountpoint is None:
        return None
    return Filesystem(fs_type, mountpoint, options, on_boot)


def mountpoint_problem(path: str) -> str | None:
    """Why ``path`` cannot be a pmem mountpoint, or ``None``."""
    if not path.startswith("/"):
        return f"{path!r} is not an absolute path"
    if any(ord(char) < 32 or ord(char) == 127 for char in path):
        return f"{path!r} contains control characters"
    normal = posixpath.normpath(path)
    if normal.startswith("//"):
        normal = normal[1:]
    if normal != path:
        return f"{path!r} is not normalized; write {normal!r}"
    if path in FORBIDDEN_EXACT:
        return f"{path!r} would hide the system's own {path!r}; use a directory of its own"
    for tree in FORBIDDEN_TREES:
        if path == tree or path.startswith(tree + "/"):
            return f"{path!r} is at or under {tree}, which belongs to the system"
    return None


def _read_options(reader: _Reader, key: str, node: Node | None) -> tuple[str, ...]:
    if node is None or node.is_null:
        return ()
    if node.kind != "sequence":
        reader.at(key, node, f"expected a list of mount options, got {node.describe()}")
        return ()
    options = []
    for index, item in enumerate(node.items):
        option = reader.string(f"{key}[{index}]", item)
        if option is None:
            continue
        word = option.split("=", 1)[0]
        if not option or re.search(r"[\s,\"'\\]", option):
            reader.at(f"{key}[{index}]", item,
                      f"{option!r} is not one mount option (no commas, spaces, quotes or "
                      "backslashes; list each option separately)")
        elif word in ("dax", "nodax"):
            reader.at(f"{key}[{index}]", item,
                      f"{option!r}: pmemd sets the DAX option itself (dax=always)")
        else:
            options.append(option)
    return tuple(options)


def _check_regions_together(reader: _Reader, node: Node, regions: list[Region]) -> None:
    """Problems between regions; each is the later region's, so the earlier stays usable."""
    seen_names: dict[str, Region] = {}
    seen_mounts: dict[str, Region] = {}
    placed: list[tuple[Region, MemRange]] = []
    for region in regions:
        key = f"regions[{region.index}]"
        item = node.items[region.index]
        count = len(reader.problems)
        first = seen_names.get(region.name)
        if first is not None:
            _at_key(reader, f"{key}.name", item, region.index,
                    f"duplicate region name {region.name!r} (also regions[{first.index}])")
        mount = region.filesystem.mountpoint if region.filesystem is not None else None
        other = seen_mounts.get(mount) if mount is not None else None
        if other is not None:
            _at_key(reader, f"{key}.filesystem.mountpoint", item, region.index,
                    f"mountpoint {mount!r} is also used by region {other.name!r}")
        rng = MemRange.sized(region.offset, region.size) if region.offset is not None else None
        for other_region, other_range in placed:
            if rng is not None and rng.overlaps(other_range):
                _at_key(reader, f"{key}.offset", item, region.index,
                        f"{rng} overlaps region {other_region.name!r} ({other_range})")
        if len(reader.problems) != count:
            continue  # left out: it must not make the regions after it look bad too
        seen_names[region.name] = region
        if mount is not None:
            seen_mounts[mount] = region
        if rng is not None:
            placed.append((region, rng))


def _at_key(reader: _Reader, key: str, fallback: Node, region: int, message: str) -> None:
    line, column = reader.locations.get(key, (fallback.line, fallback.column))
    reader.problem(key, message, line, column, region)
