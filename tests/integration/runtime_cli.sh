#!/usr/bin/env bash
# runtime_cli.sh - the daemons' and the client's edges: a design the
# validator refuses, validate-only, live settings that outlive a clean
# (SIGTERM) restart, cancel, a store whose map is full, a second
# coordinator on the same state, bad configurations and worker options,
# and a client with no coordinator to talk to.  About 15 s.
source "$(dirname "$0")/runtime.bash"

RT_STATE=$RT_DIR/state
DESIGN=$(dirname "$0")/data/tiny.txt
PW=$(rt_port)
PS=$(rt_port)
rt_config "$RT_DIR/c.yaml" "$PW" "$PS"
N="$BIN/nader"

# A client with nothing to talk to fails clearly, and soon.
if "$N" status --connect "tcp://127.0.0.1:$PS" --timeout 1 \
    2>"$RT_DIR/e.txt"; then fail "status without a coordinator"; fi
grep -q "no answer within 1.0 s" "$RT_DIR/e.txt" || fail "$(cat "$RT_DIR/e.txt")"

# Bad configurations name the file, line and key.
printf 'heartbeat:\n  intervall: 1s\n' >"$RT_DIR/bad.yaml"
"$BIN/nader-coordinator" --config "$RT_DIR/bad.yaml" 2>"$RT_DIR/e.txt"
[[ $? -eq 2 ]] || fail "bad config: wrong exit code"
grep -q "bad.yaml:2: unknown key 'heartbeat.intervall'" "$RT_DIR/e.txt" ||
    fail "$(cat "$RT_DIR/e.txt")"
"$BIN/nader-coordinator" --check --config "$RT_DIR/c.yaml" >/dev/null ||
    fail "--check refused a good file"

rt_coordinator coord "$RT_DIR/c.yaml"
# A second coordinator on the same state folder is refused.
"$BIN/nader-coordinator" --config "$RT_DIR/c.yaml" \
    --set "workers.endpoint=tcp://127.0.0.1:$(rt_port)" \
    --set "status.endpoint=" --set "status.admin_endpoint=ipc://$RT_DIR/x" \
    2>"$RT_DIR/e.txt" && fail "two coordinators on one store"
grep -q "in use by another coordinator" "$RT_DIR/e.txt" ||
    fail "$(cat "$RT_DIR/e.txt")"

# The validator's lines come back, and nothing is queued.
printf '##broken##\n0:input\n1:output\n2:Conv2d(out_channels=C,kernel_size=3)\n3:Frobnicate\n0->2\n2->3\n3->1\n' >"$RT_DIR/broken.txt"
if "$N" submit "$RT_DIR/broken.txt" --state "$RT_STATE" \
    2>"$RT_DIR/e.txt"; then fail "a broken design was queued"; fi
grep -q "Frobnicate" "$RT_DIR/e.txt" || fail "no validator line: $(cat "$RT_DIR/e.txt")"
"$N" submit "$DESIGN" --state "$RT_STATE" --validate >"$RT_DIR/v.txt" ||
    fail "validate"
grep -q "valid, nothing queued" "$RT_DIR/v.txt" || fail "$(cat "$RT_DIR/v.txt")"
# A stem scale the skeletons do not take is refused by name.
"$N" submit "$DESIGN" --state "$RT_STATE" --validate --stem-scale 3 \
    2>"$RT_DIR/e.txt" && fail "stem_scale 3 accepted"
grep -q "submit: stem_scale 3 is not 1, 2, 4 or 8" "$RT_DIR/e.txt" ||
    fail "$(cat "$RT_DIR/e.txt")"
[[ $(rt_status 'j["queue"]["length"]') == 0 ]] || fail "something queued"

# Live settings: paused survives a clean restart.
"$N" set jobs.paused true --state "$RT_STATE" >/dev/null || fail "set"
"$N" set jobs.max_running 2 --state "$RT_STATE" >/dev/null || fail "set 2"
"$N" set state_dir /tmp --state "$RT_STATE" 2>/dev/null &&
    fail "a non-live key was changed"
"$N" submit "$DESIGN" --state "$RT_STATE" --epochs 1 --seeds 1,2,3,4,5 \
    >/dev/null || fail "submit"
kill -TERM "$RT_COORD"
wait "$RT_COORD"
[[ $? -eq 0 ]] || fail "SIGTERM: exit status not 0"
grep -q "coordinator stopped" "$RT_DIR/coord.log" || fail "no clean stop"
rt_coordinator coord "$RT_DIR/c.yaml"
[[ $(rt_status 'j["coordinator"]["paused"]') == True ]] ||
    fail "paused was lost in the restart"
[[ $(rt_status 'j["coordinator"]["max_running"]') == 2 ]] ||
    fail "max_running was lost"
[[ $(rt_status 'j["jobs"]["queued"]') == 5 ]] || fail "queued jobs lost"

# Cancel one queued job, then let the rest run.
"$N" cancel 3 --state "$RT_STATE" >/dev/null || fail "cancel"
"$N" cancel 3 --state "$RT_STATE" 2>"$RT_DIR/e.txt" && fail "cancel twice"
grep -q "already finished" "$RT_DIR/e.txt" || fail "$(cat "$RT_DIR/e.txt")"
rt_worker w1 --connect "tcp://127.0.0.1:$PW" \
    --instant-results-for-load-tests
W1=$RT_LAST
sleep 1
[[ $(rt_status 'j["results"]["total"]') == 0 ]] || fail "ran while paused"
"$N" set jobs.paused false --state "$RT_STATE" >/dev/null || fail "resume"
rt_wait_results 4 20
[[ $(rt_status 'j["jobs"]["cancelled"]') == 1 ]] || fail "cancel count"
"$N" results --state "$RT_STATE" >"$RT_DIR/r.txt"
[[ $(grep -c "LOAD TEST" "$RT_DIR/r.txt") == 4 ]] ||
    fail "load-test results not marked: $(cat "$RT_DIR/r.txt")"
# A worker stopped with SIGTERM says goodbye.
kill -TERM "$W1"
wait "$W1"
[[ $? -eq 0 ]] || fail "worker: SIGTERM exit status"
for i in $(seq 1 20); do
    grep -q "gone: worker stopping" "$RT_DIR/coord.log" && break
    sleep 0.1
done
grep -q "gone: worker stopping" "$RT_DIR/coord.log" || fail "no goodbye"

# Worker options.
"$BIN/nader-worker" --connect "tcp://127.0.0.1:$PW" --device all \
    --data "$RT_DIR" 2>"$RT_DIR/e.txt" && fail "--device all without GPUs"
grep -q "no CUDA device" "$RT_DIR/e.txt" || fail "$(cat "$RT_DIR/e.txt")"
"$BIN/nader-worker" --connect "tcp://127.0.0.1:$PW" 2>/dev/null
[[ $? -eq 2 ]] || fail "a worker without --data"

# A full store: the change fails with the reason and changes nothing.
RT_STATE=$RT_DIR/small
rt_config "$RT_DIR/s.yaml" "$(rt_port)" "$(rt_port)" \
    "store: {map_size: 1MiB, map_size_max: 1MiB}"
rt_coordinator small "$RT_DIR/s.yaml"
"$N" results --store "$RT_STATE" --audit >"$RT_DIR/before.json"
"$N" submit "$DESIGN" --state "$RT_STATE" --seeds "$(seq -s, 1 10000)" \
    2>"$RT_DIR/e.txt" && fail "10,000 jobs fitted in a 1 MiB map"
grep -q "map is full\|full at store.map_size_max" "$RT_DIR/e.txt" ||
    fail "no reason: $(cat "$RT_DIR/e.txt")"
"$N" results --store "$RT_STATE" --audit >"$RT_DIR/after.json"
cmp -s "$RT_DIR/before.json" "$RT_DIR/after.json" ||
    fail "a failed commit changed the store"
[[ $(rt_status 'j["jobs"]["queued"]') == 0 ]] || fail "jobs in memory"
"$N" submit "$DESIGN" --state "$RT_STATE" --seeds 1 >/dev/null ||
    fail "a small submit after the failure"


# docs/configuration.md is what the key table says.
"$BIN/nader-coordinator" --doc |
    diff -q - "$(dirname "$0")/../../docs/configuration.md" >/dev/null ||
    fail "docs/configuration.md is stale: nader-coordinator --doc > it"
echo "ok: client and daemon edges behave"
