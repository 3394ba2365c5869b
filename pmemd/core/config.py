"""(pure) ``pmemd.yaml`` → :class:`ParsedConfig`: the config, every problem located, and the
part that is still usable when some region has a problem.

The text becomes a located tree (:mod:`pmemd.core.yamltree`) before any value is
interpreted here, so duplicate keys, unknown keys and bad values are each reported with
``file:line:column``, the key path and the source line — all of them at once. Nothing is
raised for a bad config: the caller decides whether a problem stops it
(:meth:`ParsedConfig.require`) or only drops a region (:attr:`ParsedConfig.usable`).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, replace

from pmemd.core.model import (
    DEFAULT_DEVDAX_ALIGN,
    DEVDAX_ALIGNS,
    FSDAX_ALIGNMENT,
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
    NamespaceMode,
    OnBoot,
    PageMap,
    RebootPolicy,
    Region,
    TrialMode,
)
from pmemd.core.overlaps import KeptRanges
from pmemd.core.ranges import GiB, MemRange
from pmemd.core.sizes import render_size
from pmemd.core.units import mountpoint_unit_problem
from pmemd.core.yamltree import MAX_CONFIG_BYTES, Node, TreeReader, read_document, too_large
from pmemd.errors import ConfigError, Location, NoSuchRegion, Problem, quoted

SUPPORTED_VERSION = 1
MAX_REGIONS = 1024
NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
# Mountpoints that would hide the running system: refused at or below these ...
FORBIDDEN_TREES = ("/proc", "/sys", "/dev", "/run", "/boot", "/efi", "/etc", "/usr", "/bin",
                   "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# ... and refused exactly (mounting over them hides what they hold).
FORBIDDEN_EXACT = ("/", "/var", "/home", "/root", "/tmp", "/srv", "/opt", "/mnt", "/media")
# pmemd's state (pmemd.machine.root.STATE_DIR; a test holds them equal): a region's units
# need it before they mount the region's filesystem, so a mount at or above it is a cycle.
STATE_DIR = "/var/lib/pmemd"

@dataclass(frozen=True)
class ParsedConfig:
    """What a config file says: every problem found, and the config as far as it is usable.

    ``usable`` is the lenient reading, the way systemd's generators read ``/etc/fstab``: a
    bad region must not cost the other regions their filesystems. It is the config without
    the regions that have problems and, when there is any problem, without the regions
    pmemd places itself (their place depends on every other region); ``None`` when a
    problem is not about one region (version, memory, YAML syntax, an unreadable file).
    When there is no problem, ``usable`` is the whole config.
    """

    path: str
    problems: tuple[Problem, ...]
    usable: Config | None
    dropped: tuple[int, ...] = ()  # indexes (in the file's list) of regions left out
    dropped_auto: tuple[str, ...] = ()  # valid regions left out: placed only when all is valid

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def config(self) -> Config | None:
        """The config, when it is valid."""
        return self.usable if self.valid else None

    def require(self) -> Config:
        """The config; :class:`ConfigError` with every problem when it is not valid."""
        if self.problems or self.usable is None:
            raise ConfigError(self.problems)
        return self.usable

    def region(self, name: str) -> Region:
        """Region ``name`` if it is usable: :class:`ConfigError` (every problem) when it
        may be one that has problems, :class:`NoSuchRegion` when the config lacks it."""
        region = self.usable.region(name) if self.usable is not None else None
        if region is not None:
            return region
        if self.problems:
            raise ConfigError(self.problems)
        known = [r.name for r in self.usable.regions] if self.usable is not None else []
        raise NoSuchRegion(name, known, self.path)


def parse_config(data: bytes | str, path: str = "pmemd.yaml") -> ParsedConfig:
    """Parse and validate a config: every problem located, and the usable part."""
    if isinstance(data, str) and len(data) > MAX_CONFIG_BYTES:  # more bytes still: no copy
        return ParsedConfig(path, (too_large(path, f"{len(data)} characters"),), None)
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    document = read_document(raw, path)
    if isinstance(document, Problem):
        return ParsedConfig(path, (document,), None)
    if document.root is None or document.root.is_null:
        return ParsedConfig(path, (Problem("the config is empty; it needs at least "
                                           "'version: 1'", "", Location(path, 1, 1)),), None)
    reader = TreeReader(path, document.lines)
    config = _read_config(reader, document.root)
    if not reader.problems:
        return ParsedConfig(path, (), config)
    return _lenient(config, tuple(sorted(reader.problems, key=_problem_order)))


def _lenient(config: Config, problems: tuple[Problem, ...]) -> ParsedConfig:
    """The config without the regions that have problems, and without auto-placed ones."""
    dropped = tuple(sorted({p.region for p in problems if p.region is not None}))
    if any(p.region is None for p in problems):
        return ParsedConfig(config.source.path, problems, None, dropped)
    valid = [r for r in config.regions if r.index not in dropped]
    usable = tuple(r for r in valid if r.offset is not None)
    auto = tuple(r.name for r in valid if r.offset is None)
    return ParsedConfig(config.source.path, problems, replace(config, regions=usable), dropped,
                        auto)


def _problem_order(problem: Problem) -> tuple[int, int]:
    loc = problem.location
    return (loc.line, loc.column) if loc is not None else (0, 0)


def _read_config(reader: TreeReader, root: Node) -> Config:
    top = reader.mapping("", root, ("version", "boot", "memory", "regions"))
    if root.kind != "mapping":
        return Config()
    version = _read_version(reader, root, top)
    boot = _read_boot(reader, top.get("boot"))
    memory = _read_memory(reader, top.get("memory"))
    regions = _read_regions(reader, top.get("regions"), memory)
    source = ConfigSource(reader.path, reader.lines, dict(reader.locations))
    return Config(version, boot, memory, regions, source)


def _read_version(reader: TreeReader, root: Node, top: dict[str, Node]) -> int:
    node = reader.require("", root, top, "version")
    if node is None:
        return SUPPORTED_VERSION
    # ASCII digits, compared as text: isdigit() and int() take any Unicode digit, and int()
    # refuses more than 4,300 digits.
    if node.kind != "scalar" or not node.plain or not node.text.isascii() or (
            not node.text.isdigit()):
        reader.at("version", node,
                  f"expected the number {SUPPORTED_VERSION}, got {node.describe()}")
    elif (node.text.lstrip("0") or "0") != str(SUPPORTED_VERSION):
        version = node.text if len(node.text) <= 20 else quoted(node.text)
        reader.at("version", node, f"unsupported version {version}; this pmemd reads version "
                  f"{SUPPORTED_VERSION}")
    return SUPPORTED_VERSION


def _read_boot(reader: TreeReader, node: Node | None) -> BootSettings:
    if node is None or node.is_null:
        return BootSettings()
    entries = reader.mapping("boot", node, ("bootloader", "reboot", "kaslr", "trial"))
    return BootSettings(
        bootloader=reader.choice("boot.bootloader", entries.get("bootloader"), BootloaderChoice,
                                 BootloaderChoice.AUTO),
        reboot=reader.choice("boot.reboot", entries.get("reboot"), RebootPolicy,
                             RebootPolicy.NEVER),
        kaslr=reader.choice("boot.kaslr", entries.get("kaslr"), KaslrPolicy, KaslrPolicy.WARN),
        trial=reader.choice("boot.trial", entries.get("trial"), TrialMode, TrialMode.AUTO),
    )


def _read_memory(reader: TreeReader, node: Node | None) -> MemorySettings:
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


def _read_regions(reader: TreeReader, node: Node | None,
                  memory: MemorySettings) -> tuple[Region, ...]:
    if node is None or node.is_null:
        return ()
    reader.locations["regions"] = (node.line, node.column)
    if node.kind != "sequence":
        reader.at("regions", node, f"expected a list of regions, got {node.describe()}")
        return ()
    if len(node.items) > MAX_REGIONS:
        reader.at("regions", node,
                  f"{len(node.items)} regions; pmemd manages at most {MAX_REGIONS} (the "
                  "kernel command line holds about a hundred memmap= options)")
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


def _read_region(reader: TreeReader, key: str, node: Node, index: int,
                 memory: MemorySettings) -> Region | None:
    entries = reader.mapping(key, node, ("name", "size", "offset", "mode", "map", "align",
                                         "filesystem"))
    if node.kind != "mapping":
        return None
    problems_before = len(reader.problems)
    name_node = reader.require(key, node, entries, "name")
    name = reader.string(f"{key}.name", name_node) if name_node else None
    if name is not None and name_node is not None and not NAME_PATTERN.fullmatch(name):
        reader.at(f"{key}.name", name_node,
                  f"{quoted(name)} is not a valid region name: use 1-32 characters of a-z, 0-9 and "
                  "'-', starting and ending with a letter or digit")
    size_node = reader.require(key, node, entries, "size")
    size = reader.size(f"{key}.size", size_node) if size_node else None
    offset = reader.optional(key, entries, "offset",
                             lambda k, n: reader.size(k, n, allow_zero=True))
    for what, value in (("size", size), ("offset", offset)):
        if value is not None and value % memory.alignment:
            reader.at(f"{key}.{what}", entries[what], _misaligned(what, value, memory.alignment))
    namespace = _read_namespace(reader, key, entries, size, offset)
    filesystem = None
    fs_node = entries.get("filesystem")
    if fs_node is not None and not fs_node.is_null:
        filesystem = _read_filesystem(reader, f"{key}.filesystem", fs_node, size)
        if not namespace.mode_allows_filesystem:
            reader.at(f"{key}.filesystem", fs_node, namespace.no_filesystem())
    if len(reader.problems) != problems_before or name is None or size is None:
        return None
    return Region(name, size, offset, filesystem, index, namespace.mode, namespace.map,
                  namespace.align)


@dataclass(frozen=True)
class _Namespace:
    mode: NamespaceMode = NamespaceMode.RAW
    map: PageMap = PageMap.MEM
    align: int = DEFAULT_DEVDAX_ALIGN

    @property
    def mode_allows_filesystem(self) -> bool:
        return self.mode in (NamespaceMode.RAW, NamespaceMode.FSDAX)

    def no_filesystem(self) -> str:
        device = "a character device (/dev/daxX.Y)" if self.mode is NamespaceMode.DEVDAX \
            else "memory handed to the kernel's page allocator"
        return (f"a region in mode {self.mode.value} is {device} and holds no filesystem: "
                "remove 'filesystem' or use mode fsdax (or raw)")


_MAP_MODES = (NamespaceMode.FSDAX, NamespaceMode.DEVDAX, NamespaceMode.SYSTEM_RAM)
_ALIGN_MODES = (NamespaceMode.DEVDAX, NamespaceMode.SYSTEM_RAM)


def _read_namespace(reader: TreeReader, key: str, entries: dict[str, Node],
                    size: int | None, offset: int | None) -> _Namespace:
    """``mode``, ``map`` and ``align``, and what ndctl and the kernel require of them."""
    mode = reader.choice(f"{key}.mode", entries.get("mode"), NamespaceMode, NamespaceMode.RAW)
    page_map = reader.choice(f"{key}.map", entries.get("map"), PageMap, PageMap.MEM)
    if "map" in entries and mode not in _MAP_MODES:
        reader.at(f"{key}.map", entries["map"],
                  f"'map' chooses where an fsdax, devdax or system-ram namespace keeps its "
                  f"page structures; this region's mode is {mode.value}")
    align = DEFAULT_DEVDAX_ALIGN
    align_node = entries.get("align")
    if align_node is not None:
        value = reader.size(f"{key}.align", align_node)
        if mode not in _ALIGN_MODES:
            reader.at(f"{key}.align", align_node,
                      "'align' is the fault size of a device-DAX namespace (mode devdax or "
                      f"system-ram); this region's mode is {mode.value}")
        elif value is not None and value not in DEVDAX_ALIGNS:
            reader.at(f"{key}.align", align_node,
                      f"{render_size(value)} is not a page size a device-DAX mapping can "
                      f"fault in; use one of {', '.join(render_size(a) for a in DEVDAX_ALIGNS)}")
        elif value is not None:
            align = value
    if mode is NamespaceMode.RAW:
        return _Namespace(mode, page_map, align)
    for what, amount in (("size", size), ("offset", offset)):
        if amount is not None and amount % FSDAX_ALIGNMENT and not reader.has_problem(
                f"{key}.{what}"):
            reader.at(f"{key}.{what}", entries[what],
                      f"{render_size(amount)} is not a multiple of "
                      f"{render_size(FSDAX_ALIGNMENT)}: ndctl makes {mode.value} namespaces "
                      f"in {render_size(FSDAX_ALIGNMENT)} units")
    if align == GiB and mode in _ALIGN_MODES and align_node is not None:
        _check_gigantic(reader, key, entries, size, offset)
    return _Namespace(mode, page_map, align)


def _check_gigantic(reader: TreeReader, key: str, entries: dict[str, Node],
                    size: int | None, offset: int | None) -> None:
    """With 1 GiB pages the data starts at the first 1 GiB boundary after the namespace's
    info block: the region must start on one and be at least 2 GiB to hold any."""
    if offset is not None and offset % GiB:
        reader.at(f"{key}.offset", entries["offset"],
                  f"with align 1G the region must start on a 1 GiB boundary; "
                  f"{render_size(offset)} is not one")
    if size is not None and (size < 2 * GiB or size % GiB):
        reader.at(f"{key}.size", entries["size"],
                  f"with align 1G the device's data begins 1G into the region (after the "
                  f"info block) and ends on a 1 GiB boundary: the size must be a multiple "
                  f"of 1G and at least 2G; {render_size(size)} is not")


def _misaligned(what: str, value: int, alignment: int) -> str:
    lower = value // alignment * alignment
    upper = lower + alignment
    nearest = " or ".join(render_size(v) for v in (lower, upper) if v > 0 or what == "offset")
    return (f"{render_size(value)} is not a multiple of the {render_size(alignment)} alignment "
            f"(memory.alignment); nearest: {nearest}")


def _read_filesystem(reader: TreeReader, key: str, node: Node, size: int | None
                     ) -> Filesystem | None:
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
        return f"{quoted(path)} is not an absolute path"
    if any(ord(char) < 32 or ord(char) == 127 for char in path):
        return f"{quoted(path)} contains control characters"
    normal = posixpath.normpath(path)
    if normal.startswith("//"):
        normal = normal[1:]
    if normal != path:
        return f"{quoted(path)} is not normalized; write {quoted(normal)}"
    if path in FORBIDDEN_EXACT:
        return f"{quoted(path)} would hide the system's own {path!r}; use a directory of its own"
    for tree in FORBIDDEN_TREES:
        if path == tree or path.startswith(tree + "/"):
            return f"{quoted(path)} is at or under {tree}, which belongs to the system"
    if path == STATE_DIR or path.startswith(STATE_DIR + "/"):
        return (f"{quoted(path)} is at or under {STATE_DIR}, which holds pmemd's state: the "
                "region's units need it before they mount the filesystem")
    if STATE_DIR.startswith(path + "/"):
        return (f"{quoted(path)} would hide pmemd's state ({STATE_DIR}), which the region's "
                "units need before they mount it (an ordering cycle at boot)")
    return mountpoint_unit_problem(path)


def _read_options(reader: TreeReader, key: str, node: Node | None) -> tuple[str, ...]:
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
                      f"{quoted(option)} is not one mount option (no commas, spaces, quotes or "
                      "backslashes; list each option separately)")
        elif word in ("dax", "nodax"):
            reader.at(f"{key}[{index}]", item,
                      f"{quoted(option)}: pmemd sets the DAX option itself (dax=always)")
        else:
            options.append(option)
    return tuple(options)


def _check_regions_together(reader: TreeReader, node: Node, regions: list[Region]) -> None:
    """Problems between regions; each is the later region's, so the earlier stays usable."""
    seen_names: dict[str, Region] = {}
    seen_mounts: dict[str, Region] = {}
    ranges = {r.index: MemRange.sized(r.offset, r.size) for r in regions if r.offset is not None}
    placed: KeptRanges[Region] = KeptRanges(ranges.values())
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
        rng = ranges.get(region.index)
        hits = placed.overlapping(rng) if rng is not None else []
        for other_region in sorted(hits, key=lambda r: r.index):  # in file order
            _at_key(reader, f"{key}.offset", item, region.index,
                    f"{rng} overlaps region {other_region.name!r} ({ranges[other_region.index]})")
        if len(reader.problems) != count:
            continue  # left out: it must not make the regions after it look bad too
        seen_names[region.name] = region
        if mount is not None:
            seen_mounts[mount] = region
        if rng is not None:
            placed.keep(rng, region)


def _at_key(reader: TreeReader, key: str, fallback: Node, region: int, message: str) -> None:
    line, column = reader.locations.get(key, (fallback.line, fallback.column))
    reader.problem(key, message, line, column, region)
