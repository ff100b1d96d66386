#!/usr/bin/env bash
# Prints the root of an extracted Debian linux-libc-dev new enough to hold
# every constant and syscall number native/kernel.h defines (mseal: Linux 6.10),
# for test/kernel/kernel-abi.test.ts (MEMSEAL_UAPI_ROOT). From Linux 6.x Debian's
# linux-libc-dev is one architecture-independent package carrying every
# architecture's asm/ headers, x86_64 and aarch64 among them.
#
# The package is fetched with apt-get download (nothing is installed) from the
# machine's own Debian archive, <codename>-backports first, then <codename>,
# through a private apt state directory, and cached outside the clone. Prints
# nothing and exits 1 if no such package can be had (not Debian, no network):
# the test then falls back to the system's headers.
set -euo pipefail
cache="${MEMSEAL_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memseal-ci}/uapi"
for root in "$cache"/*/; do
  if [ -f "$root/usr/include/linux/version.h" ] && grep -qs '__NR_mseal' "$root"/usr/include/aarch64-linux-gnu/asm/unistd_64.h; then
    echo "${root%/}"; exit 0
  fi
done
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { echo "uapi-headers: no apt-get/dpkg-deb" >&2; exit 1; }
[ -r /etc/os-release ] || { echo "uapi-headers: no /etc/os-release" >&2; exit 1; }
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
# The archive the machine already uses for its main suite (deb822 or one-line format).
uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
[ -n "$uri" ] || uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
  awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } } }')
[ -n "$codename" ] && [ -n "$uri" ] || { echo "uapi-headers: cannot tell this machine's Debian suite or archive" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
printf 'Types: deb\nURIs: %s\nSuites: %s %s-backports\nComponents: main\n%s' "$uri" "$codename" "$codename" \
  "$([ -f $keyring ] && echo "Signed-By: $keyring")" > "$work/x.sources"
apt_opts=(-o "Dir::Etc::SourceList=$work/x.sources" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1 -q)
apt-get "${apt_opts[@]}" update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; exit 1; }
cd "$work"
for suite in "$codename-backports" "$codename"; do
  rm -f linux-libc-dev_*.deb
  apt-get "${apt_opts[@]}" download "linux-libc-dev/$suite" >/dev/null 2>&1 || continue
  deb=$(echo linux-libc-dev_*.deb)
  dpkg-deb -x "$deb" x
  if grep -qs '__NR_mseal' x/usr/include/aarch64-linux-gnu/asm/unistd_64.h; then
    version=$(dpkg-deb -f "$deb" Version)
    rm -rf "${cache:?}/$version" && mkdir -p "$cache" && mv x "$cache/$version"
    echo "$cache/$version"
    exit 0
  fi
  rm -rf x
done
echo "uapi-headers: no linux-libc-dev in $codename(-backports) carries the aarch64 mseal number" >&2
exit 1
