"""Guest step scripts shared by the end-to-end tests and the capture tool (shell text)."""

from __future__ import annotations

import re

# What a kernel option may contain here: GRUB would need "$" escaped, and a backslash is
# the trap kernel-facts.md describes, so neither is accepted.
_OPTION = re.compile(r"[A-Za-z0-9_.,:=!@#+-]+")
_ENTRY_ID = re.compile(r"[a-z][a-z0-9-]*")


def add_kernel_options(*options: str) -> str:
    """Append ``options`` to GRUB_CMDLINE_LINUX_DEFAULT in the guest's /etc/default/grub
    and run update-grub, as an admin following the manual procedure would; the step
    prints the grub.cfg lines that carry the first option."""
    for option in options:
        if not _OPTION.fullmatch(option):
            raise ValueError(f"refusing kernel option {option!r}")
    joined = " ".join(options)
    return (
        "sed -i 's/^GRUB_CMDLINE_LINUX_DEFAULT=\"\\(.*\\)\"$/"
        f"GRUB_CMDLINE_LINUX_DEFAULT=\"\\1 {joined}\"/' /etc/default/grub\n"
        "update-grub 2>&1\n"
        f"grep -F -e '{options[0]}' /boot/grub/grub.cfg\n"
    )


# Every /dev/pmemN gets a file system mounted with -o dax at /pmemN: XFS where xfsprogs
# accepts the size (300 MB and more), else ext4 with 4 KiB blocks (DAX needs them).
MOUNT_EVERY_PMEM_WITH_DAX = """
for device in /dev/pmem*; do
    [ -b "$device" ] || continue
    mountpoint=/$(basename "$device")
    if [ "$(blockdev --getsize64 "$device")" -ge 314572800 ]; then
        mkfs.xfs -f -q "$device"
    else
        mkfs.ext4 -F -q -b 4096 "$device"
    fi
    mkdir -p "$mountpoint"
    mount -o dax "$device" "$mountpoint"
done
grep -E ' /pmem[0-9]+ ' /proc/self/mountinfo
"""


def boot_once_without_options(entry: str = "plain") -> str:
    """An entry of the admin's own in /etc/grub.d/40_custom that boots the newest kernel with
    the image's base command line (none of pmemd's options), made the next boot's entry once
    with grub-reboot, as an admin picking another entry at the GRUB menu would. The default
    entry stays as it is; the boot after that one uses it again."""
    if not _ENTRY_ID.fullmatch(entry):
        raise ValueError(f"bad entry id {entry!r}")
    return f"""
kernel=$(ls /boot/vmlinuz-* | sort -V | tail -n 1)
release=${{kernel#/boot/vmlinuz-}}
uuid=$(findmnt -n -o UUID /)
cat >>/etc/grub.d/40_custom <<END
menuentry '{entry}' --id {entry} {{
	insmod part_msdos
	insmod ext2
	search --no-floppy --fs-uuid --set=root $uuid
	linux /boot/vmlinuz-$release root=UUID=$uuid ro console=ttyS0,115200
	initrd /boot/initrd.img-$release
}}
END
update-grub 2>/dev/null
grub-reboot {entry}
grub-editenv list
"""
