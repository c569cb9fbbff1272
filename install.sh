#!/bin/sh
# Installs the proxywall binary for this Linux machine:
#
#   curl -fsSL https://github.com/proxywall/proxywall/releases/latest/download/install.sh | sh
#
# Environment:
#   PROXYWALL_VERSION      a release such as 1.2.3 (default: the latest release)
#   PROXYWALL_INSTALL_DIR  where to put it (default: /usr/local/bin as root, else ~/.local/bin)
#   PROXYWALL_BASE_URL     fetch <base>/<file> (or <base>/v<version>/<file>) instead of GitHub
#   PROXYWALL_LIBC         glibc or musl, when the guess is wrong
#
# Where xz (or unxz, xzcat, busybox's xz) can unpack it, the binary comes as .xz (about 40 MB
# instead of 110 MB); otherwise, or when the .xz cannot be had or unpacked, as it is. Both the
# download and the binary are checked against the release's SHA256SUMS, and the new binary must
# run `--version` before it replaces anything. On any failure nothing is installed.
#
# All the work happens in main, called on the last line: a download cut short runs nothing.

set -eu
# dash has no pipefail and aborts on `set -o pipefail`; take it where the shell has it.
# shellcheck disable=SC3040
(set -o pipefail) 2>/dev/null && set -o pipefail

RELEASES_URL="https://github.com/proxywall/proxywall/releases"

say() {
  printf 'proxywall-install: %s\n' "$*" >&2
}

die() {
  printf 'proxywall-install: error: %s\n' "$*" >&2
  exit 1
}

has() {
  command -v "$1" >/dev/null 2>&1
}

# Sets arch (x64|arm64).
detect_arch() {
  os=$(uname -s)
  [ "$os" = Linux ] || die "proxywall runs on Linux only, this is $os"
  machine=$(uname -m)
  case $machine in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64 | armv8*) arch=arm64 ;;
    *) die "no proxywall build for CPU $machine (there are x86_64 and aarch64 builds)" ;;
  esac
}

# Sets libc (glibc|musl). A musl loader alone proves nothing: glibc hosts can have musl installed.
detect_libc() {
  case ${PROXYWALL_LIBC:-} in
    glibc | gnu) libc=glibc; return 0 ;;
    musl) libc=musl; return 0 ;;
    "") ;;
    *) die "PROXYWALL_LIBC must be glibc or musl, not $PROXYWALL_LIBC" ;;
  esac
  if getconf GNU_LIBC_VERSION >/dev/null 2>&1; then
    libc=glibc
    return 0
  fi
  # musl's ldd prints its version on stderr and exits 1.
  ldd_out=$(ldd --version 2>&1 || true)
  case $ldd_out in
    *musl*) libc=musl; return 0 ;;
    *GLIBC* | *"GNU libc"*) libc=glibc; return 0 ;;
  esac
  for loader in /lib/ld-musl-*.so.1; do
    if [ -e "$loader" ]; then libc=musl; return 0; fi
  done
  for loader in /lib64/ld-linux-*.so.* /lib/ld-linux-*.so.* /lib/*-linux-gnu/ld-linux-*.so.*; do
    if [ -e "$loader" ]; then libc=glibc; return 0; fi
  done
  die "cannot tell whether this system uses glibc or musl; set PROXYWALL_LIBC=glibc or PROXYWALL_LIBC=musl"
}

# fetch URL FILE; fails with the downloader's own reason in $tmp/download.err.
fetch() {
  if [ "$downloader" = curl ]; then
    curl -fsSL --retry 2 -o "$2" "$1" 2>"$tmp/download.err"
  else
    wget -q -O "$2" "$1" 2>"$tmp/download.err"
  fi
}

# download URL FILE; on failure dies with the downloader's own reason on the same line.
download() {
  fetch "$1" "$2" || die "download failed: $1 ($(tail -n 1 "$tmp/download.err"))"
}

# Sets unxz to the tool that unpacks .xz here (xz, unxz, xzcat or busybox), or to "" for none.
find_unxz() {
  unxz=""
  for tool in xz unxz xzcat; do
    if has "$tool"; then unxz=$tool; return 0; fi
  done
  if has busybox && busybox --list 2>/dev/null | grep -qx unxz; then unxz=busybox; fi
}

# unpack FILE.xz OUT: writes FILE.xz unpacked to OUT with the tool find_unxz chose.
unpack() {
  case $unxz in
    xz) xz -dc "$1" ;;
    unxz) unxz -c "$1" ;;
    xzcat) xzcat "$1" ;;
    busybox) busybox unxz -c "$1" ;;
    *) return 1 ;;
  esac >"$2" 2>"$tmp/unpack.err"
}

# Prints the SHA256SUMS entry for NAME (lower case), or nothing when it has no valid one.
sum_entry() {
  entry=$(awk -v f="$1" '$2 == f || $2 == "*" f { print $1; exit }' "$tmp/SHA256SUMS") || die "cannot read SHA256SUMS"
  case $entry in
    "" | *[!0-9a-fA-F]*) return 0 ;;
  esac
  if [ "${#entry}" -eq 64 ]; then printf '%s\n' "$entry" | tr 'A-F' 'a-f'; fi
}

# verify FILE EXPECTED WHAT: dies unless FILE's sha256 is EXPECTED.
verify() {
  actual=$(sha256_of "$1") || die "need sha256sum, shasum or openssl to verify the download"
  [ "$actual" = "$2" ] || die "checksum mismatch for $3 (expected $2, got $actual): not installed"
}

# Leaves the binary, verified, in $tmp/$asset: from $asset.xz where it can, else as it is.
get_binary() {
  expected=$(sum_entry "$asset")
  [ -n "$expected" ] || die "SHA256SUMS has no valid entry for $asset"
  find_unxz
  packed_sum=""
  if [ -n "$unxz" ]; then packed_sum=$(sum_entry "$asset.xz"); fi
  # An older release has no .xz: its SHA256SUMS does not name one.
  if [ -n "$packed_sum" ]; then
    say "downloading $base/$asset.xz"
    if ! fetch "$base/$asset.xz" "$tmp/$asset.xz"; then
      say "could not download $asset.xz ($(tail -n 1 "$tmp/download.err")); downloading $asset instead"
    else
      verify "$tmp/$asset.xz" "$packed_sum" "$asset.xz"
      if unpack "$tmp/$asset.xz" "$tmp/$asset"; then
        rm -f "$tmp/$asset.xz"
        verify "$tmp/$asset" "$expected" "$asset (unpacked from $asset.xz)"
        return 0
      fi
      say "$unxz could not unpack $asset.xz ($(head -n 1 "$tmp/unpack.err")); downloading $asset instead"
      rm -f "$tmp/$asset.xz" "$tmp/$asset"
    fi
  fi
  say "downloading $base/$asset"
  download "$base/$asset" "$tmp/$asset"
  verify "$tmp/$asset" "$expected" "$asset"
}

# Prints the sha256 of FILE as hex.
sha256_of() {
  if has sha256sum; then
    sum_out=$(sha256sum "$1") || return 1
    printf '%s\n' "${sum_out%% *}"
  elif has shasum; then
    sum_out=$(shasum -a 256 "$1") || return 1
    printf '%s\n' "${sum_out%% *}"
  elif has openssl; then
    sum_out=$(openssl dgst -sha256 "$1") || return 1
    printf '%s\n' "${sum_out##* }"
  else
    return 2
  fi
}

on_path() {
  case ":${PATH:-}:" in
    *":$1:"*) return 0 ;;
    *) return 1 ;;
  esac
}

# Runs on every exit: removes the downloads, and on failure whatever was staged or created.
cleanup() {
  rc=$?
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
  if [ -n "$staged" ]; then rm -f "$staged"; fi
  if [ "$rc" -ne 0 ] && [ -n "$made_top" ]; then
    # rmdir only removes empty directories, so this never takes anything that was there before.
    d=$dest_dir
    while rmdir "$d" 2>/dev/null && [ "$d" != "$made_top" ]; do d=$(dirname "$d"); done
  fi
  exit "$rc"
}

main() {
  tmp=""
  staged=""
  made_top=""
  dest_dir=""
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  detect_arch
  detect_libc
  asset="proxywall-linux-$arch"
  if [ "$libc" = musl ]; then asset="$asset-musl"; fi

  version=${PROXYWALL_VERSION:-}
  version=${version#v}
  case $version in
    *[!0-9A-Za-z.+-]*) die "PROXYWALL_VERSION is not a version: $PROXYWALL_VERSION" ;;
  esac
  if [ -n "${PROXYWALL_BASE_URL:-}" ]; then
    base=${PROXYWALL_BASE_URL%/}
    if [ -n "$version" ]; then base="$base/v$version"; fi
  elif [ -n "$version" ]; then
    base="$RELEASES_URL/download/v$version"
  else
    base="$RELEASES_URL/latest/download"
  fi

  if [ -n "${PROXYWALL_INSTALL_DIR:-}" ]; then
    dest_dir=${PROXYWALL_INSTALL_DIR%/}
  elif [ "$(id -u)" -eq 0 ]; then
    dest_dir=/usr/local/bin
  elif [ -n "${HOME:-}" ]; then
    dest_dir="$HOME/.local/bin"
  else
    die "HOME is not set; set PROXYWALL_INSTALL_DIR"
  fi
  case $dest_dir in
    /*) ;;
    *) dest_dir="$(pwd)/$dest_dir" ;;
  esac

  if has curl; then
    downloader=curl
  elif has wget; then
    downloader=wget
  else
    die "need curl or wget to download proxywall"
  fi

  tmp=$(mktemp -d "${TMPDIR:-/tmp}/proxywall-install.XXXXXX") || die "cannot create a temporary directory"
  download "$base/SHA256SUMS" "$tmp/SHA256SUMS"
  get_binary

  # Staged next to its final place: the rename is atomic, and this works when /tmp is noexec.
  if [ ! -d "$dest_dir" ]; then
    made_top=$dest_dir
    while [ ! -d "$(dirname "$made_top")" ]; do made_top=$(dirname "$made_top"); done
    mkdir -p "$dest_dir" 2>/dev/null || die "cannot create $dest_dir (run as root or set PROXYWALL_INSTALL_DIR)"
  fi
  staged="$dest_dir/.proxywall.new.$$"
  { cp "$tmp/$asset" "$staged" && chmod 755 "$staged"; } 2>/dev/null ||
    die "cannot write to $dest_dir (run as root or set PROXYWALL_INSTALL_DIR)"

  if ! got=$(cd "$tmp" && "$staged" --version </dev/null 2>"$tmp/stderr"); then
    hint=""
    if [ "$libc" = musl ]; then hint=" (on Alpine: apk add libstdc++ libgcc)"; fi
    die "the downloaded $asset does not run here$hint: $(head -n 1 "$tmp/stderr")"
  fi
  got=$(printf '%s\n' "$got" | head -n 1)
  [ -n "$got" ] || die "the downloaded $asset printed no version"
  if [ -n "$version" ] && [ "$got" != "$version" ]; then
    die "asked for version $version but the download is version $got: not installed"
  fi

  mv -f "$staged" "$dest_dir/proxywall" || die "cannot move proxywall into $dest_dir"
  staged=""
  echo "installed proxywall $got ($asset, sha256 verified) to $dest_dir/proxywall"
  if ! on_path "$dest_dir"; then say "note: $dest_dir is not on your PATH"; fi
}

main "$@"
