#!/usr/bin/env bash
# tests/gpu/fetch-deps.sh - fetch the Debian packages that the engine-only
# build (make engine) needs and a GPU machine may lack, into .gpu-deps/
# (libjansson, OpenBLAS, libsodium).
#
# Run it here, on a machine with apt and a network (Debian 12), before a
# device check on a machine that has neither; then carry .gpu-deps with
# the check (it is git-ignored).  check.sh unpacks the packages into a
# private folder only when the machine lacks one of them; nothing is
# installed system-wide.  About 14 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
pkgs=(libjansson4 libjansson-dev libopenblas0-pthread libopenblas-pthread-dev
      libgfortran5 libquadmath0 libsodium23 libsodium-dev)
mkdir -p .gpu-deps
cd .gpu-deps
rm -f ./*.deb
apt-get download "${pkgs[@]}"
ls -l ./*.deb
echo "fetch-deps: $(ls ./*.deb | wc -l) packages in .gpu-deps ($(du -sh . | cut -f1))"
