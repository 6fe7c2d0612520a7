#!/usr/bin/env bash
# deploy_recipe.sh - the Compose recipe, run without Docker: the key
# pairs are made by the very script of docker-compose.yml's keys service,
# the coordinator runs deploy/config/coordinator.yaml (CURVE on, metrics
# on; only paths and ports moved into a temporary folder with --set), and
# a CPU worker runs with the flags of the worker-cpu service.  Then
#   - the health checks, as the services run them (NADER_CONNECT and
#     NADER_SERVER_KEY from the environment), pass for the coordinator
#     and the worker;
#   - a job submitted on the admin socket is trained by that worker;
#   - a worker whose key is not in the allow-list is kept out (its health
#     check fails) and a client without the server key gets no answer.
# About 15 s on 2 cores.
source "$(dirname "$0")/runtime.bash"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=$BIN:$PATH        # as in the images: nader on PATH
KEYS=$RT_DIR/keys
RT_STATE=$RT_DIR/nader-state
DATA=$RT_DIR/data
/usr/bin/python3 "$ROOT/tests/py/fixtures/make_colours.py" "$DATA" \
    >/dev/null || fail "making the data set"

# The service definitions, with container paths mapped to this folder.
PW=$(rt_port)
PS=$(rt_port)
/usr/bin/python3 - "$ROOT/docker-compose.yml" "$RT_DIR" "$KEYS" "$DATA" \
    "$PW" "$PS" <<'PY' || fail "reading docker-compose.yml"
import shlex, sys, yaml
compose, out, keys, data, pw, ps = sys.argv[1:]
s = yaml.safe_load(open(compose))["services"]
def local(text):
    return (text.replace("/etc/nader/keys", keys)
            .replace("tcp://coordinator:5555", "tcp://127.0.0.1:" + pw)
            .replace("tcp://coordinator:5556", "tcp://127.0.0.1:" + ps)
            .replace("/scratch", out + "/scratch").replace("/data", data))
open(out + "/keys.sh", "w").write(local(s["keys"]["command"][0]) + "\n")
w = s["worker-cpu"]
open(out + "/worker.args", "w").write(
    " ".join(shlex.quote(local(a)) for a in w["command"]) + "\n")
env = w["environment"]
open(out + "/worker.env", "w").write(
    "".join("export %s=%s\n" % (k, shlex.quote(local(v)))
            for k, v in env.items()))
open(out + "/health.sh", "w").write(
    local(w["healthcheck"]["test"][1].replace("$$", "$")) + "\n")
PY
mkdir -p "$KEYS" "$RT_DIR/scratch"
sh -e "$RT_DIR/keys.sh" >"$RT_DIR/keys.log" 2>&1 ||
    fail "the keys service: $(cat "$RT_DIR/keys.log")"
for f in coordinator.key coordinator.pub worker.key worker.pub \
    workers/worker.pub; do
    [[ -s $KEYS/$f ]] || fail "the keys service made no $f"
done

"$BIN/nader-coordinator" --config "$ROOT/deploy/config/coordinator.yaml" \
    --set "state_dir=$RT_STATE" \
    --set "workers.endpoint=tcp://127.0.0.1:$PW" \
    --set "status.endpoint=tcp://127.0.0.1:$PS" \
    --set "metrics.address=127.0.0.1:0" \
    --set "security.secret_key=$KEYS/coordinator.key" \
    --set "security.worker_keys=$KEYS/workers" \
    --set "security.admin_keys=$KEYS/admins" \
    >>"$RT_DIR/coord.log" 2>&1 &
RT_COORD=$!
RT_PIDS+=("$RT_COORD")
for i in $(seq 1 100); do
    "$BIN/nader" health --state "$RT_STATE" --timeout 0.5 >/dev/null && break
    kill -0 "$RT_COORD" 2>/dev/null || fail "coordinator died"
    sleep 0.1
done
grep -q "CURVE on" "$RT_DIR/coord.log" || fail "CURVE is not on"

# The worker, as the worker-cpu service starts it (entrypoint: --name
# "$(hostname)"; here a name of its own, as two tests may run at once).
NAME=recipe-$$
eval "set -- $(cat "$RT_DIR/worker.args")"
"$BIN/nader-worker" --name "$NAME" "$@" --threads 1 \
    >>"$RT_DIR/w1.log" 2>&1 &
RT_PIDS+=("$!")

# Health checks with the services' environment.
(
    source "$RT_DIR/worker.env"
    hostname() { echo "$NAME"; }
    for i in $(seq 1 50); do
        # shellcheck disable=SC1091
        source "$RT_DIR/health.sh" >/dev/null && exit 0
        sleep 0.2
    done
    exit 1
) || fail "the worker's health check never passed"
echo "health checks pass over CURVE for the coordinator and $NAME"

"$BIN/nader" submit "$ROOT/tests/integration/data/tiny.txt" \
    --state "$RT_STATE" --epochs 1 --width 8 --cells 1 --batch 16 \
    >"$RT_DIR/submit.out" 2>&1 || fail "submit: $(cat "$RT_DIR/submit.out")"
rt_wait_results 1 90
"$BIN/nader" results --state "$RT_STATE" --json |
    rt_json 'j["results"][0]["worker"]' | grep -qx "$NAME" ||
    fail "the job was not trained by $NAME"

# A worker with a key the coordinator does not know stays out.
"$BIN/nader" keygen stranger --dir "$RT_DIR" >/dev/null
"$BIN/nader-worker" --name "stranger-$$" "$@" --key \
    "$RT_DIR/stranger.key" >>"$RT_DIR/w2.log" 2>&1 &
RT_PIDS+=("$!")
sleep 2
(
    source "$RT_DIR/worker.env"
    "$BIN/nader" health --worker "stranger-$$" --timeout 2 >/dev/null
)
[[ $? == 1 ]] || fail "a worker with an unknown key got in"
NADER_CONNECT=tcp://127.0.0.1:$PS "$BIN/nader" health --timeout 1 \
    >/dev/null
[[ $? == 2 ]] || fail "a client without the server key got an answer"
echo "ok: the Compose recipe's keys, flags and health checks work"
