#!/bin/bash
# Builds Kiln's demo OS: a small whole-disk image (MBR, syslinux for BIOS and UEFI on a FAT
# partition, Debian's kernel, a busybox initramfs) that prints a marker with the hostname from
# its config drive.
#
#   build.sh --out FILE [--cache DIR] [--kernel-package linux-image-amd64] [--if-missing]
#
# Writes FILE (raw disk image), FILE.sha256 and FILE.json (size, sha256, kernel), the .json last:
# it marks a complete image. With --if-missing, an existing FILE + FILE.json is kept as it is.
# Builds sharing a download cache take turns on $CACHE/fetch.lock (flock), so parallel test runs
# (and a ramdisk build that takes the same lock) never unpack the same package at once.
# Downloads (apt-get download, never installed) are shared with the ramdisk build: same cache
# folder, same shell functions. Nothing is mounted, so no root or loop devices are needed.
# Same inputs give the same bytes: every timestamp is SOURCE_DATE_EPOCH (default: the kernel
# package's), the FAT volume id and MBR disk id are fixed, the cpio is sorted.
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[demo-image] %s\n' "$*" >&2; }
die() {
  printf '[demo-image] error: %s\n' "$*" >&2
  exit 1
}
need_tool() { command -v "$1" >/dev/null 2>&1 || die "building the demo image needs '$1'; install it with: apt-get install -y $2"; }
# shellcheck source=../../ramdisk-build/lib/fetch.sh
. "$HERE/../../ramdisk-build/lib/fetch.sh"

OUT=''
CACHE=${KILN_RAMDISK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/ramdisk}
KERNEL_PACKAGE=linux-image-amd64
IF_MISSING=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    --kernel-package) KERNEL_PACKAGE=$2; shift 2 ;;
    --if-missing) IF_MISSING=1; shift ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[ -n "$OUT" ] || die "--out FILE is required"
for t in apt-get:apt dpkg-deb:dpkg depmod:kmod modprobe:kmod cpio:cpio gzip:gzip sfdisk:fdisk \
  mkfs.vfat:dosfstools mcopy:mtools mmd:mtools syslinux:syslinux sha256sum:coreutils flock:util-linux; do
  need_tool "${t%%:*}" "${t#*:}"
done
MBR_BIN=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$MBR_BIN" ] || die "$MBR_BIN is missing; install it with: apt-get install -y syslinux-common"
EFI_LOADER=/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi
EFI_LDLINUX=/usr/lib/syslinux/modules/efi64/ldlinux.e64
[ -f "$EFI_LOADER" ] || die "$EFI_LOADER is missing; install it with: apt-get install -y syslinux-efi"
[ -f "$EFI_LDLINUX" ] || die "$EFI_LDLINUX is missing; install it with: apt-get install -y syslinux-common"

mkdir -p "$CACHE/tmp" "$(dirname "$OUT")"
CACHE=$(cd "$CACHE" && pwd)
exec 9>"$CACHE/fetch.lock"
flock 9
if [ "$IF_MISSING" = 1 ] && [ -f "$OUT" ] && [ -f "$OUT.json" ]; then
  log "$OUT is already built"
  exit 0
fi
WORK=$(mktemp -d "$CACHE/tmp/demo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

KPKG=$(kernel_image_package "$KERNEL_PACKAGE")
fetch_debs "$KPKG" busybox-static
KROOT=$(unpacked "$KPKG")
BBROOT=$(unpacked busybox-static)
KIMAGE=$(find "$KROOT/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | head -n1)
[ -n "$KIMAGE" ] || die "no /boot/vmlinuz-* in $KPKG"
KVER=${KIMAGE##*/vmlinuz-}
EPOCH=${SOURCE_DATE_EPOCH:-$(stat -c %Y "$KIMAGE")}
export SOURCE_DATE_EPOCH=$EPOCH
MODULES="virtio_pci virtio_blk ahci ata_piix sd_mod sr_mod isofs vfat nls_cp437 nls_ascii nls_utf8 button evdev"

# --- 1. initramfs: busybox, /init, the block/filesystem modules -----------------------------------
ST="$WORK/initramfs"
mkdir -p "$ST"/{bin,dev,proc,sys,tmp,run,mnt,etc,"lib/modules/$KVER"}
cp "$BBROOT/bin/busybox" "$ST/bin/busybox"
ln -s busybox "$ST/bin/sh"
cp "$HERE/init" "$ST/init"
chmod 755 "$ST/init"
printf 'root:x:0:0:root:/:/bin/sh\n' >"$ST/etc/passwd"
printf 'root:x:0:\n' >"$ST/etc/group"
# The .deb ships no modules.dep (its postinst makes it), so resolve dependencies from a depmod of
# the unpacked tree; depmod writes into the cache copy only.
[ -f "$KROOT/lib/modules/$KVER/modules.dep" ] || depmod -b "$KROOT" "$KVER"
for m in $MODULES; do
  modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | sort -u | while read -r f; do
  rel=${f#"$KROOT"/}
  mkdir -p "$ST/$(dirname "$rel")"
  cp "$f" "$ST/$rel"
done
cp "$KROOT/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$ST/lib/modules/$KVER/"
depmod -b "$ST" "$KVER"
find "$ST" -exec touch -h -d "@$EPOCH" {} +
(cd "$ST" && find . -print0 | sort -z | cpio --null -o -H newc --owner 0:0 --reproducible --quiet) |
  gzip -9 -n >"$WORK/initrd.img"

# --- 2. the boot partition: FAT16 with syslinux (BIOS) and syslinux.efi (UEFI), kernel, initramfs --
cat >"$WORK/syslinux.cfg" <<'EOF'
SERIAL 0 115200
DEFAULT kiln-demo
PROMPT 0
TIMEOUT 0
LABEL kiln-demo
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND console=tty0 console=ttyS0,115200n8 panic=-1 quiet
EOF
cp "$KIMAGE" "$WORK/vmlinuz"
# UEFI firmware finds \EFI\BOOT\BOOTX64.EFI on any FAT partition (the removable-media path).
cp "$EFI_LOADER" "$WORK/BOOTX64.EFI"
cp "$EFI_LDLINUX" "$WORK/ldlinux.e64"
touch -d "@$EPOCH" "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/syslinux.cfg" "$WORK/BOOTX64.EFI" "$WORK/ldlinux.e64"
kib=$(($(stat -c %s "$WORK/vmlinuz") / 1024 + $(stat -c %s "$WORK/initrd.img") / 1024 + 2560))
PART_MIB=$(((kib + 1023) / 1024))
PART="$WORK/boot.fat"
mkfs.vfat -C --invariant -F 16 -n KILNDEMO -i 4b494c4e "$PART" $((PART_MIB * 1024)) >/dev/null
# mtools stamps new directory entries with the clock unless told otherwise; -m keeps the files'
# mtime, and syslinux's own files get theirs from SOURCE_DATE_EPOCH through a fixed-time mtools.
export MTOOLS_SKIP_CHECK=1
mmd -i "$PART" ::/syslinux
mcopy -m -i "$PART" "$WORK/vmlinuz" "$WORK/initrd.img" ::/
mcopy -m -i "$PART" "$WORK/syslinux.cfg" ::/syslinux/
mmd -i "$PART" ::/EFI ::/EFI/BOOT
mcopy -m -i "$PART" "$WORK/BOOTX64.EFI" "$WORK/ldlinux.e64" "$WORK/syslinux.cfg" ::/EFI/BOOT/
syslinux --directory /syslinux --install "$PART"

# --- 3. the disk: MBR boot code, one active partition at 1 MiB ------------------------------------
DISK="$WORK/disk.raw"
truncate -s $(((PART_MIB + 1) * 1024 * 1024)) "$DISK"
printf 'label: dos\nlabel-id: 0x4b494c4e\nunit: sectors\n\nstart=2048, size=%d, type=6, bootable\n' \
  $((PART_MIB * 2048)) | sfdisk --quiet "$DISK"
dd if="$MBR_BIN" of="$DISK" bs=440 count=1 conv=notrunc status=none
dd if="$PART" of="$DISK" bs=1M seek=1 conv=notrunc status=none

SHA=$(sha256sum "$DISK" | cut -d' ' -f1)
SIZE=$(stat -c %s "$DISK")
rm -f "$OUT.json"
cp "$DISK" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
printf '%s  %s\n' "$SHA" "$(basename "$OUT")" >"$OUT.sha256"
printf '{"file":"%s","size":%d,"sha256":"%s","kernel":"%s","kernelPackage":"%s","epoch":%d,"initrdBytes":%d}\n' \
  "$(basename "$OUT")" "$SIZE" "$SHA" "$KVER" "$KPKG" "$EPOCH" "$(stat -c %s "$WORK/initrd.img")" >"$OUT.json.tmp"
mv "$OUT.json.tmp" "$OUT.json"
log "built $OUT: $SIZE bytes, sha256 $SHA (kernel $KVER)"
