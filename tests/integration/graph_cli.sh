#!/usr/bin/env bash
# graph_cli.sh - `nader graph check|show|hash|format` as a user and a
# script see them: exit codes, the error lines, --json, standard input,
# stem scales, that a shown design reads back to the same hash, and that
# the format in docs/graph-format.md is what `format` prints.  About a
# second.
set -u
cd "$(dirname "$0")/../.."
NADER=${NADER_BIN:-build}/nader
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

expect_rc() { # WANT CMD...
    local want=$1 rc
    shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [[ $rc -ne $want ]]; then
        echo "FAIL: '$*' exited $rc, wanted $want"
        sed 's/^/  | /' "$tmp/out" "$tmp/err"
        fails=$((fails + 1))
    fi
}

expect_out() { # TEXT: the last command's stdout contains TEXT
    if ! grep -qF -- "$1" "$tmp/out"; then
        echo "FAIL: output lacks '$1'"
        sed 's/^/  | /' "$tmp/out"
        fails=$((fails + 1))
    fi
}

expect_rc 0 "$NADER" help
expect_out "graph"
expect_rc 0 "$NADER" graph --help
expect_rc 2 "$NADER" graph
expect_rc 2 "$NADER" graph frobnicate x
# format: every operation of the engine's table, once; the two-input
# wording for darts; the copy in the docs is current.
expect_rc 0 "$NADER" graph format
for op in Conv2d Linear AvgPool2d MaxPool2d AdaptiveAvgPool2d \
    AdaptiveMaxPool2d Add Mul multiply concat mean max sum softmax ReLU \
    GELU Sigmoid BN LN permute repeat reshape DropPath; do
    n=$(grep -c "^- $op[(:]" "$tmp/out")
    if [[ $n -ne 1 ]]; then
        echo "FAIL: nader graph format lists $op $n times"
        fails=$((fails + 1))
    fi
done
expect_rc 0 "$NADER" graph format --skeleton darts
expect_out 'A cell has the nodes `input1` and `input2`'
expect_rc 2 "$NADER" graph format --skeleton resnet
sed -n '/<!-- BEGIN nader graph format -->/,/<!-- END nader graph format -->/p' \
    docs/graph-format.md | sed '1d;$d' >"$tmp/doc"
"$NADER" graph format >"$tmp/gen"
if ! diff -q "$tmp/doc" "$tmp/gen" >/dev/null; then
    echo "FAIL: docs/graph-format.md is stale: paste nader graph format"
    fails=$((fails + 1))
fi
for c in check show hash format; do
    expect_rc 0 "$NADER" graph $c --help
    expect_out "usage: nader graph $c"
done

expect_rc 0 "$NADER" graph check examples/blocks/resnet_basic.txt
expect_out "valid (nb201 skeleton, cifar10)"
expect_rc 0 "$NADER" graph check examples/blocks/darts_sep.txt \
    --dataset cifar100 --budget 1M
expect_out "valid (darts skeleton, cifar100)"
expect_rc 1 "$NADER" graph check tests/blocks/bad/add_channels.txt
expect_out "cell node 4 (Add): shapes (B,32,32,32) and (B,16,32,32) do not broadcast"
expect_out "invalid, 1 error"
expect_rc 1 "$NADER" graph check tests/blocks/good/bottleneck.txt --width 18
expect_out "cell node 2 (Conv2d): out_channels = C/4 = 4.5 is not a whole number at C=18"
expect_rc 1 "$NADER" graph check tests/blocks/bad/syntax_line.txt
expect_out "tests/blocks/bad/syntax_line.txt:6: cannot read 'this is not a node'"
expect_rc 1 "$NADER" graph check examples/blocks/darts_sep.txt --skeleton nb201
expect_rc 2 "$NADER" graph check no/such/file.txt
expect_rc 2 "$NADER" graph check examples/blocks/resnet_basic.txt --width x
expect_rc 2 "$NADER" graph check examples/blocks/resnet_basic.txt --skeleton big
expect_rc 2 "$NADER" graph check examples/blocks/resnet_basic.txt --dataset mnist
expect_rc 2 "$NADER" graph check examples/blocks/resnet_basic.txt --bogus
expect_rc 2 "$NADER" graph check a.txt b.txt

# ImageNet-style stems: valid only where the skeleton's stem_scale says
# the stem reduces the input 4 times, with the rule-6 line otherwise.
for ds in cifar10 imagenet16-120; do
    expect_rc 0 "$NADER" graph check tests/blocks/good/imagenet_basic.txt \
        --dataset $ds --stem-scale 4
    expect_out "valid (nb201 skeleton, $ds, stem_scale 4)"
done
expect_rc 1 "$NADER" graph check tests/blocks/good/imagenet_patchnext.txt
expect_out "stem node 1 (output): gets (B,16,8,8), but a stem must return dim channels at the input resolution 32x32 (stem_scale 1), (B,16,32,32)"
expect_rc 1 "$NADER" graph check examples/blocks/resnet_basic.txt \
    --stem-scale 4
expect_out "stem node 1 (output): gets (B,16,32,32), but a stem must return dim channels at 8x8, the 32x32 input reduced 4x (stem_scale 4), (B,16,8,8)"
expect_rc 0 "$NADER" graph check tests/blocks/good/darts_strided_stem.txt \
    --stem-scale 2 --json
"$PY" - "$tmp/out" <<'PYEOF' || fails=$((fails + 1))
import json, sys
j = json.load(open(sys.argv[1]))
assert j["valid"] and j["skeleton"] == "darts" and j["stem_scale"] == 2, j
PYEOF
for bad in 0 3 16 x; do
    expect_rc 2 "$NADER" graph check examples/blocks/resnet_basic.txt \
        --stem-scale $bad
done
# The scale is the skeleton's, not the design's: the hash ignores it.
expect_rc 0 "$NADER" graph hash tests/blocks/good/imagenet_basic.txt
h1=$(cat "$tmp/out")
expect_rc 0 "$NADER" graph hash tests/blocks/good/imagenet_basic.txt \
    --stem-scale 4
if [[ $h1 != "$(cat "$tmp/out")" ]]; then
    echo "FAIL: --stem-scale changed the hash"
    fails=$((fails + 1))
fi

# --json: one object with the documented fields.
expect_rc 0 "$NADER" graph check examples/blocks/se_residual.txt --json \
    --width 16
"$PY" - "$tmp/out" <<'PYEOF' || fails=$((fails + 1))
import json, sys
j = json.load(open(sys.argv[1]))
assert j["valid"] is True and j["errors"] == [], j
assert j["width"] == 16 and j["params"] > 0 and j["macs"] > 0, j
assert isinstance(j["within_tolerance"], bool) and len(j["hash"]) == 32
PYEOF
expect_rc 1 "$NADER" graph check tests/blocks/bad/cycle.txt --json
"$PY" - "$tmp/out" <<'PYEOF' || fails=$((fails + 1))
import json, sys
j = json.load(open(sys.argv[1]))
assert j["valid"] is False and j["width"] is None, j
e = j["errors"][0]
assert (e["block"], e["node"], e["rule"]) == ("cell", 3, "cycle"), e
assert e["line"] > 0 and e["message"].startswith("cell node 3 (ReLU): on a cycle")
PYEOF

# Standard input, and show/hash agreeing with each other.
expect_rc 0 "$NADER" graph check - <examples/blocks/convnext_cell.txt
expect_rc 0 "$NADER" graph hash examples/blocks/convnext_cell.txt
h1=$(cat "$tmp/out")
"$NADER" graph show examples/blocks/convnext_cell.txt >"$tmp/shown.txt"
expect_rc 0 "$NADER" graph hash "$tmp/shown.txt"
h2=$(cat "$tmp/out")
if [[ ${#h1} -ne 32 || $h1 != "$h2" ]]; then
    echo "FAIL: hash '$h1' of the file differs from '$h2' of its show"
    fails=$((fails + 1))
fi
expect_rc 0 "$NADER" graph show examples/blocks/darts_sep.txt --format dot
expect_out "digraph design {"
expect_out "cell_13 -> cell_26 [label=\"1\"];"
expect_rc 0 "$NADER" graph show examples/blocks/darts_sep.txt --format json
"$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); \
assert j['two_input'] and j['blocks']['downsample']['nodes']" "$tmp/out" ||
    fails=$((fails + 1))
expect_rc 1 "$NADER" graph show tests/blocks/bad/cycle.txt
expect_rc 1 "$NADER" graph hash tests/blocks/bad/unknown_op.txt
expect_rc 2 "$NADER" graph show examples/blocks/darts_sep.txt --format svg

if [[ $fails -gt 0 ]]; then
    echo "$fails failures"
    exit 1
fi
echo "all graph CLI checks passed"
