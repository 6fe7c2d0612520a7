#!/usr/bin/env bash
# docs_config.sh - docs/configuration.md is exactly what
# `nader config --reference` prints from the table in common/config.c,
# so the documented keys, types, defaults and limits are the ones the
# coordinator parses.  Instant.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${NADER_BIN:-$ROOT/build}
if ! "$BIN/nader" config --reference | diff -u "$ROOT/docs/configuration.md" - \
    >"${TMPDIR:-/tmp}/nader-docs-config.$$.diff"; then
    head -n 40 "${TMPDIR:-/tmp}/nader-docs-config.$$.diff"
    rm -f "${TMPDIR:-/tmp}/nader-docs-config.$$.diff"
    echo "FAIL: docs/configuration.md is stale; run"
    echo "  ./build/nader config --reference > docs/configuration.md"
    exit 1
fi
rm -f "${TMPDIR:-/tmp}/nader-docs-config.$$.diff"
n=$(grep -c '^### `' "$ROOT/docs/configuration.md")
echo "ok: docs/configuration.md matches the table ($n keys)"
