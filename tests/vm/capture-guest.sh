#!/bin/bash
# Copy what pmemd reads from this machine into a machine tree OUT (run as root in the test
# guest by tests/vm/capture.py). Symlinks in /sys are recreated with their real, relative
# targets and the attribute files they lead to are copied, so the tree resolves like sysfs.
set -euo pipefail
out=$1
rm -rf "$out"
mkdir -p "$out"

# copy FILE: its content to the same path under $out (the file must be readable)
copy() {
    mkdir -p "$out$(dirname "$1")"
    cat "$1" >"$out$1"
}

# copy_readable FILE: like copy, for sysfs attributes that may be absent or refuse a read
copy_readable() {
    local content
    [ -f "$1" ] || return 0
    content=$(cat "$1" 2>/dev/null) || return 0
    mkdir -p "$out$(dirname "$1")"
    printf '%s\n' "$content" >"$out$1"
}

# link PATH: the symlink PATH with the same (relative) target under $out
link() {
    mkdir -p "$out$(dirname "$1")"
    ln -sfn "$(readlink "$1")" "$out$1"
}

for entry in /sys/firmware/memmap/*; do
    for attribute in start end type; do copy "$entry/$attribute"; done
done
copy /proc/iomem
copy /proc/cmdline
copy /proc/meminfo
copy /proc/sys/kernel/osrelease
copy /proc/self/mountinfo

nd_attributes="devtype nstype mode resource size align numa_node target_node holder
    force_raw sector_size uuid available_size init_namespaces mappings namespace
    provider persistence_domain read_only"
for device in /sys/bus/nd/devices/*; do
    [ -e "$device" ] || continue
    link "$device"
    real=$(readlink -f "$device")
    for attribute in $nd_attributes; do copy_readable "$real/$attribute"; done
    if [ -L "$real/driver" ]; then   # bound: the link, and the driver's link back to it
        link "$real/driver"
        link "$(readlink -f "$real/driver")/$(basename "$real")"
    fi
done
for block in /sys/block/pmem*; do
    [ -e "$block" ] || continue
    link "$block"
    real=$(readlink -f "$block")
    copy "$real/size"
    copy "$real/dev"
    copy "$real/queue/dax"
    link "$real/device"
done

release=$(uname -r)
copy "/boot/config-$release"
# Only the name matters to pmemd (which kernels are installed): an empty placeholder.
mkdir -p "$out/boot"
: >"$out/boot/vmlinuz-$release"
copy /etc/default/grub
copy /boot/grub/grub.cfg
