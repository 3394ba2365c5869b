"""The kernel keeps at most COMMAND_LINE_SIZE - 1 bytes of its command line (2048 on x86,
arch/x86/include/asm/setup.h) and cuts the rest: a plan whose next boot's command line
(the options there now, pmemd's own added) would not fit is refused before anything is
written, counting a built-in CONFIG_CMDLINE too."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pmemd.core.cmdline import parse_cmdline
from pmemd.core.facts import MachineFacts
from pmemd.core.kernel import command_line_limit
from pmemd.core.memmap import render_memmap_arg
from pmemd.core.plan import PlanState, plan
from pmemd.core.ranges import MemRange
from tests.conftest import MACHINES, run_pmemd
from tests.core.test_plan import facts, regions

M = 1 << 20
SERVER = "server-16g"
RUNNING = (MACHINES / SERVER / "proc/cmdline").read_text().strip()  # 94 bytes


def small_regions(count: int) -> list[str]:
    """``count`` pinned 2 MiB regions from 4 GiB up: ``memmap=2M!4098M`` … (15-16 bytes)."""
    return [f"r{i} 2M {4096 + 2 * i}M" for i in range(count)]


def planned_length(count: int, cmdline: str) -> int:
    args = [cmdline, *(render_memmap_arg(MemRange.sized((4096 + 2 * i) * M, 2 * M))
                       for i in range(count))]
    return len(" ".join(args))


def with_cmdline(found: MachineFacts, text: str) -> MachineFacts:
    return dataclasses.replace(found, cmdline=parse_cmdline(text))


ALIGN_2M = "memory: {alignment: 2M}"


def test_150_small_regions_do_not_fit_on_an_x86_command_line() -> None:
    result = plan(regions(*small_regions(150), extra=ALIGN_2M), facts(SERVER))
    assert result.state is PlanState.INVALID_CONFIG
    (problem,) = [p for p in result.problems if p.key == "regions"]
    length = planned_length(150, RUNNING)
    assert f"would be {length} bytes long" in problem.message
    assert "x86_64 kernels keep 2047 bytes (COMMAND_LINE_SIZE 2048" in problem.message
    assert "150 memmap= options" in problem.message


@pytest.mark.parametrize(("padding", "fits"), [(0, True), (1, False)])
def test_the_limit_is_exact(padding: int, fits: bool) -> None:
    """2047 bytes fit (the NUL makes 2048); 2048 do not."""
    count = 100
    base = planned_length(count, "ro")
    cmdline = "ro x=" + "y" * (2047 - base - len(" x=") + padding)
    found = with_cmdline(facts(SERVER), cmdline)
    assert planned_length(count, cmdline) == 2047 + padding
    result = plan(regions(*small_regions(count), extra=ALIGN_2M), found)
    assert any("bytes long" in p.message for p in result.problems) is not fits


def test_the_options_already_there_count() -> None:
    config = regions(*small_regions(60), extra=ALIGN_2M)
    assert plan(config, facts(SERVER)).state is PlanState.CHANGES_PENDING
    long_line = RUNNING + " " + " ".join(f"opt{i}=" + "v" * 20 for i in range(50))
    assert plan(config, with_cmdline(facts(SERVER), long_line)).state is \
        PlanState.INVALID_CONFIG


def test_the_next_boots_options_and_the_running_ones_both_count() -> None:
    config = regions(*small_regions(60), extra=ALIGN_2M)
    extra = " ".join(f"opt{i}=" + "v" * 20 for i in range(50))
    result = plan(config, facts(SERVER), next_boot=parse_cmdline(f"root=/dev/sda1 {extra}"))
    assert result.state is PlanState.INVALID_CONFIG  # BOOT_IMAGE= of the running line too


@pytest.mark.parametrize(("options", "arch", "size"), [
    ({"CONFIG_X86_64": "y"}, "x86_64", 2048),
    ({"CONFIG_X86_32": "y", "CONFIG_X86": "y"}, "i386", 2048),
    ({"CONFIG_ARM64": "y"}, "arm64", 2048),
    ({"CONFIG_PPC64": "y"}, "powerpc", 2048),
    ({"CONFIG_S390": "y", "CONFIG_COMMAND_LINE_SIZE": "4096"}, "s390", 4096),
    (None, "x86_64", 2048),  # unknown: memmap=nn!ss pmem is x86's
])
def test_the_limit_of_the_kernel_that_boots_next(options: dict[str, str] | None, arch: str,
                                                 size: int) -> None:
    limit = command_line_limit(options)
    assert (limit.arch, limit.size) == (arch, size)


def test_a_built_in_command_line_counts() -> None:
    found = facts(SERVER)
    config = dict(found.kernel.next_config or {})
    config.update({"CONFIG_CMDLINE_BOOL": "y", "CONFIG_CMDLINE": "x=" + "y" * 1500})
    kernel = dataclasses.replace(found.kernel, next_config=config)
    result = plan(regions(*small_regions(40), extra=ALIGN_2M),
                  dataclasses.replace(found, kernel=kernel))
    assert result.state is PlanState.INVALID_CONFIG
    assert "CONFIG_CMDLINE" in "".join(p.message for p in result.problems)


def test_pmemd_validate_refuses_it(tmp_path: Path) -> None:
    lines = ["version: 1", "memory: {alignment: 2M}", "regions:"]
    lines += [f"  - {{name: r{i}, size: 2M, offset: {4096 + 2 * i}M}}" for i in range(150)]
    cfg = tmp_path / "pmemd.yaml"
    cfg.write_text("\n".join(lines) + "\n")
    done = run_pmemd("validate", "--root", str(MACHINES / SERVER), "--config", str(cfg))
    assert done.returncode == 3
    assert f"{cfg}:4:3: regions: the next boot's kernel command line would be " in done.stderr
