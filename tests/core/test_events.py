"""pmemd's journal events and their catalog (catalog/pmemd.catalog): one catalog entry for
every MESSAGE_ID of pmemd.core.events and none for anything else, each with the fields its
text names; and the real journalctl accepts the catalog and shows each entry's Subject."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pmemd.core.events import (
    Event,
    Field,
    MessageId,
    dax_failed,
    filesystem_kept,
    filesystem_made,
    filesystem_refused,
    namespace_configured,
    namespace_refused,
    options_written,
    pmd_fallback,
    reboot_refused,
    reboot_requested,
    trial_armed,
    trial_committed,
    trial_failed,
)
from tests.conftest import REPO

CATALOG = REPO / "catalog" / "pmemd.catalog"
HEADER = re.compile(r"^-- ([0-9a-f]{32})$", re.MULTILINE)
# One event of each kind, as the code makes them.
EXAMPLES: dict[MessageId, Event] = {e.message_id: e for e in (
    options_written("update-grub", ["memmap=1G!4G"], ["memmap=1G!2G"]),
    reboot_requested("r"),
    reboot_refused("r"),
    trial_armed("grubby", ["memmap=1G!4G"]),
    trial_committed("m", ["memmap=1G!4G"]),
    trial_failed("m", "r", ["memmap=1G!4G"]),
    filesystem_made("m", region="data", device="/dev/pmem0", fstype="xfs", uuid="u",
                    reason="r", alarming=False),
    filesystem_kept("m", region="data", device="/dev/pmem0", fstype="xfs", uuid="u",
                    reason="r"),
    filesystem_refused(region="data", device="/dev/pmem0", reason="r"),
    dax_failed(region="data", mountpoint="/pmem", device="/dev/pmem0", reason="r"),
    namespace_configured(region="data", namespace="namespace0.0", mode="fsdax", before="b",
                         after="a"),
    namespace_refused(region="data", namespace="namespace0.0", mode="fsdax", reason="r"),
    pmd_fallback(region="data", mountpoint="/pmem", device="/dev/pmem0", reason="r"),
)}


def catalog_entries() -> dict[str, str]:
    """The catalog's entries by MESSAGE_ID: each one's text up to the next header."""
    text = CATALOG.read_text()
    headers = list(HEADER.finditer(text))
    ids = [h[1] for h in headers]
    assert len(ids) == len(set(ids)), f"an id twice in {CATALOG}"
    ends = [h.start() for h in headers[1:]] + [len(text)]
    return {h[1]: text[h.end():end] for h, end in zip(headers, ends, strict=True)}


def test_every_message_id_has_exactly_one_catalog_entry_and_no_other() -> None:
    ids = [m.value for m in MessageId]
    assert len(set(ids)) == len(ids) == len(MessageId.__members__)  # no alias
    assert sorted(catalog_entries()) == sorted(ids)
    assert sorted(EXAMPLES) == sorted(MessageId)


@pytest.mark.parametrize("message_id", list(MessageId), ids=lambda m: m.name)
def test_a_catalog_entry_names_only_fields_its_event_carries(message_id: MessageId) -> None:
    entry = catalog_entries()[message_id.value]
    assert re.search(r"^Subject: \S.*$", entry, re.MULTILINE), entry
    assert "\nDefined-By: pmemd\n" in entry and "\nDocumentation: man:pmemd(8)\n" in entry
    named = set(re.findall(r"@([A-Z0-9_]+)@", entry))
    carried = {key for key, _ in EXAMPLES[message_id].entry()}
    assert named <= carried, named - carried
    assert {f.value for f in Field} >= {n for n in named if n.startswith("PMEMD_")}


def test_journalctl_accepts_the_catalog_and_shows_each_subject(tmp_path: Path) -> None:
    """Debian 12's journalctl 252, re-rooted: --update-catalog builds the database from
    the tree's /usr/lib/systemd/catalog, --list-catalog and --dump-catalog read it."""
    catalogdir = tmp_path / "usr/lib/systemd/catalog"
    catalogdir.mkdir(parents=True)
    shutil.copy(CATALOG, catalogdir)

    def journalctl(*args: str) -> str:
        done = subprocess.run(["journalctl", f"--root={tmp_path}", *args], capture_output=True,
                              text=True, check=False, timeout=60)
        assert done.returncode == 0 and "Failed" not in done.stderr, done.stderr
        return done.stdout

    journalctl("--update-catalog")
    assert (tmp_path / "var/lib/systemd/catalog/database").is_file()
    listed = journalctl("--list-catalog")
    for message_id, entry in catalog_entries().items():
        subject = re.search(r"^Subject: (.*)$", entry, re.MULTILINE)
        assert subject is not None
        assert f"{message_id} pmemd: {subject[1]}\n" in listed
        dumped = journalctl("--dump-catalog", message_id)
        assert dumped.startswith(f"-- {message_id}\nSubject: {subject[1]}\n"), dumped
