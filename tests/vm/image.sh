#!/bin/bash
# Build the end-to-end tests' Debian 12 disk image, or install .debs into one (as root).
#
#   image.sh build OUT.raw             a bootable disk: MBR, one ext4 partition, GRUB (BIOS,
#                                      serial console), the packages in tests/vm/packages and
#                                      the step runner from tests/vm/guest/
#   image.sh build-uefi OUT.raw        a UEFI disk: GPT, an ESP (FAT, written with mtools:
#                                      no vfat on the host) with systemd-boot and kernel-
#                                      install's type #1 entry, an ext4 root; packages from
#                                      tests/vm/packages-uefi
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
        for sub in efi sys proc dev/pts dev; do
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
    [ -b "${loop}p1" ] || partx --add "$loop"
    [ -b "${loop}p1" ] || { log "no partition device ${loop}p1 after partx"; exit 1; }
    part=${loop}p1
    esp=
    if [ -b "${loop}p2" ]; then   # the UEFI layout: the ESP first, then the root
        esp=${loop}p1
        part=${loop}p2
    fi
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

# what every guest has besides its bootloader: hostname, root without password, the step
# runner and its udev rule, no timers that want the network
configure_guest() {
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
    # SSH only for the tests that drive the guest over it (tests/vm/test_fleet.py starts it,
    # with the network): every other guest boots as before.
    in_root systemctl disable ssh.service
    # Cockpit likewise (tests/vm/test_e2e.py starts it for the pmemd page, with the network).
    if [ -e "$mnt/lib/systemd/system/cockpit.socket" ]; then
        in_root systemctl disable cockpit.socket
    fi
}

# mmdebstrap bookworm into $mnt with the packages of the list file $1
bootstrap() {
    local packages
    packages=$(sed -e 's/#.*//' "$1" | tr -s ' \n' ',' | sed -e 's/^,//' -e 's/,$//')
    rmdir "$mnt/lost+found"   # mmdebstrap wants an empty directory
    log "mmdebstrap bookworm (minbase + $packages)"
    # No mirror argument: deb.debian.org with bookworm-updates and -security.
    mmdebstrap --variant=minbase --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "$mnt"
    mkdir -p "$mnt/lost+found"
}

build() {
    local out=$1 uuid
    uuid=$(cat /proc/sys/kernel/random/uuid)

    rm -f "$out"
    truncate -s "$SIZE" "$out"
    printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk --quiet "$out"
    attach "$out"
    mkfs.ext4 -q -L "$LABEL" -U "$uuid" "$part"
    mount_root
    bootstrap "$here/packages"

    log "configure the guest"
    cat >"$mnt/etc/fstab" <<EOF
UUID=$uuid / ext4 errors=remount-ro 0 1
host0 /mnt/host 9p trans=virtio,version=9p2000.L,msize=262144,nofail 0 0
EOF
    configure_guest

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

ESP_SIZE_MIB=256
ESP_SERIAL=5EFA1DEB   # the ESP's FAT volume id: UUID=5EFA-1DEB in the guest's fstab
build_uefi() {
    local out=$1 uuid version esp_image
    uuid=$(cat /proc/sys/kernel/random/uuid)
    rm -f "$out"
    truncate -s "$SIZE" "$out"
    printf 'label: gpt\nstart=2048, size=%sMiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\n' \
        "$ESP_SIZE_MIB" | sfdisk --quiet "$out"
    attach "$out"
    [ -n "$esp" ] || { log "no second partition on $loop"; exit 1; }
    mkfs.ext4 -q -L "$LABEL" -U "$uuid" "$part"
    mount_root
    bootstrap "$here/packages-uefi"

    log "configure the guest"
    printf '%s\n' "UUID=$uuid / ext4 errors=remount-ro 0 1" \
        "UUID=${ESP_SERIAL:0:4}-${ESP_SERIAL:4:4} /efi vfat umask=0077 0 2" \
        "host0 /mnt/host 9p trans=virtio,version=9p2000.L,msize=262144,nofail 0 0" \
        >"$mnt/etc/fstab"
    configure_guest

    log "systemd-boot and kernel-install's entry, into a directory that becomes the ESP"
    bind_system
    mkdir -p "$mnt/efi" "$mnt/etc/kernel"
    # bootctl wants the ESP to be a file system's root: a tmpfs there while it is built
    mount -t tmpfs -o mode=0700 pmemd-esp "$mnt/efi"
    echo "root=UUID=$uuid ro console=ttyS0,115200" >"$mnt/etc/kernel/cmdline"
    echo "layout=bls" >"$mnt/etc/kernel/install.conf"
    # /efi is no FAT file system here (the host has no vfat): relax bootctl's ESP checks;
    # no EFI variables in a chroot: the firmware finds EFI/BOOT/BOOTX64.EFI by itself.
    in_root env SYSTEMD_RELAX_ESP_CHECKS=1 bootctl install --esp-path=/efi --no-variables \
        --make-entry-directory=yes
    version=$(ls "$mnt/lib/modules" | sort -V | tail -n 1)
    in_root env SYSTEMD_RELAX_ESP_CHECKS=1 BOOT_ROOT=/efi KERNEL_INSTALL_BOOT_ROOT=/efi \
        kernel-install add "$version" "/boot/vmlinuz-$version" "/boot/initrd.img-$version"
    printf 'timeout 0\nconsole-mode keep\n' >"$mnt/efi/loader/loader.conf"
    ls "$mnt"/efi/loader/entries/*.conf >/dev/null \
        || { log "kernel-install wrote no entry into /efi/loader/entries"; exit 1; }
    grep -q "root=UUID=$uuid" "$mnt"/efi/loader/entries/*.conf \
        || { log "the entry does not boot root=UUID=$uuid"; exit 1; }

    log "the ESP: a FAT image made with mtools, written into partition 1"
    esp_image=$(mktemp /tmp/pmemd-vm-esp.XXXXXX)
    truncate -s "${ESP_SIZE_MIB}M" "$esp_image"
    mformat -i "$esp_image" -F -N "$ESP_SERIAL" -v ESP ::
    mcopy -s -i "$esp_image" "$mnt"/efi/* ::
    dd if="$esp_image" of="$esp" bs=1M conv=fsync status=none
    rm -f "$esp_image"
    umount "$mnt/efi"   # an empty directory: the mount point of the ESP from now on
    log "built $out (root UUID $uuid, ESP UUID ${ESP_SERIAL:0:4}-${ESP_SERIAL:4:4})"
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
build-uefi) [ $# -eq 2 ] || usage; build_uefi "$2" ;;
install-debs) [ $# -ge 3 ] || usage; shift; install_debs "$@" ;;
*) usage ;;
esac
