"""The lenient reading of a config (``ParsedConfig.usable``): what the generator and the
units' commands still use from an invalid config, as systemd's generators use the good
lines of a bad fstab."""

from __future__ import annotations

import textwrap

import pytest

from pmemd.core.config import parse_config
from pmemd.errors import ConfigError, NoSuchRegion

GOOD = textwrap.dedent("""\
    version: 1
    regions:
      - name: yes
        size: 0x40000000
        offset: 12G
        filesystem: {type: xfs, mountpoint: "/pmem", options: [noatime], on-boot: keep}
      - name: auto
        size: 1G
        filesystem: {type: ext4, mountpoint: /auto}
    """)


def test_a_valid_config_is_used_whole() -> None:
    salvaged = parse_config(GOOD.encode(), "pmemd.yaml")
    assert salvaged.valid and salvaged.dropped == () and salvaged.dropped_auto == ()
    assert salvaged.usable == salvaged.config == parse_config(GOOD, "pmemd.yaml").require()


BAD_SECOND = GOOD.replace("  - name: auto\n", "  - name: bad\n    size: 3M\n    offset: 1G\n"
                                             "  - name: auto\n")


def test_a_region_with_a_problem_is_left_out_and_the_others_keep_their_values() -> None:
    salvaged = parse_config(BAD_SECOND.encode(), "pmemd.yaml")
    assert not salvaged.valid
    assert [p.key for p in salvaged.problems] == ["regions[1].size"]
    assert salvaged.dropped == (1,)
    assert salvaged.config is None and salvaged.usable is not None
    with pytest.raises(ConfigError, match=r"regions\[1\]\.size"):
        salvaged.require()
    [kept] = salvaged.usable.regions
    strict = parse_config(GOOD, "pmemd.yaml").require().regions[0]
    # 'yes' stays a name (not YAML 1.1's true), 0x40000000 stays 1 GiB, the index is the
    # region's place in the file as written
    assert kept == strict
    assert kept.name == "yes" and kept.index == 0


def test_auto_placed_regions_are_left_out_of_an_invalid_config() -> None:
    salvaged = parse_config(BAD_SECOND.encode(), "pmemd.yaml")
    assert salvaged.dropped_auto == ("auto",)
    assert salvaged.usable is not None and salvaged.usable.region("auto") is None
    with pytest.raises(ConfigError, match=r"regions\[1\].size"):
        salvaged.region("auto")


@pytest.mark.parametrize("text", [
    GOOD.replace("version: 1", "version: 3"),
    GOOD.replace("regions:", "regions: {}\nfoo:"),
    GOOD + "memory:\n  alignment: 3M\n",
    "version: 1\nregions:\n  - name: [\n",
    "\xff\xfe",
])
def test_a_problem_outside_the_regions_leaves_nothing(text: str) -> None:
    salvaged = parse_config(text.encode("latin-1") if text == "\xff\xfe" else text.encode(),
                            "pmemd.yaml")
    assert salvaged.usable is None and salvaged.config is None and salvaged.problems
    with pytest.raises(ConfigError):
        salvaged.region("yes")


def test_an_unknown_region_is_named_with_the_regions_there_are() -> None:
    salvaged = parse_config(GOOD.encode(), "pmemd.yaml")
    with pytest.raises(NoSuchRegion,
                       match=r"no region .nope. in pmemd.yaml \(regions: yes, auto\)"):
        salvaged.region("nope")
