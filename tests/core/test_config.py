"""pmemd.yaml: strict parsing, every problem located as FILE:LINE:COL: key: message."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmemd.core.config import parse_config
from pmemd.core.model import BootloaderChoice, FsType, KaslrPolicy, OnBoot, RebootPolicy
from pmemd.errors import ConfigError

G, M = 1 << 30, 1 << 20

GOOD = """\
version: 1
boot:
  bootloader: update-grub
  reboot: auto
  kaslr: disable
memory:
  alignment: 2M
  min-system-ram: 512M
regions:
  - name: data
    size: 4G
    offset: 12G
    filesystem:
      type: xfs
      mountpoint: /pmem
      options: [noatime]
      on-boot: recreate
  - name: raw-0
    size: 0x20000000
"""


def problems(text: str) -> list[str]:
    """The rendered problems of a config that must fail."""
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text).encode(), "pmemd.yaml").require()
    return [p.render() for p in caught.value.problems]


def one_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_a_full_config() -> None:
    config = parse_config(GOOD, "pmemd.yaml").require()
    assert config.boot.bootloader is BootloaderChoice.UPDATE_GRUB
    assert config.boot.reboot is RebootPolicy.AUTO
    assert config.boot.kaslr is KaslrPolicy.DISABLE
    assert config.memory.alignment == 2 * M
    assert config.memory.min_system_ram == 512 * M
    data, raw = config.regions
    assert (data.name, data.size, data.offset) == ("data", 4 * G, 12 * G)
    assert data.filesystem is not None
    assert data.filesystem.type is FsType.XFS
    assert data.filesystem.options == ("noatime",)
    assert data.filesystem.on_boot is OnBoot.RECREATE
    assert (raw.name, raw.size, raw.offset, raw.filesystem) == ("raw-0", 512 * M, None, None)
    assert config.source.locate("regions[1].size") is not None


def test_defaults() -> None:
    config = parse_config("version: 1\n").require()
    assert config.regions == ()
    assert config.boot.bootloader is BootloaderChoice.AUTO
    assert config.boot.reboot is RebootPolicy.NEVER
    assert config.boot.kaslr is KaslrPolicy.WARN
    assert config.memory.alignment == 128 * M
    assert config.memory.min_system_ram == G


def test_filesystem_defaults_to_recreate() -> None:
    config = parse_config("version: 1\nregions:\n- {name: a, size: 1G, "
                          "filesystem: {type: ext4, mountpoint: /pmem}}\n").require()
    fs = config.regions[0].filesystem
    assert fs is not None and fs.on_boot is OnBoot.RECREATE and fs.options == ()


# Each bad input: the config, then the exact "LINE:COL: key: message" it must produce.
BAD = {
    "missing version": ("regions: []\n", "1:1: version: missing required key 'version'"),
    "version as text": ('version: "1"\n', "1:10: version: expected the number 1, got '1'"),
    "future version": ("version: 2\n", "1:10: version: unsupported version 2; this pmemd "
                                       "reads version 1"),
    "unknown top key": ("version: 1\nregion: []\n",
                        "2:1: region: unknown key 'region'; did you mean 'regions'?"),
    "unknown key without hint": ("version: 1\nxyzzy: 1\n", "2:1: xyzzy: unknown key 'xyzzy'; "
                                 "known keys: version, boot, memory, regions"),
    "boot not a mapping": ("version: 1\nboot: auto\n",
                           "2:7: boot: expected a mapping, got 'auto'"),
    "bad bootloader": ("version: 1\nboot:\n  bootloader: lilo\n",
                       "3:15: boot.bootloader: 'lilo' is not one of: auto, grubby, update-grub, "
                       "grub2-mkconfig, kernel-install"),
    "yaml 1.1 boolean": ("version: 1\nboot:\n  reboot: no\n",
                         "3:11: boot.reboot: 'no' is not one of: never, auto"),
    "regions not a list": ("version: 1\nregions:\n  name: a\n",
                           "3:3: regions: expected a list of regions, got a mapping"),
    "region missing size": ("version: 1\nregions:\n  - name: a\n",
                            "3:5: regions[0].size: missing required key 'size'"),
    "region missing name": ("version: 1\nregions:\n  - size: 1G\n",
                            "3:5: regions[0].name: missing required key 'name'"),
    "bad size suffix": ("version: 1\nregions:\n  - name: a\n    size: 4X\n",
                        "4:12: regions[0].size: '4X' is not a size: unexpected 'X' after '4'"),
    "negative size": ("version: 1\nregions:\n  - name: a\n    size: -1G\n",
                      "4:11: regions[0].size: '-1G' is not a size: sizes cannot be signed"),
    "zero size": ("version: 1\nregions:\n  - name: a\n    size: 0\n",
                  "4:11: regions[0].size: size must be greater than zero"),
    "empty size": ("version: 1\nregions:\n  - name: a\n    size: ''\n",
                   "4:12: regions[0].size: empty size"),
    "null size": ("version: 1\nregions:\n  - name: a\n    size:\n",
                  "4:10: regions[0].size: 'size' needs a value"),
    "octal offset": ("version: 1\nregions:\n  - name: a\n    size: 1G\n    offset: 012G\n",
                     "5:13: regions[0].offset: '012G' has a leading zero, which the kernel "
                     "reads as octal"),
    "quoted size column": ("version: 1\nregions:\n  - name: a\n    size: '4GB'\n",
                           "4:14: regions[0].size: '4GB' is not a size: unexpected 'B'"),
    "list as size": ("version: 1\nregions:\n  - name: a\n    size: [1G]\n",
                     "4:11: regions[0].size: expected a string, got a sequence"),
    "misaligned size": ("version: 1\nregions:\n  - name: a\n    size: 100M\n",
                        "4:11: regions[0].size: 100M is not a multiple of the 128M alignment "
                        "(memory.alignment); nearest: 128M"),
    "misaligned offset": ("version: 1\nregions:\n  - name: a\n    size: 1G\n"
                          "    offset: 0x70100000\n",
                          "5:13: regions[0].offset: 1793M is not a multiple of the 128M "
                          "alignment (memory.alignment); nearest: 1792M or 1920M"),
    "alignment below 2M": ("version: 1\nmemory:\n  alignment: 1M\n",
                           "3:14: memory.alignment: alignment must be a power of two of at "
                           "least 2M"),
    "alignment not a power of two": ("version: 1\nmemory:\n  alignment: 96M\n",
                                     "3:14: memory.alignment: alignment must be a power of two"),
    "bad name": ("version: 1\nregions:\n  - name: Data_1\n    size: 1G\n",
                 "3:11: regions[0].name: 'Data_1' is not a valid region name"),
    "name with trailing dash": ("version: 1\nregions:\n  - name: data-\n    size: 1G\n",
                                "3:11: regions[0].name: 'data-' is not a valid region name"),
    "name too long": (f"version: 1\nregions:\n  - name: {'a' * 33}\n    size: 1G\n",
                      "3:11: regions[0].name: '" + "a" * 33 + "' is not a valid region name"),
    "unknown fs type": ("version: 1\nregions:\n  - name: a\n    size: 1G\n    filesystem:\n"
                        "      type: btrfs\n      mountpoint: /pmem\n",
                        "6:13: regions[0].filesystem.type: 'btrfs' is not one of: ext4, xfs"),
    "xfs too small": ("version: 1\nregions:\n  - name: a\n    size: 256M\n    filesystem:\n"
                      "      type: xfs\n      mountpoint: /pmem\n",
                      "6:13: regions[0].filesystem.type: xfs needs at least 300M (mkfs.xfs "
                      "refuses smaller filesystems); this region is 256M"),
    "missing mountpoint": ("version: 1\nregions:\n  - name: a\n    size: 1G\n    filesystem:\n"
                           "      type: ext4\n",
                           "6:7: regions[0].filesystem.mountpoint: missing required key "
                           "'mountpoint'"),
    "relative mountpoint": ("version: 1\nregions:\n  - name: a\n    size: 1G\n    filesystem:\n"
                            "      type: ext4\n      mountpoint: pmem\n",
                            "7:19: regions[0].filesystem.mountpoint: 'pmem' is not an "
                            "absolute path"),
    "unnormalized mountpoint": ("version: 1\nregions:\n  - name: a\n    size: 1G\n"
                                "    filesystem:\n      type: ext4\n"
                                "      mountpoint: /pmem/../pmem2\n",
                                "7:19: regions[0].filesystem.mountpoint: '/pmem/../pmem2' is "
                                "not normalized; write '/pmem2'"),
    "double slash": ("version: 1\nregions:\n  - name: a\n    size: 1G\n    filesystem:\n"
                     "      type: ext4\n      mountpoint: //pmem\n",
                     "7:19: regions[0].filesystem.mountpoint: '//pmem' is not normalized; "
                     "write '/pmem'"),
    "root mountpoint": ("version: 1\nregions:\n  - name: a\n    size: 1G\n    filesystem:\n"
                        "      type: ext4\n      mountpoint: /\n",
                        "7:19: regions[0].filesystem.mountpoint: '/' would hide the system's "
                        "own '/'"),
    "mountpoint under /proc": ("version: 1\nregions:\n  - name: a\n    size: 1G\n"
                               "    filesystem:\n      type: ext4\n      mountpoint: /proc/pm\n",
                               "7:19: regions[0].filesystem.mountpoint: '/proc/pm' is at or "
                               "under /proc, which belongs to the system"),
    "mountpoint /run": ("version: 1\nregions:\n  - name: a\n    size: 1G\n    filesystem:\n"
                        "      type: ext4\n      mountpoint: /run\n",
                        "7:19: regions[0].filesystem.mountpoint: '/run' is at or under /run"),
    "mountpoint under /boot": ("version: 1\nregions:\n  - name: a\n    size: 1G\n"
                               "    filesystem:\n      type: ext4\n      mountpoint: /boot/efi\n",
                               "'/boot/efi' is at or under /boot"),
    "mountpoint under /sys": ("version: 1\nregions:\n  - name: a\n    size: 1G\n"
                              "    filesystem:\n      type: ext4\n      mountpoint: /sys/x\n",
                              "'/sys/x' is at or under /sys"),
    "mountpoint under /dev": ("version: 1\nregions:\n  - name: a\n    size: 1G\n"
                              "    filesystem:\n      type: ext4\n      mountpoint: /dev/pmem\n",
                              "'/dev/pmem' is at or under /dev"),
    "dax option": ("version: 1\nregions:\n  - name: a\n    size: 1G\n    filesystem:\n"
                   "      type: ext4\n      mountpoint: /pmem\n      options: [dax=never]\n",
                   "8:17: regions[0].filesystem.options[0]: 'dax=never': pmemd sets the DAX "
                   "option itself (dax=always)"),
    "comma in option": ("version: 1\nregions:\n  - name: a\n    size: 1G\n    filesystem:\n"
                        "      type: ext4\n      mountpoint: /pmem\n      options: ['a,b']\n",
                        "8:17: regions[0].filesystem.options[0]: 'a,b' is not one mount option"),
    "options not a list": ("version: 1\nregions:\n  - name: a\n    size: 1G\n    filesystem:\n"
                           "      type: ext4\n      mountpoint: /pmem\n      options: noatime\n",
                           "8:16: regions[0].filesystem.options: expected a list of mount "
                           "options, got 'noatime'"),
    "bad on-boot": ("version: 1\nregions:\n  - name: a\n    size: 1G\n    filesystem:\n"
                    "      type: ext4\n      mountpoint: /pmem\n      on-boot: wipe\n",
                    "8:16: regions[0].filesystem.on-boot: 'wipe' is not one of: recreate, keep"),
    "duplicate key": ("version: 1\nversion: 1\n",
                      "2:1: version: duplicate key 'version' (first set on line 1)"),
    "anchor": ("version: 1\nregions:\n  - &r {name: a, size: 1G}\n",
               "3:5: YAML anchors (&name) are not allowed in pmemd.yaml"),
    "alias": ("version: 1\nboot: &b {reboot: never}\n",
              "2:7: YAML anchors (&name) are not allowed in pmemd.yaml"),
    "tag": ("version: 1\nregions:\n  - !!python/object {name: a}\n",
            "3:5: YAML tags (tag:yaml.org,2002:python/object) are not allowed in pmemd.yaml"),
    "not a mapping": ("- version: 1\n", "1:1: expected a mapping, got a sequence"),
    "scalar document": ("just words\n", "1:1: expected a mapping, got 'just words'"),
    "empty file": ("", "1:1: the config is empty; it needs at least 'version: 1'"),
    "only comments": ("# nothing\n", "1:1: the config is empty"),
    "two documents": ("version: 1\n---\nversion: 1\n",
                      "2:1: more than one YAML document; pmemd reads one"),
    "broken yaml": ("version: 1\nregions: [\n", "3:1: not valid YAML"),
    "tab indentation": ("version: 1\nboot:\n\treboot: never\n", "3:1: not valid YAML"),
    "deep nesting": ("version: 1\nregions: " + "[" * 40 + "]" * 40 + "\n",
                     "nested deeper than 16 levels"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_gives_one_located_message(case: str) -> None:
    text, expected = BAD[case]
    message = one_problem(text)
    assert expected in message, message
    assert message.startswith("pmemd.yaml:")


def test_message_shows_the_source_line_and_a_caret() -> None:
    message = one_problem("version: 1\nregions:\n  - name: a\n    size: 4X\n")
    assert message == (
        "pmemd.yaml:4:12: regions[0].size: '4X' is not a size: unexpected 'X' after '4' "
        "(suffixes are K, M, G, T, P, E)\n"
        "        size: 4X\n"
        "               ^")


def test_all_problems_are_reported_in_one_run() -> None:
    found = problems("""\
        version: 1
        boot:
          reboot: sometimes
        regions:
          - name: data
            size: 4X
          - name: data2
            size: 1G
            offset: 12G
            filesystem: {type: ext4, mountpoint: /pmem}
          - name: data3
            size: 1G
            offset: 12G
            filesystem: {type: ext4, mountpoint: /pmem}
          - name: data2
            size: 1G
    """)
    text = "\n".join(found)
    assert "3:11: boot.reboot:" in text
    assert "6:12: regions[0].size:" in text
    assert "regions[2].offset: 0x300000000-0x33fffffff overlaps region 'data2'" in text
    assert "regions[2].filesystem.mountpoint: mountpoint '/pmem' is also used by region " \
           "'data2'" in text
    assert "regions[3].name: duplicate region name 'data2' (also regions[1])" in text
    assert len(found) == 5


def test_non_utf8_is_located() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(b"version: 1\nregions:\n  - name: caf\xe9\n", "pmemd.yaml").require()
    (problem,) = caught.value.problems
    assert problem.render().startswith("pmemd.yaml:3:14: not UTF-8: byte 0xe9")


def test_a_huge_file_is_refused_before_parsing() -> None:
    data = b"version: 1\n" + b"# padding\n" * (5 << 20)  # 50 MB
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "pmemd.yaml").require()
    assert "file is 50 MiB; pmemd reads configs of at most 1 MiB" in str(caught.value)


def test_alias_bomb_is_refused_fast() -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    message = problems("\n".join(lines) + "\n")[0]
    assert "YAML anchors (&name) are not allowed" in message


def test_control_characters_are_refused() -> None:
    message = one_problem("version: 1\x00\n")
    assert message.startswith("pmemd.yaml:1:11: character U+0000 is not allowed")


def test_utf8_bom_is_accepted() -> None:
    assert parse_config("\ufeffversion: 1\n".encode()).require().version == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_give_a_config_or_located_problems(data: bytes) -> None:
    parsed = parse_config(data, "fuzz.yaml")  # never raises
    assert (parsed.config is not None) is (not parsed.problems)
    for problem in parsed.problems:
        assert problem.location is not None and problem.location.path == "fuzz.yaml"


yaml_ish = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12),
              st.sampled_from(["4G", "12G", "xfs", "ext4", "/pmem", "keep", "auto", "1"])),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["version", "boot", "regions", "name", "size", "offset", "filesystem",
                         "type", "mountpoint", "options", "on-boot", "memory", "alignment",
                         "reboot", "kaslr", "bootloader", "min-system-ram", "junk"]),
        children, max_size=5),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(yaml_ish)
def test_any_yaml_structure_gives_a_config_or_problems(value: object) -> None:
    import yaml

    parsed = parse_config(yaml.safe_dump(value), "fuzz.yaml")  # never raises
    assert (parsed.config is not None) is (not parsed.problems)


def test_problems_say_which_region_and_the_rest_stays_usable() -> None:
    err = parse_config(textwrap.dedent("""\
            version: 1
            regions:
              - {name: a, size: 1G, offset: 4G}
              - {name: b, size: 4X}
              - {name: c, size: 1G, offset: 4G}
              - {name: d, size: 1G, offset: 4G, filesystem: {type: ext4, mountpoint: /p}}
        """), "pmemd.yaml")
    assert [(p.key, p.region) for p in err.problems] == [
        ("regions[1].size", 1), ("regions[2].offset", 2), ("regions[3].offset", 3)]
    assert err.config is None and err.usable is not None
    assert [r.name for r in err.usable.regions] == ["a"]
    assert err.usable.source.locate("regions[0].offset") is not None


def test_a_region_left_out_does_not_make_later_ones_look_bad() -> None:
    err = parse_config(textwrap.dedent("""\
            version: 1
            regions:
              - {name: a, size: 2G, offset: 4G}
              - {name: b, size: 2G, offset: 5G}
              - {name: c, size: 1G, offset: 6G}
        """), "pmemd.yaml")
    assert [p.region for p in err.problems] == [1]  # c overlaps only b, which is left out
    assert err.usable is not None and [r.name for r in err.usable.regions] == ["a", "c"]


def test_a_problem_with_the_whole_file_leaves_nothing_usable() -> None:
    parsed = parse_config("version: 2\nregions:\n  - {name: a, size: 4X}\n", "pmemd.yaml")
    assert parsed.usable is None
    assert [p.region for p in parsed.problems] == [None, 0]
