#!/bin/bash
# Build the end-to-end tests' Debian 12 disk image, or install .debs into one (as root).
#
#   image.sh build OUT.raw             a bootable disk: MBR, one ext4 partition, GRUB (BIOS,
#                                      serial console), the packages in tests/vm/packages and
#                                      the step runner from tests/vm/guest/
#   image.sh install-debs IMAGE DEB... dpkg -i the .debs into IMAGE's root file system
#
# tests/vm/image.py calls this and caches the result; run that instead unless you are
# debugging this script. Every mount and loop device is released on exit (trap).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SIZE=4G
LABEL=pmemd-test

usage() { sed -n '2,10p' "$0" >&2; exit 2; }
log() { printf 'image.sh: %s\n' "$*" >&2; }

loop=
mnt=
bylink=
cleanup() {
    local status=$?
    set +e
    if [ -n "$bylink" ]; then
        rm -f "$bylink"
        rmdir --ignore-fail-on-non-empty /dev/disk/by-uuid /dev/disk 2>/dev/null
    fi
    if [ -n "$mnt" ]; then
        for sub in sys proc dev/pts dev; do
            mountpoint -q "$mnt/$sub" && umount "$mnt/$sub"
        done
        mountpoint -q "$mnt" && umount "$mnt"
        rmdir "$mnt"
    fi
    [ -n "$loop" ] && losetup -d "$loop"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# attach IMAGE: sets $loop and $part (the host kernel does not scan MBR partition tables,
# so losetup --partscan may create no p1: partx adds it)
attach() {
    loop=$(losetup --find --show --partscan "$1")
    part=${loop}p1
    [ -b "$part" ] || partx --add "$loop"
    [ -b "$part" ] || { log "no partition device $part after partx"; exit 1; }
}

mount_root() {
    mnt=$(mktemp -d /tmp/pmemd-vm-root.XXXXXX)
    mount "$part" "$mnt"
}

bind_system() {
    mount --bind /dev "$mnt/dev"
    mount --bind /dev/pts "$mnt/dev/pts"
    mount -t proc proc "$mnt/proc"
    mount -t sysfs sysfs "$mnt/sys"
}

in_root() { chroot "$mnt" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }

# set KEY=VALUE in the guest's /etc/default/grub, replacing the stock line
grub_default() {
    local file=$mnt/etc/default/grub
    if grep -q "^#\?$1=" "$file"; then
        sed -i "s|^#\?$1=.*|$1=$2|" "$file"
    else
        printf '%s=%s\n' "$1" "$2" >>"$file"
    fi
}

build() {
    local out=$1 packages uuid
    packages=$(sed -e 's/#.*//' "$here/packages" | tr -s ' \n' ',' | sed -e 's/^,//' -e 's/,$//')
    uuid=$(cat /proc/sys/kernel/random/uuid)

    rm -f "$out"
    truncate -s "$SIZE" "$out"
    printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk --quiet "$out"
    attach "$out"
    mkfs.ext4 -q -L "$LABEL" -U "$uuid" "$part"
    mount_root
    rmdir "$mnt/lost+found"   # mmdebstrap wants an empty directory

    log "mmdebstrap bookworm (minbase + $packages)"
    # No mirror argument: deb.debian.org with bookworm-updates and -security.
    mmdebstrap --variant=minbase --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "$mnt"
    mkdir -p "$mnt/lost+found"

    log "configure the guest"
    cat >"$mnt/etc/fstab" <<EOF
UUID=$uuid / ext4 errors=remount-ro 0 1
host0 /mnt/host 9p trans=virtio,version=9p2000.L,msize=262144,nofail 0 0
EOF
    mkdir -p "$mnt/mnt/host"
    echo pmemd-test >"$mnt/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 pmemd-test\n' >"$mnt/etc/hosts"
    in_root passwd --delete root >/dev/null
    in_root systemd-machine-id-setup >/dev/null
    install -D -m 0755 "$here/guest/pmemd-test-runner" "$mnt/usr/local/sbin/pmemd-test-runner"
    install -D -m 0644 "$here/guest/pmemd-test-runner.service" \
        "$mnt/etc/systemd/system/pmemd-test-runner.service"
    install -D -m 0644 "$here/guest/60-pmemd-test.rules" "$mnt/etc/udev/rules.d/60-pmemd-test.rules"
    in_root systemctl enable pmemd-test-runner.service
    # No network: nothing to fetch, and nothing that wakes up to try. ndctl-monitor watches
    # NVDIMM DIMMs, which a memmap= guest has none of; it would fail every boot.
    in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
        fstrim.timer ndctl-monitor.service

    grub_default GRUB_TIMEOUT 0
    grub_default GRUB_CMDLINE_LINUX_DEFAULT '""'
    grub_default GRUB_CMDLINE_LINUX '"console=ttyS0,115200"'
    grub_default GRUB_TERMINAL serial
    grub_default GRUB_SERIAL_COMMAND '"serial --unit=0 --speed=115200"'

    log "install GRUB for BIOS from the guest's own grub-pc"
    bind_system
    in_root grub-install --target=i386-pc "$loop"
    # No udev on the host: without this link update-grub writes root=/dev/loopNp1.
    bylink=/dev/disk/by-uuid/$uuid
    mkdir -p /dev/disk/by-uuid
    ln -sfn "$part" "$bylink"
    in_root update-grub
    rm -f "$bylink"
    rmdir --ignore-fail-on-non-empty /dev/disk/by-uuid /dev/disk 2>/dev/null || true
    bylink=
    grep -q "root=UUID=$uuid" "$mnt/boot/grub/grub.cfg" \
        || { log "grub.cfg does not boot root=UUID=$uuid"; exit 1; }
    log "built $out (root UUID $uuid)"
}

install_debs() {
    local image=$1 deb; shift
    attach "$image"
    mount_root
    bind_system
    mkdir -p "$mnt/tmp/debs"
    for deb in "$@"; do cp "$deb" "$mnt/tmp/debs/"; done
    # Nothing starts in a chroot.
    printf '#!/bin/sh\nexit 101\n' >"$mnt/usr/sbin/policy-rc.d"
    chmod 0755 "$mnt/usr/sbin/policy-rc.d"
    in_root sh -c 'dpkg -i /tmp/debs/*.deb'
    rm -rf "$mnt/usr/sbin/policy-rc.d" "$mnt/tmp/debs"
    log "installed into $image: $*"
}

[ "$(id -u)" -eq 0 ] || { log "needs root (loop devices, mounts, chroot)"; exit 1; }
case "${1:-}" in
build) [ $# -eq 2 ] || usage; build "$2" ;;
install-debs) [ $# -ge 3 ] || usage; shift; install_debs "$@" ;;
*) usage ;;
esac
