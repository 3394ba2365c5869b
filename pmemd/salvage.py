"""What can still be used of an invalid config: the regions that have no problem.

A bad line in ``/etc/fstab`` does not stop systemd from mounting the others; likewise a
region with a problem must not cost the other regions their filesystems. The generator
and the commands its units run read the config through :func:`salvage_config`, so both
agree on which regions are usable. Problems outside ``regions[N]`` (version, memory,
YAML syntax) leave nothing usable. Regions without an ``offset`` are only placed from a
fully valid config: their place depends on every other region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from pmemd.config import parse_config
from pmemd.errors import ConfigError, Problem
from pmemd.machine import CONFIG_PATH, Machine
from pmemd.model import Config, ConfigSource, Region

_REGION_KEY = re.compile(r"regions\[([0-9]+)\]")
_MAX_ROUNDS = 4  # dropping a region can reveal no new problem; a bound all the same
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class Salvaged:
    config: Config | None  # the usable part; None when nothing is usable
    problems: tuple[Problem, ...]  # every problem found, as the strict parser reports it
    dropped: tuple[int, ...] = ()  # indexes (in the original list) of regions left out
    dropped_auto: tuple[str, ...] = ()  # usable regions left out: placed only when all is valid

    @property
    def valid(self) -> bool:
        return not self.problems

    def region(self, name: str) -> Region:
        """Region ``name`` if it is usable; else a ConfigError with every problem."""
        region = self.config.region(name) if self.config is not None else None
        if region is None and self.problems:
            raise ConfigError(self.problems)
        if region is None:
            known = ", ".join(r.name for r in self.config.regions) if self.config else ""
            raise ConfigError([Problem(f"no region {name!r} (regions: {known or 'none'}); "
                                       "after editing the config run 'systemctl daemon-reload'",
                                       "regions")])
        return region


def _region_index(problem: Problem) -> int | None:
    match = _REGION_KEY.match(problem.key)
    return int(match[1]) if match else None


def _regions_node(root: yaml.Node) -> yaml.SequenceNode | None:
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "regions" and isinstance(value, yaml.SequenceNode):
                return value
    return None


def salvage_config(data: bytes, path: str) -> Salvaged:
    """Parse ``data``; on problems, the config without the regions that have them."""
    try:
        return Salvaged(parse_config(data, path), ())
    except ConfigError as err:
        problems = err.problems
    indexes = {_region_index(p) for p in problems}
    if None in indexes:
        return Salvaged(None, problems)
    drop = {i for i in indexes if i is not None}
    try:
        root = yaml.compose(data.decode("utf-8"), Loader=_LOADER)
    except (yaml.YAMLError, UnicodeError):
        return Salvaged(None, problems)
    sequence = _regions_node(root) if root is not None else None
    if root is None or sequence is None:
        return Salvaged(None, problems)
    items = list(sequence.value)
    for _ in range(_MAX_ROUNDS):
        kept = [i for i in range(len(items)) if i not in drop]
        sequence.value = [items[i] for i in kept]
        try:
            config = parse_config(yaml.serialize(root, Dumper=_DUMPER), path)
        except ConfigError as again:
            more = {_region_index(p) for p in again.problems}
            if None in more:
                break
            drop |= {kept[i] for i in more if i is not None and i < len(kept)}
            continue
        regions = [replace(r, index=kept[n]) for n, r in enumerate(config.regions)]
        usable = tuple(r for r in regions if r.offset is not None)
        auto = tuple(r.name for r in regions if r.offset is None)
        # Locations in the reduced text would point at the wrong lines: keep only the path.
        return Salvaged(replace(config, regions=usable, source=ConfigSource(path)), problems,
                        tuple(sorted(drop)), auto)
    return Salvaged(None, problems, tuple(sorted(drop)))


def read_usable_config(machine: Machine, path: Path | None = None) -> Salvaged:
    """The config at ``path`` (default ``/etc/pmemd.yaml`` under the root), salvaged."""
    from pmemd.facts import read_config

    try:
        return Salvaged(read_config(machine, path), ())
    except ConfigError as err:
        problems = err.problems
    target = path if path is not None else machine.config
    shown = str(target) if path is not None else machine.display(CONFIG_PATH)
    try:
        data = target.read_bytes()
    except OSError:
        return Salvaged(None, problems)
    return salvage_config(data, shown)
