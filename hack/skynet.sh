#!/usr/bin/env bash
# Builds skynet (github.com/cloudwu/skynet) at the pinned commit, once, into
# a cache outside the repository, as the real peer of skycall's interop tests
# (test/interop) and benchmarks (bench/). skynet's files never enter the
# repository.
#
# Usage: hack/skynet.sh [path]
#   path (default)  build skynet if missing, then print the directory that
#                   holds the skynet binary, service/, lualib/, luaclib/,
#                   cservice/ and lua (skynet's own Lua 5.5 interpreter, which
#                   tests use to load files exactly as skynet does) as the
#                   LAST line of stdout. Progress goes to
#                   stderr. Exit status 3 when skynet cannot be had (no
#                   source, no network, no compiler), 1 on other failures.
#
# Where the source comes from, in this order:
#   1. SKYNET_SRC: a tarball (checked against its sha256 below) or a
#      directory holding skynet's source at that commit (checked with git
#      when it is a clone; otherwise trusted, and said so).
#   2. ../shared/skynet/upstream/skynet-<commit>.tar.gz beside the
#      repository, when it exists (CI clones the project beside shared/).
#   3. git clone of https://github.com/cloudwu/skynet, checked out at the
#      commit, when a network is there.
# Without any of them it fails, saying how to get one.
#
# Build: `make linux MALLOC_STATICLIB= SKYNET_DEFINES=-DNOUSE_JEMALLOC`
# (no jemalloc, so no autoconf or git submodule): gcc and make only. Missing
# ones are installed with apt-get when that is possible, and said so.
#
# Environment: SKYCALL_CACHE_DIR overrides the cache root
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/skycall).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

commit=f19d1605b4b313c27d9931582c3153313a571492
short=${commit:0:8}
tarball_sha256=ce984c87f7729ecdd49914862ea28b2626220f5e73c07f0e225ef69a0ce607da
upstream=https://github.com/cloudwu/skynet

cache_root=${SKYCALL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/skycall}
dest="$cache_root/skynet-${short}"
stamp="$dest/.skycall-built"

log() { printf '[skynet] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# Exit status 3: skynet cannot be had here (no source, no compiler), as
# opposed to 1, a build or check that failed. Tests skip on 3 unless
# skynet is required (test/skynetpeer).
unavailable() { log "unavailable: $*"; exit 3; }

mkdir -p "$cache_root"

built() { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$commit" ] && [ -x "$dest/skynet" ] && [ -x "$dest/lua" ]; }

if built; then
  echo "$dest"
  exit 0
fi

# One build at a time: test packages run in parallel may all ask at once;
# the ones that wait find the stamp when they get the lock.
if command -v flock >/dev/null 2>&1; then
  exec 8>"$cache_root/.skynet.lock"
  flock 8
fi
if built; then
  echo "$dest"
  exit 0
fi

need_tools() {
  local missing=()
  command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
  command -v make >/dev/null 2>&1 || missing+=(make)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "building skynet needs ${missing[*]}; installing with apt-get"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null 2>&1 &&
    "${sudo[@]}" apt-get update >&2 &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    return 0
  fi
  unavailable "cannot install ${missing[*]}: install them (Debian: apt-get install gcc libc6-dev make) and run again"
}

work=$(mktemp -d "$cache_root/skynet-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
src="$work/skynet-${short}"

from_tarball() { # path
  local tb=$1 sum
  log "checking ${tb} (sha256)"
  sum=$(sha256sum "$tb" | awk '{print $1}')
  [ "$sum" = "$tarball_sha256" ] ||
    die "${tb} has sha256 ${sum}, expected ${tarball_sha256} (skynet ${short}); point SKYNET_SRC at the right tarball"
  mkdir -p "$src"
  tar xzf "$tb" -C "$src" --strip-components=1
}

from_directory() { # path
  local dir=$1 head
  if git -C "$dir" rev-parse HEAD >/dev/null 2>&1; then
    head=$(git -C "$dir" rev-parse HEAD)
    [ "$head" = "$commit" ] ||
      die "${dir} is at commit ${head}, expected ${commit}: git -C ${dir} checkout ${commit}"
    log "${dir} is a git checkout at ${short}"
  else
    [ -f "$dir/lualib/skynet/cluster.lua" ] && [ -f "$dir/Makefile" ] ||
      die "${dir} does not look like skynet's source (no Makefile or lualib/skynet/cluster.lua)"
    log "${dir} is not a git checkout: its commit cannot be verified; trusting it is ${short}"
  fi
  mkdir -p "$src"
  (cd "$dir" && tar cf - --exclude=.git .) | tar xf - -C "$src"
}

from_git() {
  log "no SKYNET_SRC and no shared tarball: cloning ${upstream} at ${short}"
  GIT_TERMINAL_PROMPT=0 timeout 300 git clone --quiet --filter=blob:none "$upstream" "$src" >&2 2>&1 ||
    return 1
  git -C "$src" -c advice.detachedHead=false checkout --quiet "$commit" >&2 ||
    die "cannot check out ${commit} in the clone of ${upstream}"
  [ "$(git -C "$src" rev-parse HEAD)" = "$commit" ] || die "clone is not at ${commit}"
}

shared_tarball="$root/../shared/skynet/upstream/skynet-${short}.tar.gz"
if [ -n "${SKYNET_SRC:-}" ]; then
  if [ -f "$SKYNET_SRC" ]; then
    from_tarball "$SKYNET_SRC"
  elif [ -d "$SKYNET_SRC" ]; then
    from_directory "$SKYNET_SRC"
  else
    die "SKYNET_SRC=${SKYNET_SRC} is neither a file nor a directory"
  fi
elif [ -f "$shared_tarball" ]; then
  from_tarball "$shared_tarball"
elif ! from_git; then
  unavailable "no skynet source: set SKYNET_SRC to skynet-${short}.tar.gz (sha256 ${tarball_sha256}) or to a checkout of ${upstream} at ${commit}, or run where ${upstream} can be cloned"
fi

need_tools
log "building skynet ${short} (about a minute on two cores; no jemalloc)"
if ! (cd "$src" && make linux MALLOC_STATICLIB= SKYNET_DEFINES=-DNOUSE_JEMALLOC -j2 >"$work/build.log" 2>&1); then
  tail -n 30 "$work/build.log" >&2
  die "make failed in ${src} (last lines above)"
fi
[ -x "$src/skynet" ] && [ -x "$src/3rd/lua/lua" ] || die "make succeeded but left no skynet binary or no 3rd/lua/lua"

# Keep what a node needs to run; swap it in whole so no reader sees half.
rm -rf "$dest.new"
mkdir -p "$dest.new"
cp -a "$src/skynet" "$src/service" "$src/lualib" "$src/luaclib" "$src/cservice" "$src/LICENSE" "$src/3rd/lua/lua" "$dest.new/"
echo "$commit" >"$dest.new/.skycall-built"
rm -rf "$dest"
mv "$dest.new" "$dest"
log "skynet ${short} built into ${dest}"
echo "$dest"
