#!/usr/bin/env bash
# deploy_cluster.sh - what an operator sees of a running cluster: a
# coordinator with metrics.enabled and a CPU worker train three small
# designs for real, then
#   - curl scrapes /metrics over HTTP: the text is valid exposition
#     format (tests/py/promtext.py) and says 1 worker, 3 jobs done, 3
#     results, and the best accuracy that `nader results` shows;
#   - `nader export --best --store` writes the best design as PyTorch,
#     whose parameter count and width are those the job trained with,
#     and `--job N` picks that job's design; asking for the weights of a
#     finished job says why there are none, while a running job's latest
#     checkpoint gives weights that load into the exported module;
#   - `nader report STATE --tag` renders in headless Chromium (skipped
#     when chromium is missing) with the three designs;
#   - `nader health` passes for the coordinator and its worker, and
#     fails for an absent worker or coordinator;
#   - metrics stay off by default.
# About 15 s on 2 cores.
source "$(dirname "$0")/runtime.bash"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RT_STATE=$RT_DIR/state
DATA=$RT_DIR/data
/usr/bin/python3 "$ROOT/tests/py/fixtures/make_colours.py" "$DATA" \
    >/dev/null || fail "making the data set"

"$BIN/nader-coordinator" --keys | grep -A1 '^metrics.enabled' |
    grep -q false || fail "metrics.enabled is not off by default"

PW=$(rt_port)
PS=$(rt_port)
rt_config "$RT_DIR/c.yaml" "$PW" "$PS" "metrics:" "  enabled: true" \
    "  address: 127.0.0.1:0" "jobs.checkpoint_every: 1"
rt_coordinator coord "$RT_DIR/c.yaml"
URL=$(grep -o 'http://127.0.0.1:[0-9]*/metrics' "$RT_DIR/coord.log" |
      head -n 1)
[[ -n $URL ]] || fail "the coordinator did not log its metrics address"
rt_worker w1 --connect "tcp://127.0.0.1:$PW" --device cpu --data "$DATA" \
    --threads 1 --scratch "$RT_DIR/scratch"

submit() {
    "$BIN/nader" submit "$1" --state "$RT_STATE" --dataset cifar10 \
        --epochs 2 --width "$2" --cells 1 --batch 16 --tag demo \
        >>"$RT_DIR/submit.out" 2>&1 || fail "submit $1: $(cat \
        "$RT_DIR/submit.out")"
}
submit "$ROOT/tests/integration/data/tiny.txt" 8
submit "$ROOT/examples/blocks/resnet_basic.txt" 4
submit "$ROOT/examples/blocks/se_residual.txt" 4
rt_wait_results 3 150

# --- health checks, as containers run them ----------------------------
"$BIN/nader" health --connect "tcp://127.0.0.1:$PS" --worker w1 \
    >"$RT_DIR/health.out" || fail "health: $(cat "$RT_DIR/health.out")"
"$BIN/nader" health --connect "tcp://127.0.0.1:$PS" --worker nobody \
    >"$RT_DIR/health.out"
[[ $? == 1 ]] || fail "an absent worker was healthy"
"$BIN/nader" health --connect "tcp://127.0.0.1:$(rt_port)" --timeout 0.3 \
    >"$RT_DIR/health.out"
[[ $? == 2 ]] || fail "no coordinator, yet healthy"

# --- metrics over real HTTP ------------------------------------------
curl -sS -f -D "$RT_DIR/headers" "$URL" -o "$RT_DIR/metrics.txt" ||
    fail "curl $URL"
grep -qi '^content-type: text/plain; version=0.0.4' "$RT_DIR/headers" ||
    fail "content type: $(cat "$RT_DIR/headers")"
code=$(curl -s -o /dev/null -w '%{http_code}' "${URL%/metrics}/nothing")
[[ $code == 404 ]] || fail "GET /nothing answered $code"
"$BIN/nader" results --state "$RT_STATE" --json >"$RT_DIR/results.json" ||
    fail "nader results"
PYTHONPATH=$ROOT/tests/py /usr/bin/python3 - "$RT_DIR/metrics.txt" \
    "$RT_DIR/results.json" >"$RT_DIR/metrics.out" <<'PY' ||
import json, sys
import promtext
s = promtext.parse(open(sys.argv[1]).read())
rs = json.load(open(sys.argv[2]))["results"]
g = lambda name, **kw: promtext.get(s, name, **kw)
assert g("nader_workers") == 1, g("nader_workers")
assert g("nader_devices", state="busy") + g("nader_devices",
                                             state="idle") == 1
assert g("nader_jobs", state="done") == 3
assert g("nader_queue_length") == 0
assert g("nader_results_total") == 3
best = max(r["final_valid_acc"] for r in rs)
got = g("nader_best_valid_accuracy_percent", dataset="cifar10", epochs="2")
assert abs(got - best) < 1e-9, (got, best)
assert g("nader_designs") == 3
assert g("nader_store_readable") == 1
assert g("nader_build_info", version="0.1.0") == 1
print("metrics ok: best %.2f%% over %d results, %d samples" %
      (best, len(rs), len(s)))
PY
    fail "metrics: $(cat "$RT_DIR/metrics.out")"
cat "$RT_DIR/metrics.out"

# --- export from the store ---------------------------------------------
"$BIN/nader" export --best --store "$RT_STATE" -o "$RT_DIR/best.py" \
    2>"$RT_DIR/export.err" || fail "export --best: $(cat "$RT_DIR/export.err")"
"$BIN/nader" export --store "$RT_STATE" --job 2 --format json \
    >"$RT_DIR/job2.json" || fail "export --job 2"
/usr/bin/python3 - "$RT_DIR/best.py" "$RT_DIR/job2.json" \
    "$RT_DIR/results.json" <<'PY' || fail "exported designs"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("best", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
rs = json.load(open(sys.argv[3]))["results"]
best = max(rs, key=lambda r: r["final_valid_acc"])
net = m.Network()
n = sum(p.numel() for p in net.parameters())
assert n == best["params"], (n, best)
assert "at base width %d with 1 cells" % best["width"] in m.__doc__.replace(
    "\n", " "), m.__doc__
job2 = [r for r in rs if r["job"] == 2][0]
j = json.load(open(sys.argv[2]))
assert j["params"] == job2["params"] and j["width"] == job2["width"], j
assert j["cells_per_stage"] == 1
print("export ok: best is job %d (%d parameters)" % (best["job"], n))
PY
"$BIN/nader" export --store "$RT_STATE" --job 1 --weights \
    "$RT_DIR/w.safetensors" >/dev/null 2>"$RT_DIR/w.err" &&
    fail "weights of a finished job were exported"
grep -q "only while the job runs" "$RT_DIR/w.err" ||
    fail "no reason given: $(cat "$RT_DIR/w.err")"
[[ ! -e $RT_DIR/w.safetensors ]] || fail "a weights file was left behind"

# While a job runs, its latest checkpoint in the store is its weights.
"$BIN/nader" submit "$ROOT/tests/integration/data/tiny.txt" \
    --state "$RT_STATE" --epochs 500 --width 8 --cells 1 --batch 16 \
    --seeds 5 --tag long >>"$RT_DIR/submit.out" 2>&1 || fail "submit long"
for i in $(seq 1 300); do
    n=$("$BIN/nader" status --state "$RT_STATE" --json --timeout 5 |
        rt_json 'sum(1 for w in j["workers"] for d in w["devices"]
                     if d.get("job") == 4 and d.get("epoch", -1) >= 1)')
    [[ $n == 1 ]] && break
    sleep 0.2
done
[[ $n == 1 ]] || fail "the long job never finished two epochs"
"$BIN/nader" export --store "$RT_STATE" --job 4 -o "$RT_DIR/long.py" \
    --weights "$RT_DIR/long.safetensors" 2>"$RT_DIR/long.err" ||
    fail "weights from the store: $(cat "$RT_DIR/long.err")"
"$BIN/nader" cancel 4 --state "$RT_STATE" >/dev/null || fail "cancel"
/usr/bin/python3 - "$RT_DIR/long.py" "$RT_DIR/long.safetensors" <<'PY' ||
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("long", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
net = m.Network()
meta = m.load_safetensors(net, sys.argv[2])
assert meta["format"] == "nader-weights", meta
assert all(torch.isfinite(t).all() for t in net.state_dict().values())
bn = [k for k in net.state_dict() if k.endswith("running_var")]
assert bn and any((net.state_dict()[k] != 1).any() for k in bn), \
    "BN statistics untouched: these are not trained weights"
print("weights of running job 4 from its checkpoint: %d tensors" %
      len(net.state_dict()))
PY
    fail "the weights from the store do not load"

# --- the report, in a browser --------------------------------------------
"$BIN/nader" report "$RT_STATE" --tag demo -o "$RT_DIR/report.html" ||
    fail "nader report"
if command -v chromium >/dev/null; then
    chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$RT_DIR/chrome" --virtual-time-budget=10000 \
        --dump-dom "file://$RT_DIR/report.html" >"$RT_DIR/dom.html" \
        2>"$RT_DIR/chrome.log" || fail "chromium"
    grep -q '<body data-rendered="4">' "$RT_DIR/dom.html" ||
        fail "report not drawn: $(grep -o '<body[^>]*>' "$RT_DIR/dom.html")"
    [[ $(grep -o '<tr>' "$RT_DIR/dom.html" | wc -l) == 4 ]] ||
        fail "the report's table does not list 3 designs"
    echo "report ok: drawn in chromium"
else
    echo "report written; chromium is not installed, so not rendered"
fi
echo "ok: metrics, export and report of a running cluster"
