#!/usr/bin/env bash
# An independent load generator's view of ingestion: starts BINARY on a fresh SQLite database
# (or, with --postgres URL, a fresh PostgreSQL database made on that server and dropped after),
# logging as in production (a line per request, into a file beside the database; RUST_LOG=warn
# in the environment leaves them out),
# then runs wrk against /healthz and against POST /maestro/v4/alerts (distinct extRefs), and
# prints wrk's figures, the server's CPU per accepted alert and, on PostgreSQL, the CPU of the
# machine's `postgres` processes per accepted alert. With --put, a third run of as long PUTs
# updates of the alerts the POST run created, each with a new price (benches/wrk/alerts_put.lua).
# With --keep-log FILE the server's log is kept there (`benches/wrk/slow_requests.py FILE`
# lists the episodes of slow requests). With --scattered-ext-refs each alert's extRef jumps
# across the range as a partner's random UUIDs do (each insert on its own page of the extRef
# index) instead of counting up (benches/wrk/alerts_shared.lua). With --block-trace (root and
# perf, from Debian's linux-perf) the block layer is traced meanwhile and the requests the device
# held over 20 ms are listed with their times as slow_requests.py gives them
# (benches/disk/block_stalls.py): a stall of the disk's own, told from one of the server's.
#
#   benches/wrk/run.sh [--postgres URL] [--put] [--keep-log FILE] [--scattered-ext-refs] [--block-trace] target/release/maestro [THREADS] [CONNECTIONS] [DURATION]
#   benches/wrk/run.sh /tmp/maestro-before 2 64 10s
#   benches/wrk/run.sh --postgres postgres://postgres@127.0.0.1:5432/postgres target/release/maestro
set -euo pipefail
postgres=
keep_log=
put=
block_trace=
# Only the option decides, not a variable left in the caller's environment.
export EXT_REFS=counting
while true; do
    case "${1:-}" in
        --postgres) postgres=$2; shift 2 ;;
        --keep-log) keep_log=$(realpath -m "$2"); shift 2 ;;
        --put) put=1; shift ;;
        --scattered-ext-refs) export EXT_REFS=scattered; shift ;;
        --block-trace) block_trace=1; shift ;;
        *) break ;;
    esac
done
binary=$(realpath "$1")
threads=${2:-2}
connections=${3:-64}
duration=${4:-10s}
here=$(cd "$(dirname "$0")" && pwd)
fixture="$here/../../tests/fixtures/groundspan_post.json"
dir=$(mktemp -d)
database=
tracer=
cleanup() {
    [ -n "$tracer" ] && kill -INT "$tracer" 2>/dev/null
    kill "$server" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ -n "$database" ]; then
        psql -q "$postgres" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
    fi
    if [ -n "$keep_log" ] && [ -f "$dir/server.log" ]; then
        mv "$dir/server.log" "$keep_log"
    fi
    rm -rf "$dir"
}
server=
trap cleanup EXIT
cd "$dir"

if [ -n "$postgres" ]; then
    database="maestro_wrk_$$"
    psql -q "$postgres" -c "CREATE DATABASE $database"
    export MAESTRO_DATABASE_URL="${postgres%/*}/$database"
    MAESTRO_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
    export MAESTRO_MASTER_KEY
fi

# CPU seconds (user + system) of a process, or of every process named `postgres`.
cpu_of() {
    awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%.2f\n", t / 100 }' "$@" 2>/dev/null
}
postgres_cpu() {
    # shellcheck disable=SC2046
    cpu_of $(grep -l '^[0-9]* (postgres) ' /proc/[0-9]*/stat 2>/dev/null) </dev/null
}

if [ -n "$block_trace" ]; then
    # perf's clock is the monotonic one; block_stalls.py puts it on the log's wall clock.
    clock_offset=$(python3 -c 'import time; print(time.clock_gettime(time.CLOCK_REALTIME) - time.clock_gettime(time.CLOCK_MONOTONIC))')
    perf record -q -a -k monotonic -e block:block_rq_issue,block:block_rq_complete -o blk.data \
        >/dev/null 2>&1 &
    tracer=$!
fi

port=$((20000 + RANDOM % 20000))
# The server logs as in production: a JSON line per request, into a file on this disk.
"$binary" serve --listen "127.0.0.1:$port" 2>server.log &
server=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

TOKEN=$("$binary" token issue --type company --subject b7d12989-0489-471a-81cd-175f8b78afa5 \
    --app groundspan --scope maestro.alerts.writeonly --ttl 3600 2>/dev/null)
export TOKEN
export BODY="$dir/body.json"
sed -e "s/\"extRef\": *\"[^\"]*\"/\"extRef\":\"__EXTREF__\"/" \
    -e "s/2025-08-19T10:00:00Z/$(date -u +%Y-%m-%dT%H:%M:%SZ)/" \
    -e "s/2025-12-31T23:59:59Z/$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)/" \
    "$fixture" > "$BODY"
grep -q __EXTREF__ "$BODY"

echo "== GET /healthz (wrk -t$threads -c$connections -d$duration)"
wrk -t"$threads" -c"$connections" -d"$duration" --latency "http://127.0.0.1:$port/healthz" \
    | grep -E "Requests/sec|99%|50%|Latency|Non-2xx|Socket"
# Runs wrk with the script $2 and prints its figures, the server's CPU per request and, on
# PostgreSQL, that of the `postgres` processes.
measure() {
    echo "== $1 (wrk -t$threads -c$connections -d$duration)"
    local server_before server_after postgres_before postgres_after requests
    server_before=$(cpu_of "/proc/$server/stat")
    [ -n "$postgres" ] && postgres_before=$(postgres_cpu)
    wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$here/$2" \
        "http://127.0.0.1:$port" | tee wrk.out \
        | grep -E "Requests/sec|99%|50%|Latency|Non-2xx|Socket|p50|non-2xx"
    server_after=$(cpu_of "/proc/$server/stat")
    requests=$(awk '/requests in/ { print $1 }' wrk.out)
    awk -v b="$server_before" -v a="$server_after" -v n="$requests" \
        'BEGIN { printf "server CPU per request: %.0f µs\n", (a - b) * 1e6 / n }'
    if [ -n "$postgres" ]; then
        postgres_after=$(postgres_cpu)
        awk -v b="$postgres_before" -v a="$postgres_after" -v n="$requests" \
            'BEGIN { printf "PostgreSQL CPU per request: %.0f µs\n", (a - b) * 1e6 / n }'
    fi
}

export CREATED="$dir/created.txt"
measure "POST /maestro/v4/alerts" alerts.lua
if [ -n "$put" ]; then
    # The first price of the alerts' metadata changes with each update.
    export PUT_BODY="$dir/put_body.json"
    export IN_FLIGHT=$(((connections + threads - 1) / threads))
    sed -e '0,/"amount": *[0-9.]*/s//"amount": __PRICE__/' "$BODY" > "$PUT_BODY"
    grep -q __PRICE__ "$PUT_BODY"
    measure "PUT /maestro/v4/alerts, updates of those alerts" alerts_put.lua
fi
if [ -n "$block_trace" ]; then
    kill -INT "$tracer"
    wait "$tracer" || true
    tracer=
    echo "== the device's requests held over 20 ms (times from the first POST)"
    perf script -i blk.data 2>/dev/null \
        | OFFSET=$clock_offset python3 "$here/../disk/block_stalls.py" 20 server.log
fi
