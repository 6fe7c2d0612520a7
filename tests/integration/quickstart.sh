#!/usr/bin/env bash
# quickstart.sh - the README's main job: a bare `nader run` in an empty
# folder writes out the built-in experiment, runs the whole quickstart
# search (CPU worker, offline designer, generated data) and prints its
# leaderboard; run again, it shows the finished search without training
# anything and keeps a file the user edited; `nader tree` without a file
# shows its tree; and --set works without an experiment file.  About 40 s on 2 cores.
set -u
cd "$(dirname "$0")/../.."
NADER=${NADER_BIN:-$PWD/build}/nader
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
    echo "FAIL: $*"
    sed 's/^/  | /' "$tmp/out" 2>/dev/null | tail -40
    exit 1
}
cd "$tmp" || exit 1
Q=nader-quickstart

"$NADER" run --quiet >out 2>&1 || fail "nader run exited $?"
grep -q "no experiment file given: the built-in quickstart" out ||
    fail "nader run did not say it runs the built-in experiment"
grep -q "finished: all 3 iterations done" out || fail "the search did not finish"
grep -q "^leaderboard (cifar10, synthetic data, not CIFAR-10)" out ||
    fail "no leaderboard"
same() { # the two text files alike, a final newline aside
    cmp -s <(sed -e '$a\' "$1") <(sed -e '$a\' "$2")
}
same $Q/experiment/quickstart.yaml "$OLDPWD/examples/quickstart.yaml" ||
    fail "the written experiment is not examples/quickstart.yaml"
same $Q/experiment/blocks/resnet_basic.txt \
    "$OLDPWD/examples/blocks/resnet_basic.txt" ||
    fail "the written base design is not examples/blocks/resnet_basic.txt"
for f in best.txt leaderboard.txt tree.txt designs.jsonl results.jsonl; do
    [[ -s $Q/results/quickstart/$f ]] || fail "results lack $f"
done
# every design of the three iterations was screened
designs=$(wc -l <$Q/results/quickstart/designs.jsonl)
[[ $designs -eq 7 ]] || fail "7 designs expected (base + 3 x 2), got $designs"
best=$(sed -n 's/^ *1  \(d[0-9]*\) .*/\1/p' out)
[[ -n $best ]] || fail "no first place on the leaderboard"
# nader tree without a file shows the built-in search's tree
"$NADER" tree >out 2>&1 || fail "nader tree exited $?"
grep -q "^d0 .*(base design)" out || fail "nader tree: no base design line"
[[ $(grep -c "^ *d[0-9]" out) -eq 7 ]] || fail "nader tree: not 7 designs"

# Again: the finished search is shown, nothing is trained, and an edit to
# the written experiment is kept.
echo "# edited by the user" >>$Q/experiment/quickstart.yaml
start=$(date +%s)
"$NADER" run --quiet >out 2>&1 || fail "the second nader run exited $?"
grep -q "finished" out || fail "the second run did not find the search done"
grep -q "^ *1  $best " out || fail "the leaderboard changed on a rerun"
(($(date +%s) - start < 10)) || fail "the second run took too long to train nothing"
tail -1 $Q/experiment/quickstart.yaml | grep -q "edited by the user" ||
    fail "the user's edit was overwritten"

# Overrides apply to the built-in experiment too.
if "$NADER" run --quiet --set search.nosuch=1 >out 2>&1; then
    fail "an unknown key was accepted"
fi
grep -q "search.nosuch" out || fail "the unknown key is not named"
echo "ok: the built-in quickstart ran ($designs designs, best $best) and resumed"
