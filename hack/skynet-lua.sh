#!/usr/bin/env bash
# Builds the Lua interpreter that skynet ships (3rd/lua of the skynet source,
# Lua 5.5 with skynet's build flags), once, into a cache outside the
# repository, and prints its path as the last line. Tests use it to load
# cluster config files exactly as skynet's clusterd does.
#
# Usage: hack/skynet-lua.sh
# Environment:
#   SKYCALL_SKYNET_TARBALL  the skynet source tarball (default: the one in
#                           shared/skynet/upstream beside the repository)
#   SKYCALL_CACHE_DIR       cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/skycall)
# Needs a C compiler and make (about ten seconds).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tarball=${SKYCALL_SKYNET_TARBALL:-}
if [ -z "$tarball" ]; then
  for t in "$root/../shared/skynet/upstream/"skynet-*.tar.gz "$root/shared/skynet/upstream/"skynet-*.tar.gz; do
    [ -f "$t" ] && tarball=$t && break
  done
fi
if [ -z "$tarball" ] || [ ! -f "$tarball" ]; then
  echo "skynet source tarball not found: set SKYCALL_SKYNET_TARBALL to skynet-<commit>.tar.gz" >&2
  exit 1
fi
command -v cc >/dev/null && command -v make >/dev/null || { echo "need cc and make to build skynet's Lua" >&2; exit 1; }
name=$(basename "$tarball" .tar.gz)
cache_root=${SKYCALL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/skycall}
out="$cache_root/$name-lua"
mkdir -p "$cache_root"
exec 9>"$cache_root/.skynet-lua.lock"
command -v flock >/dev/null && flock 9
if [ ! -x "$out/lua" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "[skynet-lua] building Lua from $tarball" >&2
  tar xzf "$tarball" -C "$work" "$name/3rd/lua" "$name/skynet-src"
  make -C "$work/$name/3rd/lua" linux >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
  mkdir -p "$out"
  cp "$work/$name/3rd/lua/lua" "$out/lua.tmp"
  mv "$out/lua.tmp" "$out/lua"
fi
echo "$out/lua"
