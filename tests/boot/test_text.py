"""(pure) The text pmemd reads and edits: command lines, GRUB script and grub.cfg, grubenv,
BLS entries, /etc/default/grub, pmemd's drop-in, and grubby's arguments."""

from __future__ import annotations

import pytest

from pmemd.boot.backends.grubby import grubby_args
from pmemd.boot.backends.mkconfig import is_stub
from pmemd.boot.backends.update_grub import render_dropin
from pmemd.boot.bls import (
    BlsEntry,
    edit_entry_options,
    find_entry,
    match_glob,
    menu_order,
    parse_bls_entry,
)
from pmemd.boot.defaultgrub import DefaultGrubError, edit_default_grub, find_assignment
from pmemd.boot.grubcfg import (
    loader_cmdline,
    parse_grub_cfg,
    parse_grubenv,
    resolve_default,
    split_words,
)
from pmemd.core.cmdline import CmdlineEdit, arg_spans, args_of, edit_args_text, parse_cmdline
from tests.boot.conftest import BOOTLOADER_FIXTURES

M1, M2, M3 = "memmap=4G!12G", "memmap=2G!10G", "memmap=1G!8G"

# --- command-line text ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "add", "remove", "expected"), [
    ("root=/dev/sda1 ro quiet", (M1,), (), f"root=/dev/sda1 ro quiet {M1}"),
    ("root=/dev/sda1 ro quiet\n", (M1,), (), f"root=/dev/sda1 ro quiet {M1}\n"),
    ("", (M1, M2), (), f"{M1} {M2}"),
    ("\n", (M1,), (), f"{M1}\n"),
    (f"ro {M1} quiet", (), (M1,), "ro quiet"),
    (f"{M1} ro", (), (M1,), "ro"),
    (f"ro  {M1}\tquiet", (), (M1,), "ro\tquiet"),  # the blanks before it go with it
    (f"ro {M1}", (M1,), (), f"ro {M1}"),  # already there: nothing added twice
    (f"ro {M3} quiet", (M1,), (M3,), f"ro quiet {M1}"),  # a resize
    ("ro quiet -- single", (M1,), (), f"ro quiet {M1} -- single"),  # kernel args before --
    (f"ro -- {M1}", (), (M1,), f"ro -- {M1}"),  # after -- it is init's, not pmemd's
    ('ro dyndbg="file a.c +p" quiet', (M1,), (), f'ro dyndbg="file a.c +p" quiet {M1}'),
    ("ro memmap=4G!12Gx", (), (M1,), "ro memmap=4G!12Gx"),  # only the exact argument
])
def test_edit_args_text(text: str, add: tuple[str, ...], remove: tuple[str, ...],
                        expected: str) -> None:
    assert edit_args_text(text, CmdlineEdit(add, remove)) == expected


def test_arg_spans_split_like_the_kernel() -> None:
    text = 'a "b c" d="e f" g'
    assert [text[s:e] for s, e in arg_spans(text)] == ["a", '"b c"', 'd="e f"', "g"]
    assert args_of("a -- b") == ("a",)


@pytest.mark.parametrize("bad", ["memmap=4G\\!12G", 'x="a b"', "a b", "memmap=$x", ""])
def test_pmemd_refuses_to_write_what_could_be_misread(bad: str) -> None:
    with pytest.raises(ValueError, match="refuses"):
        CmdlineEdit(add=(bad,))


# --- GRUB script and grub.cfg --------------------------------------------------------------------


@pytest.mark.parametrize(("line", "words"), [
    ("linux /vmlinuz root=UUID=x ro  quiet", ["linux", "/vmlinuz", "root=UUID=x", "ro", "quiet"]),
    ("linux /v memmap=4G\\!12G", ["linux", "/v", "memmap=4G!12G"]),  # GRUB drops the backslash
    ("menuentry 'Debian, with Linux' --class x $menuentry_id_option 'id-1' {",
     ["menuentry", "Debian, with Linux", "--class", "x", "--id", "id-1", "{"]),
    ('linux /v "a b" c', ["linux", "/v", "a b", "c"]),
    ("linux /v $kernelopts x", ["linux", "/v", "root=/dev/r", "ro", "x"]),
    ("linux /v ${extra_cmdline} quiet", ["linux", "/v", "quiet"]),  # unset: nothing
    ("linux /v 'it'\\''s'", ["linux", "/v", "it's"]),
    ("set x=1 # comment", ["set", "x=1"]),
])
def test_split_words(line: str, words: list[str]) -> None:
    variables = {"menuentry_id_option": "--id", "kernelopts": "root=/dev/r ro"}
    assert split_words(line, variables) == words


def test_loader_cmdline_requotes_like_grub() -> None:
    assert loader_cmdline(["root=x", "a b", 'q"u']) == 'root=x "a b" q\\"u'


def _cfg(name: str) -> str:
    return (BOOTLOADER_FIXTURES / name).read_text()


def test_debian12_grub_cfg_default_is_the_first_entry() -> None:
    config = parse_grub_cfg(_cfg("debian12/boot/grub/grub.cfg"))
    assert config.default == "0" and not config.blscfg
    entry, how = resolve_default(config, {})
    assert entry is not None and entry.title == "Debian GNU/Linux" and how == "default '0'"
    assert entry.kernel == "/boot/vmlinuz-6.1.0-27-amd64"
    assert entry.cmdline is not None
    assert [a.text for a in entry.cmdline.args][1:] == ["ro", "quiet"]
    advanced = config.entries[1]
    assert advanced.submenu
    assert [c.title for c in advanced.children] == [
        "Debian GNU/Linux, with Linux 6.1.0-27-amd64",
        "Debian GNU/Linux, with Linux 6.1.0-27-amd64 (recovery mode)",
        "Debian GNU/Linux, with Linux 6.1.0-26-amd64",
        "Debian GNU/Linux, with Linux 6.1.0-26-amd64 (recovery mode)"]


def test_debian12_with_pmemd_dropin_carries_memmap() -> None:
    entry, _ = resolve_default(parse_grub_cfg(_cfg("debian12-memmap/boot/grub/grub.cfg")), {})
    assert entry is not None and entry.cmdline is not None
    assert M1 in [a.text for a in entry.cmdline.args]


@pytest.mark.parametrize(("default", "env", "title"), [
    ("0", {}, "Debian GNU/Linux"),
    ("1>2", {}, "Debian GNU/Linux, with Linux 6.1.0-26-amd64"),
    ("gnulinux-advanced-eeddd662-a512-429e-b053-0907b36addce>"
     "gnulinux-6.1.0-26-amd64-advanced-eeddd662-a512-429e-b053-0907b36addce", {},
     "Debian GNU/Linux, with Linux 6.1.0-26-amd64"),
    ("Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-26-amd64 "
     "(recovery mode)", {}, "Debian GNU/Linux, with Linux 6.1.0-26-amd64 (recovery mode)"),
    ("${saved_entry}", {"saved_entry": "1>0"}, "Debian GNU/Linux, with Linux 6.1.0-27-amd64"),
    ("${saved_entry}", {}, "Debian GNU/Linux"),  # nothing saved: the first entry
    ("7", {}, "Debian GNU/Linux"),  # no such entry: GRUB falls back to the first
])
def test_resolve_default(default: str, env: dict[str, str], title: str) -> None:
    text = _cfg("debian12/boot/grub/grub.cfg").replace('set default="0"',
                                                        f'set default="{default}"')
    entry, _ = resolve_default(parse_grub_cfg(text), env)
    assert entry is not None and entry.title == title


def test_suse_grub_cfg_saved_entry_and_linuxefi() -> None:
    env = parse_grubenv(_cfg("sle15/boot/grub2/grubenv"))
    assert env == {"saved_entry": "openSUSE Leap 15.5"}
    config = parse_grub_cfg(_cfg("sle15/boot/grub2/grub.cfg"), env)
    entry, how = resolve_default(config, env)
    assert entry is not None and entry.title == "openSUSE Leap 15.5"
    assert "saved_entry" in how
    assert entry.cmdline is not None
    assert "security=apparmor" in [a.text for a in entry.cmdline.args]


def test_fedora_bls_grub_cfg_is_recognised_and_its_fallback_default_ignored() -> None:
    config = parse_grub_cfg(_cfg("fedora39/boot/grub2/grub.cfg"))
    assert config.blscfg
    assert config.default == "${saved_entry}"  # not boot counting's conditional "1"


@pytest.mark.parametrize(("path", "stub"), [
    ("fedora39/boot/efi/EFI/fedora/grub.cfg", True),
    ("sle15/boot/efi/EFI/opensuse/grub.cfg", True),
    ("el7/boot/efi/EFI/centos/grub.cfg", False),
    ("fedora39/boot/grub2/grub.cfg", False),
])
def test_efi_stub_detection(path: str, stub: bool) -> None:
    assert is_stub(_cfg(path)) is stub


# --- BLS -----------------------------------------------------------------------------------------


def _entries(distro: str) -> list[BlsEntry]:
    directory = BOOTLOADER_FIXTURES / distro / "boot/loader/entries"
    return menu_order(parse_bls_entry(p.name.removesuffix(".conf"), p.read_text())
                      for p in directory.glob("*.conf"))


def test_fedora_entries_newest_first_rescue_last() -> None:
    order = [e.value("version") for e in _entries("fedora39")]
    assert order[:2] == ["6.7.9-200.fc39.x86_64", "6.5.6-300.fc39.x86_64"]
    assert str(order[2]).startswith("0-rescue-")


def test_find_entry_by_id_title_and_index() -> None:
    entries = _entries("fedora39")
    newest = entries[0]
    assert find_entry(entries, newest.name) is newest
    assert find_entry(entries, newest.name + ".conf") is newest
    assert find_entry(entries, newest.title) is newest
    assert find_entry(entries, "1") is entries[1]
    assert find_entry(entries, "nothing") is None
    assert match_glob(entries, "*6.5.6*") is entries[1]


def test_el8_options_come_from_kernelopts() -> None:
    entry = _entries("el8")[0]
    env = parse_grubenv(_cfg("el8/boot/grub2/grubenv"))
    options = parse_cmdline(entry.options(env))
    assert [a.text for a in options.args][:2] == ["root=/dev/mapper/rhel-root", "ro"]
    assert entry.options() == "$kernelopts $tuned_params"


ENTRY = ("title Debian\nversion 6.1\noptions    root=UUID=x ro quiet\n"
         "linux /k\ninitrd /i\n")


@pytest.mark.parametrize(("text", "edit", "expected"), [
    (ENTRY, CmdlineEdit((M1,)), ENTRY.replace("quiet\n", f"quiet {M1}\n")),
    (ENTRY.replace("quiet", f"quiet {M3}"), CmdlineEdit((M1,), (M3,)),
     ENTRY.replace("quiet\n", f"quiet {M1}\n")),
    ("title x\noptions a\noptions b\nlinux /k\n", CmdlineEdit((M1,)),
     f"title x\noptions a\noptions b {M1}\nlinux /k\n"),  # several lines: add to the last
    (f"title x\noptions a {M1}\noptions b\nlinux /k\n", CmdlineEdit((M1,)),
     f"title x\noptions a {M1}\noptions b\nlinux /k\n"),  # present on any line: enough
    ("title x\nlinux /k", CmdlineEdit((M1,)), f"title x\nlinux /k\noptions {M1}\n"),
    ("title x\noptions\nlinux /k\n", CmdlineEdit((M1,)), f"title x\noptions {M1}\nlinux /k\n"),
])
def test_edit_entry_options(text: str, edit: CmdlineEdit, expected: str) -> None:
    assert edit_entry_options(text, edit) == expected


# --- /etc/default/grub -------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ('GRUB_CMDLINE_LINUX=""', f'GRUB_CMDLINE_LINUX="{M1}"'),
    ('GRUB_CMDLINE_LINUX="rhgb quiet"', f'GRUB_CMDLINE_LINUX="rhgb quiet {M1}"'),
    ("GRUB_CMDLINE_LINUX='rhgb quiet'", f"GRUB_CMDLINE_LINUX='rhgb quiet {M1}'"),
    ("GRUB_CMDLINE_LINUX=quiet", f'GRUB_CMDLINE_LINUX="quiet {M1}"'),
    ("GRUB_CMDLINE_LINUX=", f'GRUB_CMDLINE_LINUX="{M1}"'),
    ('export GRUB_CMDLINE_LINUX="a" # mine', f'export GRUB_CMDLINE_LINUX="a {M1}" # mine'),
    (f'GRUB_CMDLINE_LINUX="a {M3} b"', f'GRUB_CMDLINE_LINUX="a b {M1}"'),
])
def test_default_grub_edit_touches_only_the_value(line: str, expected: str) -> None:
    before = f"# top\nGRUB_TIMEOUT=5\n{line}\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n# end"
    after = edit_default_grub(before, CmdlineEdit((M1,), (M3,)), "grub")
    assert after == before.replace(line, expected)


def test_default_grub_edit_keeps_every_other_byte_of_real_files() -> None:
    for distro in ("sle15", "el7", "debian12", "fedora39"):
        text = _cfg(f"{distro}/etc/default/grub")
        after = edit_default_grub(text, CmdlineEdit((M1, M2)), "grub")
        found = find_assignment(text, "grub")
        assert found is not None
        assert after[: found.start] == text[: found.start]
        tail = after[found.start :]
        assert tail.endswith(text[found.end :])
        assert edit_default_grub(after, CmdlineEdit(remove=(M1, M2)), "grub") == text


def test_default_grub_last_assignment_wins_and_missing_one_is_appended() -> None:
    text = 'GRUB_CMDLINE_LINUX="a"\nGRUB_CMDLINE_LINUX="b"'
    assert edit_default_grub(text, CmdlineEdit((M1,)), "g") == \
        f'GRUB_CMDLINE_LINUX="a"\nGRUB_CMDLINE_LINUX="b {M1}"'
    assert edit_default_grub("GRUB_TIMEOUT=5", CmdlineEdit((M1,)), "g") == \
        f'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="{M1}"\n'
    assert edit_default_grub("GRUB_TIMEOUT=5\n", CmdlineEdit(remove=(M1,)), "g") == \
        "GRUB_TIMEOUT=5\n"


@pytest.mark.parametrize(("line", "why"), [
    ('GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX quiet"', "shell expansion"),
    ('GRUB_CMDLINE_LINUX="`cat /x`"', "shell expansion"),
    ('GRUB_CMDLINE_LINUX="a\\"b"', "shell expansion"),
    ('GRUB_CMDLINE_LINUX="a\nb"', "next line"),
    ('GRUB_CMDLINE_LINUX="a"b', "cannot tell where"),
    ("GRUB_CMDLINE_LINUX=a b", "cannot tell where"),
])
def test_default_grub_forms_pmemd_will_not_edit(line: str, why: str) -> None:
    with pytest.raises(DefaultGrubError, match=why) as caught:
        edit_default_grub(f"X=1\n{line}\n", CmdlineEdit((M1,)), "/etc/default/grub")
    assert "/etc/default/grub:2" in str(caught.value)


# --- pmemd's own drop-in, grubby's arguments ----------------------------------------------------


def test_dropin_appends_to_grub_cmdline_linux() -> None:
    text = render_dropin((M1, "nokaslr"))
    assert text is not None
    assert text.splitlines()[-1] == f'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX {M1} nokaslr"'
    assert render_dropin(()) is None


@pytest.mark.parametrize(("cmdline", "add", "remove", "args", "keep"), [
    ("root=x ro", (M1,), (), (M1,), ()),
    # grubby drops every memmap= before adding: the ones that stay are passed again
    (f"root=x {M2} memmap=1G$8G ro", (M1,), (), (M2, "memmap=1G$8G", M1),
     (M2, "memmap=1G$8G")),
    (f"root=x {M3} {M2}", (M1,), (M3,), (M2, M1), (M2,)),  # resize: the old one not again
    (f"root=x {M3}", (), (M3,), (), ()),  # only a removal: --remove-args alone
    (f"root=x {M2}", ("nokaslr",), (), ("nokaslr",), ()),  # no memmap added: none touched
])
def test_grubby_args(cmdline: str, add: tuple[str, ...], remove: tuple[str, ...],
                     args: tuple[str, ...], keep: tuple[str, ...]) -> None:
    assert grubby_args(parse_cmdline(cmdline), CmdlineEdit(add, remove)) == (args, keep)
