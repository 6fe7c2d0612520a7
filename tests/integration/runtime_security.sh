#!/usr/bin/env bash
# runtime_security.sh - CURVE on the worker and status endpoints: a
# worker whose key is in the allow-list works, one whose key is not is
# refused (logged once) until its key is added (no restart needed);
# anyone with the server key may read the status; changes need an admin
# key (or the local admin socket); a plaintext client gets nothing.
# About 12 s.
source "$(dirname "$0")/runtime.bash"

RT_STATE=$RT_DIR/state
K=$RT_DIR/keys
mkdir -p "$K/workers" "$K/admins"
for n in coordinator good bad admin; do
    "$BIN/nader" keygen "$n" --dir "$K" >/dev/null || fail "keygen $n"
done
[[ $(stat -c %a "$K/good.key") == 600 ]] || fail "key pair not private"
cp "$K/good.pub" "$K/workers/"
cp "$K/admin.pub" "$K/admins/"
PW=$(rt_port)
PS=$(rt_port)
rt_config "$RT_DIR/c.yaml" "$PW" "$PS" "security:" "  curve: true" \
    "  secret_key: $K/coordinator.key" "  worker_keys: $K/workers" \
    "  admin_keys: $K/admins"
rt_coordinator coord "$RT_DIR/c.yaml"
EP=tcp://127.0.0.1:$PW
SP=tcp://127.0.0.1:$PS
rt_worker good --connect "$EP" --key "$K/good.key" \
    --server-key "$K/coordinator.pub" --instant-results-for-load-tests
rt_worker bad --connect "$EP" --key "$K/bad.key" \
    --server-key "$K/coordinator.pub" --instant-results-for-load-tests \
    --timeout 1s --backoff-max 500ms
"$BIN/nader" submit "$(rt_design)" --state "$RT_STATE" --epochs 1 \
    --seeds 1,2,3,4,5,6 >/dev/null || fail "submit on the admin socket"
rt_wait_results 6 20
sleep 2

# Only the good worker joined; the bad one was refused, logged once.
"$BIN/nader" results --state "$RT_STATE" --json |
    rt_json 'set(r["worker"] for r in j["results"])' >"$RT_DIR/w.out"
[[ $(cat "$RT_DIR/w.out") == "{'good'}" ]] ||
    fail "results from $(cat "$RT_DIR/w.out")"
n=$(grep -c "refused: worker key" "$RT_DIR/coord.log")
[[ $n -eq 1 ]] || fail "refusal logged $n times"
grep -q "joined .* as w" "$RT_DIR/bad.log" && fail "the bad worker joined"

# Status over CURVE: readable with a throwaway key; changes refused.
"$BIN/nader" status --connect "$SP" --server-key "$K/coordinator.pub" \
    --json | rt_json 'j["results"]["total"]' >"$RT_DIR/n.out" ||
    fail "status over CURVE"
[[ $(cat "$RT_DIR/n.out") == 6 ]] || fail "status says $(cat "$RT_DIR/n.out")"
if "$BIN/nader" set jobs.paused true --connect "$SP" \
    --server-key "$K/coordinator.pub" 2>"$RT_DIR/set.err"; then
    fail "a change without an admin key was accepted"
fi
grep -q "changes the coordinator" "$RT_DIR/set.err" || fail "wrong refusal"
"$BIN/nader" set jobs.max_running 3 --connect "$SP" --key "$K/admin.key" \
    --server-key "$K/coordinator.pub" >/dev/null ||
    fail "the admin key could not change a limit"
[[ $(rt_status 'j["coordinator"]["max_running"]') == 3 ]] ||
    fail "max_running not set"
# A client without CURVE gets no answer.
if "$BIN/nader" status --connect "$SP" --timeout 1 >/dev/null 2>&1; then
    fail "a plaintext client was answered"
fi

# Adding the bad worker's key lets it in without a restart.
cp "$K/bad.pub" "$K/workers/"
"$BIN/nader" submit "$(rt_design)" --state "$RT_STATE" --epochs 1 \
    --seeds 7,8,9,10,11,12,13,14 >/dev/null || fail "submit 2"
rt_wait_results 14 30
for i in $(seq 1 50); do
    grep -q "joined .* as w" "$RT_DIR/bad.log" && break
    sleep 0.2
done
grep -q "joined .* as w" "$RT_DIR/bad.log" || fail "added key not honoured"
echo "ok: CURVE allow-list, admin keys and plaintext refusal hold"
