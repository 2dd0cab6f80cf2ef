# Filling the staging tree of the base layer. The tree uses Debian's merged /usr layout
# (/bin, /sbin, /lib, /lib64 are symlinks into /usr), so a program or library from any .deb
# lands in one place whatever path its package used.
# Sourced, not run. Uses $ST (staging root) and $COMPONENTS (a "component<TAB>path" list that
# feeds the size table).

LIBDIR=usr/lib/x86_64-linux-gnu

stage_skeleton() {
  mkdir -p "$ST"/{usr/bin,usr/sbin,$LIBDIR,usr/lib64,etc,proc,sys,dev,run,tmp,root,mnt,var/log,var/lib}
  ln -s usr/bin "$ST/bin"
  ln -s usr/sbin "$ST/sbin"
  ln -s usr/lib "$ST/lib"
  ln -s usr/lib64 "$ST/lib64"
  : >"$COMPONENTS"
}

# track COMPONENT RELPATH
track() { printf '%s\t%s\n' "$1" "$2" >>"$COMPONENTS"; }

# stage_rootfs SRC: /init, the udhcpc hook and /etc files, kept in the repo as a plain tree.
stage_rootfs() {
  (cd "$1" && find . -mindepth 1 \( -type f -o -type l \) -printf '%P\n') | sort | while read -r f; do
    mkdir -p "$ST/$(dirname "$f")"
    cp -P "$1/$f" "$ST/$f"
    track init "$f"
  done
}

# stage_modules KROOT KVER MODULES-LIST: copy the listed modules and their dependencies, then index
# them with depmod so busybox modprobe (which reads the text modules.dep/modules.alias) finds them.
stage_modules() {
  local kroot=$1 kver=$2 list=$3 name optional out f rel
  [ -f "$kroot/lib/modules/$kver/modules.dep" ] || depmod -b "$kroot" "$kver"
  grep -vE '^\s*(#|$)' "$list" | while read -r name; do
    optional=0
    case "$name" in *\?) optional=1; name=${name%\?} ;; esac
    if ! out=$(modprobe -d "$kroot" -S "$kver" --show-depends "$name" 2>&1); then
      [ "$optional" = 1 ] && continue
      die "kernel $kver has no module '$name' (listed in $list); remove it or mark it optional with a trailing '?'"
    fi
    printf '%s\n' "$out" | awk '$1 == "insmod" { print $2 }'
  done | sort -u | while read -r f; do
    rel=usr/lib/modules/$kver/${f#"$kroot"/lib/modules/"$kver"/}
    mkdir -p "$ST/$(dirname "$rel")"
    case "$f" in
      # busybox modprobe loads plain .ko only; newer Debian kernels compress their modules.
      *.ko.xz) xz -dc "$f" >"$ST/${rel%.xz}"; rel=${rel%.xz} ;;
      *.ko.zst) zstd -qdc "$f" >"$ST/${rel%.zst}"; rel=${rel%.zst} ;;
      *) cp "$f" "$ST/$rel" ;;
    esac
    track modules "$rel"
  done
  for f in modules.order modules.builtin modules.builtin.modinfo; do
    [ -f "$kroot/lib/modules/$kver/$f" ] && cp "$kroot/lib/modules/$kver/$f" "$ST/usr/lib/modules/$kver/$f"
  done
  depmod -b "$ST" "$kver" || die "depmod failed on the staged modules of $kver"
  (cd "$ST" && find "usr/lib/modules/$kver" -maxdepth 1 -type f -name 'modules.*' -printf '%p\n') | while read -r f; do
    track modules "$f"
  done
}

# stage_program SRCDIR NAME [AS]: copy program NAME from an unpacked .deb into usr/bin or usr/sbin
# (whichever its package used), installed under the name AS.
stage_program() {
  local src=$1 name=$2 as=${3:-$2} rel d
  rel=$(find_in "$src" "$name")
  [ -n "$rel" ] || die "program '$name' not found in the unpacked package at $src; fix tools.txt"
  case "$rel" in *sbin/*) d=usr/sbin ;; *) d=usr/bin ;; esac
  cp -L "$src/$rel" "$ST/$d/$as"
  track tools "$d/$as"
}

# find_in DIR NAME: where an unpacked package keeps program NAME, relative to DIR.
find_in() {
  local d
  for d in usr/sbin usr/bin sbin bin; do
    if [ -e "$1/$d/$2" ]; then
      printf '%s/%s\n' "$d" "$2"
      return
    fi
  done
}

# installed_dir NAME: usr/bin or usr/sbin, wherever NAME was staged.
installed_dir() {
  if [ -e "$ST/usr/sbin/$1" ] || [ -L "$ST/usr/sbin/$1" ]; then echo usr/sbin; else echo usr/bin; fi
}

# stage_tools TOOLS-LIST: every line is "<package> <program|alias=program|@datafile>...".
stage_tools() {
  local pkg rest item src d
  while read -r pkg rest; do
    src=$(unpacked "$pkg")
    for item in $rest; do
      case "$item" in
        @*)
          mkdir -p "$ST/$(dirname "${item#@}")"
          cp -L "$src/${item#@}" "$ST/${item#@}" || die "data file ${item#@} not found in package $pkg"
          track tools "${item#@}"
          ;;
        *=*)
          # An alias is a symlink, so programs that look at argv[0] (xorriso as mkisofs) see it.
          d=$(installed_dir "${item#*=}")
          ln -s "${item#*=}" "$ST/$d/${item%%=*}"
          track tools "$d/${item%%=*}"
          ;;
        *) stage_program "$src" "$item" ;;
      esac
    done
  done < <(grep -vE '^\s*(#|$)' "$1")
}

# index_libraries DIR...: soname -> path over the library folders of the unpacked packages.
declare -A SONAME_PATH=()
index_libraries() {
  local dir f
  for dir in "$@"; do
    for f in "$dir"/lib/x86_64-linux-gnu/*.so* "$dir"/usr/lib/x86_64-linux-gnu/*.so* "$dir"/lib64/*.so*; do
      [ -e "$f" ] || continue
      [ -n "${SONAME_PATH[${f##*/}]:-}" ] || SONAME_PATH[${f##*/}]=$f
    done
  done
}

# stage_libraries: copy exactly the shared libraries the staged programs need (their DT_NEEDED,
# transitively), resolved against the unpacked packages rather than the build machine's /lib.
stage_libraries() {
  local queue=() f so needed_by
  local -A done_so=()
  while read -r f; do queue+=("$f"); done < <(cd "$ST" && find usr/bin usr/sbin -type f | sort)
  while [ ${#queue[@]} -gt 0 ]; do
    f=${queue[0]}
    queue=("${queue[@]:1}")
    readelf -h "$ST/$f" >/dev/null 2>&1 || continue
    while read -r so; do
      [ -n "$so" ] && [ -z "${done_so[$so]:-}" ] || continue
      done_so[$so]=1
      [ -n "${SONAME_PATH[$so]:-}" ] ||
        die "library $so (needed by /$f) is in none of the downloaded packages; add its Debian package to the library roots in build.sh"
      cp -L "${SONAME_PATH[$so]}" "$ST/$LIBDIR/$so"
      track libs "$LIBDIR/$so"
      queue+=("$LIBDIR/$so")
    done < <(readelf -d "$ST/$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  done
  # The ELF interpreter path every program names is /lib64/ld-linux-x86-64.so.2.
  [ -f "$ST/$LIBDIR/ld-linux-x86-64.so.2" ] || die "ld-linux-x86-64.so.2 was not staged"
  ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$ST/usr/lib64/ld-linux-x86-64.so.2"
}

# stage_busybox_links: one symlink per busybox applet, except where a real tool of that name was
# staged (util-linux losetup beats the busybox one).
stage_busybox_links() {
  local path name d
  while read -r path; do
    name=${path##*/}
    case "$path" in
      bin/* | usr/bin/*) d=usr/bin ;;
      sbin/* | usr/sbin/*) d=usr/sbin ;;
      *) continue ;;
    esac
    [ -e "$ST/usr/bin/$name" ] || [ -e "$ST/usr/sbin/$name" ] || [ -L "$ST/usr/bin/$name" ] ||
      [ -L "$ST/usr/sbin/$name" ] || ln -s /usr/bin/busybox "$ST/$d/$name"
  done < <("$ST/usr/bin/busybox" --list-full | sort)
}
