"""(pure) Read a generated ``grub.cfg`` the way GRUB does, far enough to know which entry
boots by default and which command line its ``linux`` command passes to the kernel.

Also the GRUB environment block (``grubenv``), where ``saved_entry`` and, on EL8,
``kernelopts`` live.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pmemd.core.cmdline import Cmdline, parse_cmdline

LINUX_COMMANDS = ("linux", "linux16", "linuxefi")
_BLANK = " \t"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
# What grub-mkconfig's 00_header exports before any entry (feature_menuentry_id is set
# by every GRUB since 2.00).
GRUB_BUILTINS = {"menuentry_id_option": "--id"}
# The first line of every GRUB environment block (grub-editenv refuses a file without it).
GRUBENV_HEADER = "# GRUB Environment Block\n"


@dataclass(frozen=True)
class MenuEntry:
    title: str
    entry_id: str | None
    kernel: str | None = None  # what its linux command loads
    words: tuple[str, ...] | None = None  # its linux command's arguments (None: no linux)
    children: tuple[MenuEntry, ...] = ()
    submenu: bool = False

    @property
    def cmdline(self) -> Cmdline | None:
        if self.words is None:
            return None
        return parse_cmdline(loader_cmdline(self.words))


@dataclass(frozen=True)
class GrubConfig:
    entries: tuple[MenuEntry, ...]
    default: str | None  # the value `set default=` gives (variables unexpanded)
    blscfg: bool  # entries come from BLS files (Fedora/RHEL), not from this file


def _variable(text: str, pos: int) -> tuple[str, int]:
    """The name of ``$name`` / ``${name}`` at ``pos`` (just after ``$``), and its end."""
    if text.startswith("{", pos):
        close = text.find("}", pos)
        if close < 0:
            return text[pos + 1 :], len(text)
        return text[pos + 1 : close], close + 1
    end = pos
    while end < len(text) and (text[end] in _NAME_CHARS or (end == pos and text[end] in "?#")):
        end += 1
    return text[pos:end], end


def _double_quoted(line: str, pos: int, variables: Mapping[str, str],
                   current: list[str]) -> int:
    """A double-quoted string's text (after the opening quote, at ``pos``) appended to
    ``current``: backslash escapes ``"``, ``\\``, ``$`` and newline; ``$variables`` are
    expanded. Returns the position after the closing quote."""
    while pos < len(line) and line[pos] != '"':
        if line[pos] == "\\" and pos + 1 < len(line) and line[pos + 1] in '"\\$\n':
            current.append(line[pos + 1])
            pos += 2
        elif line[pos] == "$":
            name, pos = _variable(line, pos + 1)
            current.append(variables.get(name, ""))
        else:
            current.append(line[pos])
            pos += 1
    return pos + 1


def split_words(line: str, variables: Mapping[str, str]) -> list[str]:
    """One line of GRUB script as its command sees it: quotes removed, backslash escapes
    applied, ``$variables`` expanded (unset ones are empty, as in GRUB)."""
    words: list[str] = []
    current: list[str] = []
    has_word = False  # a quoted empty string is still a word
    pos = 0
    while pos < len(line):
        char = line[pos]
        if char in _BLANK or char in "\r\n" or (char == "#" and not current and not has_word):
            if current or has_word:
                words.append("".join(current))
                current, has_word = [], False
            if char == "#":
                break
            pos += 1
        elif char == ";":
            break  # the rest is another command
        elif char == "\\":
            if pos + 1 < len(line):
                current.append(line[pos + 1])
                has_word = True
            pos += 2
        elif char == "'":
            close = line.find("'", pos + 1)
            close = len(line) if close < 0 else close
            current.append(line[pos + 1 : close])
            has_word = True
            pos = close + 1
        elif char == '"':
            has_word = True
            pos = _double_quoted(line, pos + 1, variables, current)
        elif char == "$":
            name, pos = _variable(line, pos + 1)
            value = variables.get(name, "")
            parts = value.split()
            if not parts:
                continue
            # An unquoted expansion is split into words at white space.
            current.append(parts[0])
            for part in parts[1:]:
                words.append("".join(current))
                current = [part]
            has_word = True
        else:
            current.append(char)
            has_word = True
            pos += 1
    if current or has_word:
        words.append("".join(current))
    return words


def loader_cmdline(words: Sequence[str]) -> str:
    """The command line GRUB's ``linux`` command builds from its argument words
    (``grub_create_loader_cmdline``): quotes and backslashes escaped, words with a space
    wrapped in double quotes."""
    out = []
    for word in words:
        escaped = "".join("\\" + c if c in "\\'\"" else c for c in word)
        out.append(f'"{escaped}"' if " " in word else escaped)
    return " ".join(out)


@dataclass
class _Frame:
    kind: str  # menuentry | submenu | other
    title: str = ""
    entry_id: str | None = None
    kernel: str | None = None
    words: tuple[str, ...] | None = None
    children: list[MenuEntry] | None = None


def _entry_id(words: Sequence[str]) -> str | None:
    for i, word in enumerate(words):
        if word == "--id" and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--id="):
            return word[len("--id=") :]
    return None


def parse_grub_cfg(text: str, variables: Mapping[str, str] | None = None) -> GrubConfig:
    """Menu entries (with submenus), the ``set default=`` value and whether ``blscfg`` is
    used. ``variables`` (e.g. from grubenv) are expanded in ``linux`` lines."""
    env = {**GRUB_BUILTINS, **(variables or {})}
    top: list[MenuEntry] = []
    stack: list[_Frame] = []
    default: str | None = None
    blscfg = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        first = stripped.split(None, 1)[0]
        if first == "}":
            if stack:
                frame = stack.pop()
                if frame.kind in ("menuentry", "submenu"):
                    entry = MenuEntry(frame.title, frame.entry_id, frame.kernel, frame.words,
                                      tuple(frame.children or ()), frame.kind == "submenu")
                    parent = next((f for f in reversed(stack) if f.kind == "submenu"), None)
                    if parent is not None and parent.children is not None:
                        parent.children.append(entry)
                    elif not any(f.kind == "menuentry" for f in stack):
                        top.append(entry)
            continue
        in_entry = any(f.kind == "menuentry" for f in stack)
        if first in ("menuentry", "submenu"):
            words = split_words(stripped, env)
            title = words[1] if len(words) > 1 else ""
            stack.append(_Frame(first, title, _entry_id(words),
                                children=[] if first == "submenu" else None))
            continue
        if stripped.endswith("{"):
            stack.append(_Frame("other"))
            continue
        if first in LINUX_COMMANDS and in_entry:
            words = split_words(stripped, env)
            frame = next(f for f in reversed(stack) if f.kind == "menuentry")
            if len(words) >= 2 and frame.words is None:
                frame.kernel, frame.words = words[1], tuple(words[2:])
            continue
        if first == "blscfg":
            blscfg = True
        elif (default is None and first == "set" and not in_entry
              and stripped.startswith("set default=")):
            # The header's own choice: the first one that is not grub-reboot's one-time
            # entry (later ones, like Fedora's boot counting, are conditional fallbacks).
            raw = stripped[len("set default=") :].strip()
            if "next_entry" not in raw:
                value = split_words(raw, {})
                unquoted = raw.strip('"')
                default = unquoted if unquoted.startswith("$") else (value[0] if value else "")
    return GrubConfig(tuple(top), default, blscfg)


def resolve_default(config: GrubConfig, env: Mapping[str, str]) -> tuple[MenuEntry | None, str]:
    """The entry GRUB boots without a hand on the keyboard, and how it was chosen."""
    if not config.entries:
        return None, "no menu entries"
    raw = config.default if config.default is not None else "0"
    value = raw
    how = f"default {raw!r}"
    if raw.startswith("$"):
        name = raw.strip("${}")
        value = env.get(name, "")
        how = f"{name}={value!r} in grubenv" if value else f"{name} unset: the first entry"
    if not value:
        value = "0"
    level = config.entries
    chosen: MenuEntry | None = None
    for part in value.split(">"):
        found = None
        if part.isdigit():
            index = int(part)
            found = level[index] if index < len(level) else None
        else:
            found = next((e for e in level if part in (e.title, e.entry_id)), None)
        if found is None:
            return config.entries[0], f"{how} names no entry; GRUB falls back to the first"
        chosen = found
        level = found.children
    return chosen, how


def find_entry(config: GrubConfig, entry_id: str) -> MenuEntry | None:
    """The menu entry with ``--id entry_id``, at any depth."""
    pending = list(config.entries)
    while pending:
        entry = pending.pop(0)
        if entry.entry_id == entry_id:
            return entry
        pending.extend(entry.children)
    return None


def fallback_variable(text: str, name: str) -> str | None:
    """The value a ``grub.cfg`` gives ``name`` when the environment block leaves it empty:
    ``if [ -z "${name}" ]; then set name="…"; fi``, as Fedora/RHEL's 10_linux writes it for
    ``kernelopts`` (the BLS entries' ``$kernelopts`` then reads it)."""
    lines = iter(text.splitlines())
    for line in lines:
        words = split_words(line, {})
        if words[:4] != ["if", "[", "-z", ""] or f"${{{name}}}" not in line:
            continue
        for inner in lines:
            inner_words = split_words(inner, {})
            if inner_words[:1] == ["fi"]:
                break
            if inner_words[:1] == ["set"] and len(inner_words) == 2 and \
                    inner_words[1].startswith(f"{name}="):
                return inner_words[1][len(name) + 1 :]
    return None


def parse_grubenv(text: str) -> dict[str, str]:
    """``key=value`` lines of a GRUB environment block (``#`` padding ignored)."""
    env = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        env[key] = value.replace("\\n", "\n").replace("\\\\", "\\")
    return env


def expand_variables(text: str, variables: Mapping[str, str]) -> str:
    """``$name`` and ``${name}`` replaced (unset: empty), everything else as written."""
    out = []
    pos = 0
    while pos < len(text):
        if text[pos] == "$":
            name, pos = _variable(text, pos + 1)
            out.append(variables.get(name, ""))
        else:
            out.append(text[pos])
            pos += 1
    return "".join(out)
