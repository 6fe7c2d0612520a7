#!/usr/bin/env bash
# search_cli.sh - the search's command-line edges and documents:
# `nader read` (imports, a paper through the scripted endpoint, errors),
# `nader tree` and `nader run` errors, the example experiments validate,
# and docs/experiments.md's key tables are what the configuration table
# says.  A few seconds.
set -u
cd "$(dirname "$0")/../.."
BIN=${NADER_BIN:-$PWD/build}
N=$BIN/nader
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d)
SERVER=
cleanup() {
    [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}

# The examples are valid experiments.
for f in examples/quickstart.yaml examples/cifar10.yaml; do
    "$BIN/nader-coordinator" --check --config "$f" >/dev/null ||
        fail "$f does not validate"
done

# --check also checks the search the file names: a missing or invalid
# base design is an error naming search.base.
cp deploy/config/search.yaml "$T/search.yaml"
"$BIN/nader-coordinator" --check --config "$T/search.yaml" >"$T/out" 2>&1 &&
    fail "--check passed a search whose base design is missing"
grep -q "search.base: $T/resnet_basic.txt: No such file" "$T/out" ||
    fail "missing base message: $(cat "$T/out")"
printf '##cell##\n0:input\n1:output\n2:ReLU\n0->2\n' >"$T/resnet_basic.txt"
"$BIN/nader-coordinator" --check --config "$T/search.yaml" >"$T/out" 2>&1 &&
    fail "--check passed an invalid base design"
grep -q "is not a valid design" "$T/out" ||
    fail "invalid base message: $(cat "$T/out")"
cp examples/blocks/resnet_basic.txt "$T/resnet_basic.txt"
"$BIN/nader-coordinator" --check --config "$T/search.yaml" >"$T/out" 2>&1 ||
    fail "--check refused a valid search: $(cat "$T/out")"

# docs/experiments.md's tables come from the configuration table.
sed -n '/<!-- BEGIN nader run --doc -->/,/<!-- END nader run --doc -->/p' \
    docs/experiments.md | sed '1d;$d' >"$T/doc"
"$N" run --doc >"$T/gen"
diff -q "$T/doc" "$T/gen" >/dev/null ||
    fail "docs/experiments.md is stale: regenerate its tables with nader run --doc"

# Every dotted key docs/agents.md names is a key of the table.
for k in $(grep -o '`\(search\|train\|budget\|llm\|run\|data\)\.[a-z_]*`' \
           docs/agents.md | tr -d '`' | grep -v '\.\(jsonl\|json\|txt\)$' |
           sort -u); do
    "$BIN/nader-coordinator" --keys | grep -q "^$k " ||
        fail "docs/agents.md names $k, which is not a configuration key"
done

# nader read: imports of the three layouts, merged without duplicates.
printf '[{"id": 4, "paper_id": 9, "proposal": "Add a gate."}]' >"$T/a.json"
printf '["Add a gate.", "Use GELU."]' >"$T/b.json"
"$N" read --import "$T/a.json" --import "$T/b.json" \
    --import examples/inspirations.txt --out "$T/all.json" 2>"$T/err" ||
    fail "nader read --import: $(cat "$T/err")"
n=$($PY -c "import json; print(len(json.load(open('$T/all.json'))))")
[[ $n == 32 ]] || fail "expected 32 inspirations, got $n"
printf '[{"id": 1}]' >"$T/bad.json"
"$N" read --import "$T/bad.json" 2>"$T/err" && fail "a bad list was accepted"
grep -q "entry 1 has no text" "$T/err" || fail "bad list message: $(cat "$T/err")"

# nader read: a paper needs an endpoint; with the scripted one it works.
printf 'A paper about gates.\n\nWe add a gate to every block.\n' >"$T/paper.txt"
"$N" read "$T/paper.txt" 2>"$T/err" && fail "read a paper without an endpoint"
grep -q "needs an LLM endpoint" "$T/err" || fail "no-endpoint message"
cat >"$T/script.json" <<'JSON'
{"rules": [{"match": "extract at most", "responses": [{"content":
 "Ideas:\n<inspiration>Scale each channel by a learned gate computed from pooled features.</inspiration>\n<inspiration>Add a gate.</inspiration>"}]}]}
JSON
$PY tests/py/llm_server.py --script "$T/script.json" --port-file "$T/port" \
    --log "$T/req.jsonl" &
SERVER=$!
for _ in $(seq 200); do [[ -s $T/port ]] && break; sleep 0.05; done
URL="http://127.0.0.1:$(cat "$T/port")/v1"
"$N" read "$T/paper.txt" --import "$T/a.json" --base-url "$URL" \
    --model scripted --out "$T/read.json" --log "$T/llm.jsonl" 2>"$T/err" ||
    fail "nader read with an endpoint: $(cat "$T/err")"
$PY - "$T/read.json" "$T/llm.jsonl" <<'PYEOF' || fail "nader read output"
import json, sys
ideas = json.load(open(sys.argv[1]))
texts = [i["inspiration"] for i in ideas]
assert texts == ["Add a gate.", "Scale each channel by a learned gate "
                 "computed from pooled features."], texts
assert ideas[1]["source"] == "paper.txt", ideas[1]
log = [json.loads(l) for l in open(sys.argv[2])]
assert len(log) == 1 and log[0]["agent"] == "reader", log
PYEOF

# nader tree and nader run: clear errors.
cat >"$T/x.yaml" <<YAML
state_dir: $T/state
search: {name: nothing, base: $PWD/examples/blocks/resnet_basic.txt}
YAML
mkdir -p "$T/state"
"$N" tree "$T/x.yaml" 2>"$T/err" && fail "nader tree of no store"
"$N" run "$T/x.yaml" --set search.name=bad/name 2>"$T/err" &&
    fail "a bad search name was accepted"
grep -q "search.name" "$T/err" || fail "bad name message: $(cat "$T/err")"
"$N" run "$T/x.yaml" --set data.dir="$T/none" 2>"$T/err" &&
    fail "ran without data"
grep -q "has no cifar-10-batches-bin folder" "$T/err" ||
    fail "missing data message: $(cat "$T/err")"
echo "ok: nader read, tree and run edges; examples and docs in step"
