# Turning a staging tree into a reproducible compressed cpio archive.
# Sourced, not run.

# normalize TREE EPOCH: modes that do not depend on the builder's umask, one timestamp for all.
normalize() {
  local tree=$1 epoch=$2
  find "$tree" -type d -exec chmod 0755 {} +
  find "$tree" -type f -perm /111 -exec chmod 0755 {} +
  find "$tree" -type f ! -perm /111 -exec chmod 0644 {} +
  find "$tree" -exec touch -h -d "@$epoch" {} +
}

# cpio_of TREE OUT: newc archive, names sorted bytewise, owner root, inode and device numbers
# renumbered (--reproducible) so two builds of the same tree are identical.
cpio_of() {
  (cd "$1" && find . -mindepth 1 -printf '%P\0' | LC_ALL=C sort -z |
    cpio --null --create --format=newc --reproducible --owner=0:0 --quiet) >"$2"
}

# compress_to KIND IN OUT. The kernel's own decompressors set the limits: xz needs the crc32 check.
# zstd and xz output does not depend on the number of threads, so -T0 keeps builds reproducible.
compress_to() {
  case "$1" in
    zstd) zstd -q -19 -T0 -f "$2" -o "$3" ;;
    xz) xz -9 --check=crc32 -T0 -c "$2" >"$3" ;;
    gzip) gzip -9 -n -c "$2" >"$3" ;;
    *) die "unknown compression '$1'" ;;
  esac
}

# pad4 FILE: append zero bytes up to a multiple of 4. The kernel skips zeros between concatenated
# initramfs archives and expects each one to start 4-byte aligned.
pad4() {
  local size pad
  size=$(file_size "$1")
  pad=$(((4 - size % 4) % 4))
  [ "$pad" = 0 ] || head -c "$pad" /dev/zero >>"$1"
}
