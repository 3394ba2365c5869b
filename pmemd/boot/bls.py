"""(pure) Boot Loader Specification type #1 entries (``loader/entries/*.conf``), as GRUB's
``blscfg`` (Fedora, RHEL) and systemd-boot read them, and the edit of their ``options``."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pmemd.boot.grubcfg import expand_variables
from pmemd.core.cmdline import CmdlineEdit, args_of, edit_args_text
from pmemd.core.kernel import version_key

OPTIONS = "options"


@dataclass(frozen=True)
class BlsEntry:
    name: str  # the file name without ".conf": the entry's id
    fields: tuple[tuple[str, str], ...]

    def value(self, key: str) -> str | None:
        return next((v for k, v in self.fields if k == key), None)

    def values(self, key: str) -> tuple[str, ...]:
        return tuple(v for k, v in self.fields if k == key)

    @property
    def title(self) -> str:
        return self.value("title") or self.name

    @property
    def kernel(self) -> str | None:
        return self.value("linux")

    def options(self, variables: Mapping[str, str] | None = None) -> str:
        """Every ``options`` line joined (the spec concatenates them); GRUB's blscfg also
        expands ``$variables`` such as EL8's ``$kernelopts`` from grubenv."""
        text = " ".join(self.values(OPTIONS))
        return text if variables is None else expand_variables(text, variables)


def _split_line(line: str) -> tuple[str, str] | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    parts = stripped.split(None, 1)
    return parts[0], (parts[1] if len(parts) > 1 else "")


def parse_bls_entry(name: str, text: str) -> BlsEntry:
    fields = tuple(f for f in (_split_line(line) for line in text.splitlines()) if f)
    return BlsEntry(name, fields)


def menu_order(entries: Iterable[BlsEntry]) -> list[BlsEntry]:
    """Newest first, as both blscfg and systemd-boot show type #1 entries by default."""
    return sorted(entries, key=lambda e: (version_key(e.value("version") or e.name),
                                          version_key(e.name)), reverse=True)


def find_entry(entries: Sequence[BlsEntry], wanted: str) -> BlsEntry | None:
    """An entry by id (file name, with or without ``.conf``), title or menu index."""
    for entry in entries:
        if wanted in (entry.name, f"{entry.name}.conf", entry.title):
            return entry
    if wanted.isdigit() and int(wanted) < len(entries):
        return entries[int(wanted)]
    return None


def match_glob(entries: Sequence[BlsEntry], pattern: str) -> BlsEntry | None:
    """systemd-boot's ``default`` in loader.conf: a glob over entry ids (first match in
    menu order)."""
    for entry in entries:
        if fnmatch.fnmatchcase(f"{entry.name}.conf", pattern) or fnmatch.fnmatchcase(
                entry.name, pattern):
            return entry
    return None


def edit_entry_options(text: str, edit: CmdlineEdit) -> str:
    """The entry with ``edit`` applied to its ``options`` lines, every other byte kept:
    removals from every options line, additions on the last one (or a new line)."""
    lines = text.splitlines(keepends=True)
    option_lines = [i for i, line in enumerate(lines)
                    if (_split_line(line) or ("", ""))[0] == OPTIONS]
    present: set[str] = set()
    for i in option_lines:
        key_end = lines[i].index(OPTIONS) + len(OPTIONS)
        head, value = lines[i][:key_end], lines[i][key_end:]
        value = edit_args_text(value, CmdlineEdit(remove=edit.remove))
        lines[i] = head + value
        present.update(args_of(value))
    missing = tuple(a for a in edit.add if a not in present)
    if not missing:
        return "".join(lines)
    if option_lines:
        last = option_lines[-1]
        key_end = lines[last].index(OPTIONS) + len(OPTIONS)
        head, value = lines[last][:key_end], lines[last][key_end:]
        if not args_of(value) and not value.startswith((" ", "\t")):
            value = " " + value
        lines[last] = head + edit_args_text(value, CmdlineEdit(add=missing))
        return "".join(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.append(f"{OPTIONS} {' '.join(missing)}\n")
    return "".join(lines)


TRIAL_TITLE = "pmemd trial boot: "


SORT_KEY = "sort-key"


def trial_copy(text: str, options: str, sort_key: str | None = None) -> str:
    """(pure) A type #1 entry's file ``text`` as the trial entry: the same kernel, initrd
    and every other line, the title marked, one ``options`` line with ``options`` (and,
    given ``sort_key``, that ``sort-key``)."""
    out: list[str] = []
    placed = False
    for line in text.splitlines():
        field = _split_line(line)
        if field is not None and field[0] == SORT_KEY and sort_key is not None:
            out.append(f"{SORT_KEY} {sort_key}")
            continue
        if field is not None and field[0] == OPTIONS:
            if not placed:
                out.append(f"{OPTIONS} {options}")
                placed = True
            continue
        if field is not None and field[0] == "title":
            out.append(f"title {TRIAL_TITLE}{field[1]}")
            continue
        out.append(line)
    if not placed:
        out.append(f"{OPTIONS} {options}")
    return "\n".join(out) + "\n"
