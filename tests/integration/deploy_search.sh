#!/usr/bin/env bash
# deploy_search.sh - taking a finished search away: a small `nader run`
# (offline designer, generated data, 2 iterations of 2 designs, 1 CPU
# worker) writes its results folder and store, then
#   - `nader export --best` from the results folder alone (the network
#     rebuilt from the folder and checked against the parameters the
#     search recorded), from the folder with its store, and from the
#     store alone all give the search's own best design, with the
#     parameter count and width it was trained with;
#   - `nader report` of the folder and of the store (--tag search:NAME)
#     render in headless Chromium (skipped without chromium) with every
#     design of the tree and an edge for every parent.
# About 15 s on 2 cores.
source "$(dirname "$0")/runtime.bash"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PW=$(rt_port)
PS=$(rt_port)
cat >"$RT_DIR/tiny.yaml" <<EOF
state_dir: out/state
log: {level: warn}
workers: {endpoint: "tcp://127.0.0.1:$PW"}
status: {endpoint: "tcp://127.0.0.1:$PS"}
search: {name: tiny, base: $ROOT/examples/blocks/resnet_basic.txt,
         dataset: cifar10, iterations: 2, width: 2}
train: {screen_epochs: 1, full_epochs: 2, full_fraction: 0.5,
        final_seeds: "888", budget: 8000, cells_per_stage: 1, batch: 32}
run: {results: out, threads: 1, workers: 1}
data: {dir: out/data, generate: synthetic, train_images: 300,
       test_images: 100}
EOF
timeout 240 "$BIN/nader" run "$RT_DIR/tiny.yaml" --quiet \
    >"$RT_DIR/run.log" 2>&1 || fail "nader run: $(tail "$RT_DIR/run.log")"
RES=$RT_DIR/out/tiny
STATE=$RT_DIR/out/state
[[ -f $RES/summary.json ]] || fail "no results folder"

"$BIN/nader" export --best "$RES" -o "$RT_DIR/a.py" 2>"$RT_DIR/a.err" ||
    fail "export from the folder: $(cat "$RT_DIR/a.err")"
"$BIN/nader" export --best "$RES" --store "$STATE" -o "$RT_DIR/b.py" ||
    fail "export from the folder and store"
"$BIN/nader" export --best "$STATE" --tag search:tiny -o "$RT_DIR/c.py" ||
    fail "export from the store"
/usr/bin/python3 - "$RES" "$RT_DIR" <<'PY' || fail "exported designs"
import importlib.util, json, os, sys
res, d = sys.argv[1:]
best = json.load(open(os.path.join(res, "summary.json")))["best"]
design = [json.loads(l) for l in open(os.path.join(res, "designs.jsonl"))
          if json.loads(l)["hash"] == best["hash"]][0]
for name in "abc":
    spec = importlib.util.spec_from_file_location(name, os.path.join(
        d, name + ".py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    n = sum(p.numel() for p in m.Network().parameters())
    assert n == design["params"], (name, n, design)
    assert best["hash"] in m.__doc__, name
    assert "width %d with 1 cells" % design["width"] in \
        m.__doc__.replace("\n", " "), (name, m.__doc__)
print("export ok: %s (%d parameters, width %d) from folder and store" %
      (best["name"], design["params"], design["width"]))
PY

"$BIN/nader" report "$RES" -o "$RT_DIR/folder.html" || fail "report folder"
"$BIN/nader" report "$STATE" --tag search:tiny -o "$RT_DIR/store.html" ||
    fail "report store"
if ! command -v chromium >/dev/null; then
    echo "reports written; chromium is not installed, so not rendered"
    exit 0
fi
designs=$(grep -c . "$RES/designs.jsonl")
parents=$(grep -c '"parent": *"' "$RES/designs.jsonl")
for page in folder store; do
    chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$RT_DIR/chrome-$page" --virtual-time-budget=10000 \
        --dump-dom "file://$RT_DIR/$page.html" >"$RT_DIR/$page.dom" \
        2>"$RT_DIR/chrome-$page.log" || fail "chromium ($page)"
    grep -q '<body data-rendered="4">' "$RT_DIR/$page.dom" ||
        fail "$page report not drawn: $(grep -o '<body[^>]*>' \
            "$RT_DIR/$page.dom")"
    /usr/bin/python3 - "$RT_DIR/$page.dom" "$designs" "$parents" <<'PY' ||
import re, sys
dom, designs, parents = open(sys.argv[1]).read(), int(sys.argv[2]), \
    int(sys.argv[3])
tree = dom[dom.index('id="tree"'):dom.index('id="curve-design"')]
assert tree.count("<circle") == designs, (tree.count("<circle"), designs)
assert tree.count("<path") == parents, (tree.count("<path"), parents)
PY
        fail "$page report: the tree is not the search's"
done
echo "ok: $designs designs, $parents edges drawn from the folder and the store"
