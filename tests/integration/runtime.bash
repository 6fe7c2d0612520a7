# runtime.bash - helpers for the runtime's integration tests (sourced,
# not run: tests/run.sh runs *.sh only).
#
# Every test gets its own folder under mktemp -d and its own TCP ports
# (chosen free by the OS), and kills every process it started when it
# exits, however it exits.

set -u
RT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${NADER_BIN:-$RT_ROOT/${BUILD:-build}}
# Scratch under this checkout's build folder (not a shared /tmp that
# other sessions may tidy), unless its path is too long for the admin
# socket's name (Unix sockets take about 100 bytes).
mkdir -p "$BIN/test-tmp" 2>/dev/null
RT_DIR=$(mktemp -d "$BIN/test-tmp/rt.XXXXXX" 2>/dev/null)
if [[ -z $RT_DIR || ${#RT_DIR} -gt 60 ]]; then
    [[ -n $RT_DIR ]] && rmdir "$RT_DIR"
    RT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/nader-rt.XXXXXX")
fi
RT_PIDS=()

rt_cleanup() {
    local p
    for p in "${RT_PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null
    done
    for p in "${RT_PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    if [[ ${RT_KEEP:-0} == 1 ]]; then
        echo "kept $RT_DIR"
    else
        rm -rf "$RT_DIR"
    fi
}
trap rt_cleanup EXIT

fail() {
    echo "FAIL: $*"
    for f in "$RT_DIR"/*.log; do
        [[ -f $f ]] || continue
        echo "---- $(basename "$f") (last 30 lines)"
        tail -n 30 "$f"
    done
    exit 1
}

# A TCP port that is free now, taken below the kernel's range of
# ephemeral ports (ip_local_port_range), so that the outgoing connection
# of some other process cannot take it before the daemon binds it.
rt_port() {
    /usr/bin/python3 -c 'import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
hi = min(lo, 32768) if lo > 11000 else 65536
for _ in range(1000):
    p = random.randrange(10000, hi)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
else:
    raise SystemExit("no free port below the ephemeral range")'
}

# rt_coordinator NAME CONFIG: start (or restart) a coordinator; its pid
# goes to RT_COORD and its log to $RT_DIR/NAME.log.  Waits until its
# admin socket answers.
rt_coordinator() {
    local name=$1 cfg=$2 i
    "$BIN/nader-coordinator" --config "$cfg" >>"$RT_DIR/$name.log" 2>&1 &
    RT_COORD=$!
    RT_PIDS+=("$RT_COORD")
    for i in $(seq 1 100); do
        if "$BIN/nader" status --state "$RT_STATE" --timeout 0.5 \
            >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$RT_COORD" 2>/dev/null || fail "coordinator $name died"
        sleep 0.1
    done
    fail "coordinator $name did not answer"
}

# rt_worker NAME ARGS...: start a worker; its pid is RT_LAST.
rt_worker() {
    local name=$1
    shift
    "$BIN/nader-worker" --name "$name" "$@" >>"$RT_DIR/$name.log" 2>&1 &
    RT_LAST=$!
    RT_PIDS+=("$RT_LAST")
}

# rt_json EXPR: evaluate a Python expression over the JSON on stdin (as j).
rt_json() {
    /usr/bin/python3 -c "import json, sys
j = json.load(sys.stdin)
print($1)"
}

# rt_status_field EXPR: the field of `nader status --json`.
rt_status() {
    "$BIN/nader" status --state "$RT_STATE" --json --timeout 5 | rt_json "$1"
}

# rt_wait_results N SECONDS: until N results are kept.
rt_wait_results() {
    local want=$1 secs=$2 n=0 i
    for i in $(seq 1 $((secs * 5))); do
        n=$(rt_status 'j["results"]["total"]' 2>/dev/null || echo 0)
        [[ $n -ge $want ]] && return 0
        sleep 0.2
    done
    fail "only $n of $want results after $secs s"
}

# rt_config FILE PORT_WORKERS PORT_STATUS [extra YAML lines...]
rt_config() {
    local file=$1 pw=$2 ps=$3
    shift 3
    {
        echo "state_dir: $RT_STATE"
        echo "workers.endpoint: tcp://127.0.0.1:$pw"
        echo "status.endpoint: tcp://127.0.0.1:$ps"
        echo "heartbeat: {interval: 200ms, timeout: 1500ms}"
        echo "jobs.reattach_grace: 2s"
        printf '%s\n' "$@"
    } >"$file"
}

# A tiny valid design (the residual example of the repository).
rt_design() {
    echo "$RT_ROOT/examples/blocks/resnet_basic.txt"
}
