"""What can still be used of an invalid config: the regions that have no problem.

A bad line in ``/etc/fstab`` does not stop systemd from mounting the others; likewise a
region with a problem must not cost the other regions their filesystems. The generator
and the commands its units run read the config through :func:`salvage_config`, so both
agree on which regions are usable. Problems outside ``regions[N]`` (version, memory,
YAML syntax) leave nothing usable. Regions without an ``offset`` are only placed from a
fully valid config: their place depends on every other region.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pmemd.config import parse_config
from pmemd.errors import ConfigError, Problem
from pmemd.machine import CONFIG_PATH, Machine
from pmemd.model import Config, Region


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


def salvage_config(data: bytes, path: str) -> Salvaged:
    """Parse ``data``; on problems, the config without the regions that have them."""
    try:
        return Salvaged(parse_config(data, path), ())
    except ConfigError as err:
        problems, partial = err.problems, err.partial
    dropped = tuple(sorted({p.region for p in problems if p.region is not None}))
    if partial is None:
        return Salvaged(None, problems, dropped)
    usable = tuple(r for r in partial.regions if r.offset is not None)
    auto = tuple(r.name for r in partial.regions if r.offset is None)
    return Salvaged(replace(partial, regions=usable), problems, dropped, auto)


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
