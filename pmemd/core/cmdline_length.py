"""(pure) Will the next boot's kernel command line fit? The kernel keeps
``COMMAND_LINE_SIZE - 1`` bytes and silently cuts the rest (x86: 2048 with the NUL), so a
plan that adds enough ``memmap=`` options loses whatever comes last — another option, or
half of one. Regions are separate pmem devices and are never merged into fewer options, so
such a plan is refused."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from pmemd.core.cmdline import Cmdline, key_value
from pmemd.core.facts import MachineFacts
from pmemd.core.kernel import command_line_limit
from pmemd.core.memmap import MEMMAP_KEY
from pmemd.core.model import Config
from pmemd.errors import Problem


def planned_args(running: Cmdline, target: Cmdline, add: Sequence[str],
                 remove: Collection[str]) -> list[str]:
    """The next boot's arguments as the kernel will get them: those of the bootloader's
    entry and those the running kernel got (the bootloader adds some itself, such as
    ``BOOT_IMAGE=``), each once; without what pmemd removes, with what it adds."""
    seen = dict.fromkeys(a.text for a in (*running.args, *target.args))
    return [a for a in seen if a not in remove] + [a for a in add if a not in seen]


def cmdline_length_problems(config: Config, facts: MachineFacts, target: Cmdline,
                            add: Sequence[str], remove: Collection[str]) -> list[Problem]:
    """A problem when the next boot's command line would be longer than its kernel
    keeps."""
    limit = command_line_limit(facts.kernel.next_config)
    args = planned_args(facts.cmdline, target, add, remove)
    text = " ".join(([limit.builtin] if limit.builtin else []) + args)
    length = len(text.encode("utf-8", "surrogateescape"))
    if length <= limit.longest:
        return []
    ours = [a for a in args if key_value(a)[0] == MEMMAP_KEY]
    options = sum(len(a) + 1 for a in ours)
    builtin = (f", {len(limit.builtin)} of them built into the kernel (CONFIG_CMDLINE)"
               if limit.builtin else "")
    return [config.source.problem("regions", (
        f"the next boot's kernel command line would be {length} bytes long{builtin}, but "
        f"{limit.arch} kernels keep {limit.longest} bytes (COMMAND_LINE_SIZE {limit.size}, "
        f"with the final NUL) and cut off the rest; its {len(ours)} memmap= options take "
        f"{options} bytes. Each region is its own memmap= option (its own pmem device): "
        "use fewer, larger regions, or remove other options from the boot configuration"))]
