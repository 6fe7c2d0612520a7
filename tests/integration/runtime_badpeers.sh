#!/usr/bin/env bash
# runtime_badpeers.sh - a coordinator under bad input keeps serving, logs
# each offence once, and its state does not change.
#
# Offences: a ZeroMQ frame of random bytes, a frame over
# limits.max_message, one over twice that (cut by ZeroMQ), a Lease sent by
# a "worker", a Result before Hello, another protocol version, a
# two-frame message, a Hello without a name; on the status socket: not
# JSON, not an object, an unknown op, a change without authorisation, a
# request over status.max_request; last, raw random bytes on the worker
# port.  About 10 s.
# GARBAGE_SEED=N repeats one run's random bytes (a failure shows the
# seed, in garbage.log).
source "$(dirname "$0")/runtime.bash"

RT_STATE=$RT_DIR/state
PW=$(rt_port)
PS=$(rt_port)
rt_config "$RT_DIR/c.yaml" "$PW" "$PS" "limits.max_message: 1MiB" \
    "status.max_request: 64KiB"
rt_coordinator coord "$RT_DIR/c.yaml"
rt_worker w1 --connect "tcp://127.0.0.1:$PW" \
    --instant-results-for-load-tests
"$BIN/nader" submit "$(rt_design)" --state "$RT_STATE" --epochs 2 \
    --seeds 1,2,3,4,5,6,7,8,9,10 >/dev/null || fail "submit"
rt_wait_results 10 20
"$BIN/nader" results --store "$RT_STATE" --audit >"$RT_DIR/before.json" ||
    fail "store inconsistent before"

P="$BIN/tools/nader_peer"
EP=tcp://127.0.0.1:$PW
SP=tcp://127.0.0.1:$PS
L=$RT_DIR/coord.log
for k in random oversized huge lease result version frames badhello; do
    "$P" frame "$EP" $k >"$RT_DIR/peer-$k.out" || fail "peer $k"
done
"$P" status "$SP" 'this is not json' >"$RT_DIR/s1.out"
"$P" status "$SP" '[1, 2, 3]' >"$RT_DIR/s2.out"
"$P" status "$SP" '{"op": "explode"}' >"$RT_DIR/s3.out"
"$P" status "$SP" '{"op": "set", "key": "jobs.paused", "value": true}' \
    >"$RT_DIR/s4.out"
head -c 100000 /dev/zero | tr '\0' 'x' >"$RT_DIR/big.txt"
"$P" status "$SP" "$(cat "$RT_DIR/big.txt")" >"$RT_DIR/s5.out"
sleep 0.5

kill -0 "$RT_COORD" 2>/dev/null || fail "the coordinator died"
grep -q 'reject 2' "$RT_DIR/peer-lease.out" || fail "lease not rejected"
grep -q 'reject 0' "$RT_DIR/peer-result.out" || fail "no hello-first"
grep -q 'reject 1' "$RT_DIR/peer-version.out" || fail "no bad-version"
grep -q 'not a JSON object\|is not a JSON' "$RT_DIR/s1.out" ||
    fail "garbage JSON not refused: $(cat "$RT_DIR/s1.out")"
grep -q 'not an object' "$RT_DIR/s2.out" || fail "array not refused"
grep -q 'unknown op' "$RT_DIR/s3.out" || fail "unknown op not refused"
grep -q 'changes the coordinator' "$RT_DIR/s4.out" ||
    fail "unauthorised set not refused: $(cat "$RT_DIR/s4.out")"
grep -q 'max_request' "$RT_DIR/s5.out" || fail "big request not refused"

# Each offence once in the log.
once() {
    local n
    n=$(grep -c -- "$1" "$L")
    [[ $n -eq 1 ]] || fail "'$1' logged $n times, expected once"
}
once 'malformed message (300 bytes)'
once 'over the limit of 1048576 (limits.max_message)'
once 'sent a lease, which only the coordinator sends'
once 'sent a result before saying hello'
once 'protocol version 99'
once 'sent a message of 2 frames'
once 'hello without a worker name'
once 'over status.max_request'

# Raw random bytes, last: they sometimes read as ZeroMQ's oldest framing
# (ZMTP 1.0, no greeting) and so as messages, which the coordinator drops
# and logs like any others, so they come after the count above.
"$P" garbage 127.0.0.1 "$PW" 4000 ${GARBAGE_SEED:-} \
    >"$RT_DIR/garbage.log" 2>&1 || fail "garbage peer"
# Every bad connection's end is logged, the garbage's too (the huge
# frame's is the only trace it leaves: ZeroMQ cuts it below the
# messages).
for _ in $(seq 50); do
    [[ $(grep -c 'connection to workers.endpoint' "$L") -ge 9 ]] && break
    sleep 0.1
done
[[ $(grep -c 'connection to workers.endpoint' "$L") -ge 9 ]] ||
    fail "dropped connections not logged"
kill -0 "$RT_COORD" 2>/dev/null || fail "the coordinator died of garbage"

# Nothing changed: the same jobs and results, and status agrees.
"$BIN/nader" results --store "$RT_STATE" --audit >"$RT_DIR/after.json" ||
    fail "store inconsistent after"
cmp -s "$RT_DIR/before.json" "$RT_DIR/after.json" ||
    fail "state changed: $(diff "$RT_DIR/before.json" "$RT_DIR/after.json")"
[[ $(rt_status 'j["coordinator"]["paused"]') == False ]] ||
    fail "the unauthorised set took effect"

# And it still serves: more jobs go through.
"$BIN/nader" submit "$(rt_design)" --state "$RT_STATE" --epochs 2 \
    --seeds 11,12,13 >/dev/null || fail "submit after"
rt_wait_results 13 20
echo "ok: coordinator served through every bad peer"
