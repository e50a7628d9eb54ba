#!/usr/bin/env bash
# Builds the Lua interpreter that skynet ships (3rd/lua of the skynet source:
# Lua 5.5 with skynet's build flags), once, into a cache outside the
# repository, and prints its path as the last line. Tests use it to load
# cluster config files exactly as skynet's clusterd does. skynet's files
# never enter the repository.
#
# Usage: hack/skynet-lua.sh
# Source, in this order: SKYNET_SRC (a skynet-<commit>.tar.gz or a source
# directory, as hack/skynet.sh takes it), then
# ../shared/skynet/upstream/skynet-*.tar.gz beside the repository (CI clones
# the project beside shared/). Exit status 3 when there is no source or no
# C compiler (tests skip then, unless CI=true or SKYCALL_REQUIRE_SKYNET=1),
# 1 when the build fails. Needs cc and make; about ten seconds.
# Environment: SKYCALL_CACHE_DIR overrides the cache root
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/skycall).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
unavailable() { echo "[skynet-lua] unavailable: $*" >&2; exit 3; }

src=${SKYNET_SRC:-}
if [ -z "$src" ]; then
  for t in "$root/../shared/skynet/upstream/"skynet-*.tar.gz; do
    [ -f "$t" ] && src=$t && break
  done
fi
[ -n "$src" ] && [ -e "$src" ] || unavailable "no skynet source: set SKYNET_SRC to skynet-f19d1605.tar.gz or a checkout of github.com/cloudwu/skynet"
command -v cc >/dev/null && command -v make >/dev/null || unavailable "need cc and make to build skynet's Lua (apt-get install gcc make)"

name=$(basename "$src"); name=${name%.tar.gz}
cache_root=${SKYCALL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/skycall}
out="$cache_root/$name-lua"
mkdir -p "$cache_root"
exec 9>"$cache_root/.skynet-lua.lock"
if command -v flock >/dev/null; then flock 9; fi
if [ ! -x "$out/lua" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "[skynet-lua] building skynet's Lua from $src" >&2
  if [ -d "$src" ]; then
    mkdir -p "$work/src/3rd"
    cp -r "$src/3rd/lua" "$work/src/3rd/lua"
    cp -r "$src/skynet-src" "$work/src/skynet-src"
  else
    tar xzf "$src" -C "$work" "$name/3rd/lua" "$name/skynet-src"
    mv "$work/$name" "$work/src"
  fi
  make -C "$work/src/3rd/lua" linux >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
  mkdir -p "$out"
  cp "$work/src/3rd/lua/lua" "$out/lua.tmp"
  mv "$out/lua.tmp" "$out/lua"
fi
echo "$out/lua"
