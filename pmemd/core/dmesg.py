"""(pure) The memory maps the kernel prints at boot, read from a saved dmesg or journal.

``e820__print_table(who)`` (``arch/x86/kernel/e820.c``) prints a table as
``WHO: [mem 0x%016llx-0x%016llx] TYPE`` (inclusive end; kernels before 3.8:
``WHO: %016llx - %016llx (TYPE)``, exclusive end). ``who`` names the code that set the
table up. The first table of a boot, after ``BIOS-provided physical RAM map:``, is the
firmware's: ``BIOS-e820`` (or ``BIOS-88``/``BIOS-e801`` on old BIOSes), ``Xen`` in a Xen PV
guest such as dom0. Later tables are the kernel's edits: ``reserve setup_data``
(``extended``), ``user`` (after ``memmap=``/``mem=``), ``modified`` (EFI quirks) …; the last
one printed is this boot's final map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pmemd.core.e820 import E820Entry, E820ParseError, MemoryMap, kind_from_label, shown_label
from pmemd.core.e820_table import E820Table, normalise
from pmemd.core.ranges import MemRange
from pmemd.core.u64 import U64Error, parse_hex_u64
from pmemd.core.visible import visible

FIRMWARE_HEADER = "BIOS-provided physical RAM map:"
FIRMWARE_SOURCES = ("BIOS-e820", "BIOS-88", "BIOS-e801", "Xen")
# Firmware maps on which memmap= cannot make pmem, and why.
NOT_MEMMAP_MAPS = {
    "Xen": ("this is the memory map of a Xen PV guest, such as a Xen dom0 ('Xen:' lines): "
            "the Xen hypervisor owns the machine's memory and lends this kernel pages of it, "
            "so memmap= cannot reserve physical memory as pmem here; emulate pmem on a "
            "kernel that boots from the machine's own map (bare metal, or a KVM/HVM guest, "
            "whose map is printed as 'BIOS-e820:')"),
}
MAX_LINE = 4096  # the kernel's lines are under 1024 characters (with a journal's prefix, more)
_WHO = r"(?<![\w-])(?P<who>[A-Za-z][\w-]*(?: setup_data)?)"
_NEW = re.compile(_WHO + r": \[mem (?P<first>0x[0-9a-fA-F]{16,})-(?P<last>0x[0-9a-fA-F]{16,})\] "
                  r"(?P<type>.*)", re.ASCII)
_OLD = re.compile(_WHO + r": (?P<first>[0-9a-fA-F]{16,}) - (?P<last>[0-9a-fA-F]{16,}) "
                  r"(?:\((?P<type>[^()]*)\)|(?P<number>type [0-9]+))", re.ASCII)
_NEW_BOOT = re.compile(r"^-- (?:Boot [0-9a-f]+|Reboot) --|(?<![\w-])Linux version ", re.ASCII)


@dataclass
class _Table:
    who: str
    line: int
    entries: list[E820Entry]


@dataclass
class _Boot:
    firmware: _Table | None = None
    later: list[_Table] = field(default_factory=list)
    expecting_firmware: bool = False  # after "BIOS-provided physical RAM map:"

    @property
    def empty(self) -> bool:
        return self.firmware is None and not self.later

    def is_firmware(self, who: str) -> bool:
        if self.firmware is None:
            return who in FIRMWARE_SOURCES or self.expecting_firmware
        return who in FIRMWARE_SOURCES or (who == self.firmware.who and not self.later)

    def starts_anew(self, who: str, entry: E820Entry) -> bool:
        """A firmware line that cannot belong to this boot's firmware table: a table came
        after it, another source prints it, or the table starts over (its first entry
        again: the same map printed by a later boot)."""
        table = self.firmware
        return table is not None and (bool(self.later) or table.who != who
                                      or entry == table.entries[0])


def _number(text: str, who: str, line: int) -> int:
    try:
        return parse_hex_u64(text, prefix=text[:2] in ("0x", "0X"))
    except U64Error as err:
        raise E820ParseError(f"in the '{who}:' table: {err}", line) from None


def _entry(line: str, number: int) -> tuple[str, E820Entry] | None:
    """The table entry on a line, or ``None`` when the line is not one."""
    if "[mem 0x" in line and (new := _NEW.search(line)) is not None:
        who = new["who"]
        start, last = _number(new["first"], who, number), _number(new["last"], who, number)
        if last < start:
            raise E820ParseError(f"empty or reversed range [mem {new['first']}-{new['last']}] "
                                 f"in the '{who}:' table", number)
        end, label = last + 1, new["type"].rstrip()
    elif " - " in line and (old := _OLD.search(line)) is not None:
        who = old["who"]
        start, end = _number(old["first"], who, number), _number(old["last"], who, number)
        if end <= start:
            raise E820ParseError(f"empty or reversed range {old['first']} - {old['last']} in "
                                 f"the '{who}:' table", number)
        label = old["type"] if old["type"] is not None else old["number"]
    else:
        return None
    return who, E820Entry(MemRange(start, end), kind_from_label(label), shown_label(label))


def _boots(text: str) -> list[_Boot]:
    boots = [_Boot()]
    for number, line in enumerate(text.splitlines(), 1):
        if len(line) > MAX_LINE:
            continue  # not a line the kernel printed
        if _NEW_BOOT.search(line) is not None or FIRMWARE_HEADER in line:
            if not boots[-1].empty:
                boots.append(_Boot())
            boots[-1].expecting_firmware = FIRMWARE_HEADER in line
            continue
        found = _entry(line, number)
        if found is None:
            continue
        who, entry = found
        boot = boots[-1]
        if boot.is_firmware(who):
            if boot.starts_anew(who, entry):
                boot = _Boot()
                boots.append(boot)
            if boot.firmware is None:
                boot.firmware = _Table(who, number, [])
            boot.firmware.entries.append(entry)
            boot.expecting_firmware = False
        else:
            last = boot.later[-1] if boot.later else None
            if last is None or last.who != who or entry == last.entries[0]:
                boot.later.append(_Table(who, number, []))
            boot.later[-1].entries.append(entry)
    return boots


@dataclass(frozen=True)
class DmesgMap:
    """The firmware's table and this boot's final one (``None``: not printed), each as the
    kernel reads it, with the names of the code that printed them."""

    firmware: tuple[E820Entry, ...]
    edited: tuple[E820Entry, ...] | None
    firmware_who: str = "BIOS-e820"
    edited_who: str | None = None
    oddities: tuple[str, ...] = ()


def _missing_firmware(boots: list[_Boot]) -> E820ParseError:
    later = [t for boot in boots for t in boot.later]
    if not later:
        return E820ParseError(
            "no memory map found: no 'BIOS-e820:' lines (nor another table the kernel prints "
            "at boot, such as 'Xen:'); paste the whole output of 'dmesg' (or "
            "'journalctl -k -b') from the machine")
    names = ", ".join(dict.fromkeys(f"'{visible(t.who)}:'" for t in later))
    return E820ParseError(
        f"only the kernel's edited map was found ({names} lines), not the firmware's "
        f"('BIOS-e820:' lines after '{FIRMWARE_HEADER}'); paste the whole output of 'dmesg'",
        later[0].line)


def parse_dmesg_e820(text: str) -> DmesgMap:
    """The memory maps of the last boot in ``text`` that printed a firmware map."""
    boots = _boots(text)
    chosen = next((b for b in reversed(boots) if b.firmware is not None), None)
    if chosen is None or chosen.firmware is None:
        raise _missing_firmware(boots)
    firmware = chosen.firmware
    why_not = NOT_MEMMAP_MAPS.get(firmware.who)
    if why_not is not None:
        raise E820ParseError(why_not, firmware.line)
    table = normalise(firmware.entries)
    edited: E820Table | None = None
    edited_who = None
    if chosen.later:  # the kernel's own table: its neighbours of one wording may differ in
        last = chosen.later[-1]  # type ("usable" is also type 128, setup_data): not odd
        edited, edited_who = normalise(last.entries), last.who
    return DmesgMap(table.entries, edited.entries if edited is not None else None,
                    firmware.who, edited_who, table.oddities)


def memory_map_from_dmesg(text: str, source: str) -> MemoryMap:
    parsed = parse_dmesg_e820(text)
    shown = visible(source)
    return MemoryMap(
        firmware=parsed.firmware,
        firmware_source=f"{shown} ({parsed.firmware_who})",
        edited=parsed.edited,
        edited_source=f"{shown} ({parsed.edited_who})" if parsed.edited is not None else None,
        oddities=parsed.oddities,
    )
