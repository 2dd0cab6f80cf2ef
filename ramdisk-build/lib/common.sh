# Shared helpers for build.sh: logging, fatal errors, host tool checks, hashing.
# Sourced, not run.

log() { printf '[ramdisk] %s\n' "$*" >&2; }

die() {
  printf '[ramdisk] error: %s\n' "$*" >&2
  exit 1
}

# need_tool PROGRAM DEBIAN-PACKAGE: fail early, naming the package to install, instead of
# failing halfway through a build with "command not found".
need_tool() {
  command -v "$1" >/dev/null 2>&1 ||
    die "the build needs '$1' on this machine; install it with: apt-get install -y $2"
}

check_host_tools() {
  local compression=$1
  need_tool apt-get apt
  need_tool apt-cache apt
  need_tool dpkg-deb dpkg
  need_tool depmod kmod
  need_tool modprobe kmod
  need_tool cpio cpio
  need_tool readelf binutils
  need_tool strip binutils
  need_tool sha256sum coreutils
  need_tool tar tar
  need_tool node nodejs
  need_tool npm npm
  case "$compression" in
    zstd) need_tool zstd zstd ;;
    xz) need_tool xz xz-utils ;;
    gzip) need_tool gzip gzip ;;
    *) die "unknown compression '$compression' (use zstd, xz or gzip)" ;;
  esac
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# file_size PATH: bytes, following symlinks.
file_size() { stat -L -c %s "$1"; }
