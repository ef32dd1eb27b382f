#!/usr/bin/env bash
# An independent view of company-notification deliveries: starts a receiver of another make
# (benches/wrk/receiver.js: Node.js, the plain `http` module, answering 200 and counting) and
# BINARY on a fresh SQLite database (or, with --postgres URL, a fresh PostgreSQL database made on
# that server and dropped after); registers a partner whose postback URL is the receiver and
# subscribes it to itinerary events over HTTP; then has wrk publish distinct company events to
# POST /internal/v1/company-events as fast as the server accepts them for DURATION
# (benches/wrk/company_events.lua). Once the receiver's count stops growing (at most 60 s after
# wrk ends), it prints the events accepted (wrk's 2xx), the postbacks received (distinct
# `webhook-id`s), duplicates, delivered/s during the publishing window and overall, the event →
# delivery latency the receiver saw (from when wrk built the event's request, its time carried in
# the tripId, to the postback's arrival), and CPU per delivery: the server's (intake included) and,
# on PostgreSQL, the machine's `postgres` processes'. With --split, two instances of BINARY share
# the database: wrk publishes to one started with `--role api`, whose events the worker of the
# other (`--role worker`) delivers; the server CPU is theirs together.
#
#   benches/wrk/deliver.sh [--postgres URL] [--split] target/release/maestro [THREADS] [CONNECTIONS] [DURATION]
#   benches/wrk/deliver.sh /tmp/maestro-before 2 64 10s
#   benches/wrk/deliver.sh --postgres postgres://postgres@127.0.0.1:5432/postgres target/release/maestro
#   benches/wrk/deliver.sh --postgres postgres://postgres@127.0.0.1:5432/postgres --split target/release/maestro
#   MAESTRO_DELIVERY_CONCURRENCY=64 benches/wrk/deliver.sh target/release/maestro   # server settings
set -euo pipefail
postgres=
split=
while :; do
    case ${1:-} in
        --postgres) postgres=$2; shift 2 ;;
        --split) split=1; shift ;;
        *) break ;;
    esac
done
if [ $# -lt 1 ]; then
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
fi
binary=$(realpath "$1")
threads=${2:-2}
connections=${3:-64}
duration=${4:-10s}
here=$(cd "$(dirname "$0")" && pwd)
templates="$here/../../partners/groundspan/templates/NOTIFY_TEMPLATE_ID"
for tool in wrk node curl; do
    command -v "$tool" >/dev/null || { echo "deliver.sh needs $tool" >&2; exit 2; }
done
[ -z "$postgres" ] || command -v psql >/dev/null || { echo "deliver.sh needs psql" >&2; exit 2; }

# DURATION as wrk takes it (10, 10s, 2m, 1h) in seconds, for the time-outs.
case $duration in
    *h) seconds=$((${duration%h} * 3600)) ;;
    *m) seconds=$((${duration%m} * 60)) ;;
    *s) seconds=${duration%s} ;;
    *) seconds=$duration ;;
esac

export COMPANY=b7d12989-0489-471a-81cd-175f8b78afa5
admin_subject=5e1c1b4a-93a4-4c4e-9d43-1f1d0b7e0a11
partner=benchpartner

dir=$(mktemp -d)
database=
server=
worker=
receiver=
# Stops a process: SIGTERM, then SIGKILL if it is still there after 10 s.
stop() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop "$server"
    stop "$worker"
    stop "$receiver"
    if [ -n "$database" ]; then
        timeout 30 psql -q "$postgres" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"

if [ -n "$postgres" ]; then
    database="maestro_wrk_deliver_$$"
    timeout 30 psql -q "$postgres" -c "CREATE DATABASE $database"
    export MAESTRO_DATABASE_URL="${postgres%/*}/$database"
else
    export MAESTRO_DATABASE_URL="sqlite://$dir/bench.db"
fi
if [ -z "${MAESTRO_MASTER_KEY:-}" ]; then
    MAESTRO_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
    export MAESTRO_MASTER_KEY
fi
# The receiver listens on the loopback address, which the SSRF guard refuses by default.
export MAESTRO_DELIVERY_ALLOWED_SUBNETS=${MAESTRO_DELIVERY_ALLOWED_SUBNETS:-127.0.0.0/8}
# No load balancer to drain: stop at once.
export MAESTRO_DRAIN_DELAY=${MAESTRO_DRAIN_DELAY:-0s}

# CPU seconds (user + system) of a process, or of every process named `postgres`.
cpu_of() {
    awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%.2f\n", t / 100 }' "$@" 2>/dev/null
}
postgres_cpu() {
    # shellcheck disable=SC2046
    cpu_of $(grep -l '^[0-9]* (postgres) ' /proc/[0-9]*/stat 2>/dev/null) </dev/null
}
# A number from the receiver's JSON figures: `field NAME FILE`.
field() {
    sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2"
}
now_ms() {
    date +%s%3N
}

# 1. The receiver, on a free port it reports in a file.
node "$here/receiver.js" "$dir/receiver.port" >receiver.log 2>&1 &
receiver=$!
for _ in $(seq 100); do
    [ -s receiver.port ] && break
    kill -0 "$receiver" 2>/dev/null || break
    sleep 0.1
done
if [ ! -s receiver.port ]; then
    echo "the receiver did not start:" >&2
    cat receiver.log >&2
    exit 1
fi
receiver_port=$(cat receiver.port)
stats() {
    curl -sf --max-time 10 "http://127.0.0.1:$receiver_port/stats$1" -o stats.json
}

# 2. The database, the partner (pointed at the receiver), the tokens.
timeout 120 "$binary" migrate >cli.log 2>&1 || { cat cli.log >&2; exit 1; }
mkdir -p "$partner/templates/NOTIFY_TEMPLATE_ID"
cp "$templates"/* "$partner/templates/NOTIFY_TEMPLATE_ID/"
cat >"$partner/partner.toml" <<EOF
id = "$partner"
name = "Bench"
allowed_url_domains = ["groundspan.com", "concur.com"]
postback_url = "http://127.0.0.1:$receiver_port/postback"
postback_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EOF
# Runs the CLI, its diagnostics in cli.log (printed if it fails); its output on stdout.
cli() {
    timeout 60 "$binary" "$@" 2>>cli.log || { cat cli.log >&2; return 1; }
}
cli partner import "$dir/$partner" >/dev/null
admin=$(cli token issue --type user --subject "$admin_subject" --app "$partner" \
    --company "$COMPANY" --role CompanyAdministrator --ttl 86400)
TOKEN=$(cli token issue --type app --subject bench-producer --app bench-producer \
    --scope maestro.events.publish --ttl 86400)
export TOKEN

# 3. The server (with --split, an API instance and a worker instance), its output in a file; it
# must answer /healthz within 10 s.
free_port() {
    node -e 'const s = require("net").createServer();
        s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
# Waits for `/healthz` on PORT of the process PID whose output is in LOG.
healthy() {
    local port=$1 pid=$2 log=$3
    for _ in $(seq 100); do
        curl -sf --max-time 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "the server did not answer /healthz within 10 s; its output:" >&2
    else
        echo "the server exited before answering /healthz; its output:" >&2
    fi
    cat "$log" >&2
    exit 1
}
port=$(free_port)
if [ -n "$split" ]; then
    "$binary" serve --role api --listen "127.0.0.1:$port" >server.log 2>&1 &
    server=$!
    worker_port=$(free_port)
    "$binary" serve --role worker --listen "127.0.0.1:$worker_port" >worker.log 2>&1 &
    worker=$!
    healthy "$worker_port" "$worker" worker.log
else
    "$binary" serve --listen "127.0.0.1:$port" >server.log 2>&1 &
    server=$!
fi
healthy "$port" "$server" server.log
# The server's CPU seconds: both instances' with --split.
server_cpu() {
    if [ -n "$worker" ]; then
        cpu_of "/proc/$server/stat" "/proc/$worker/stat"
    else
        cpu_of "/proc/$server/stat"
    fi
}

# 4. The subscription, over HTTP as a company administrator.
status=$(curl -s --max-time 10 -o subscribe.out -w '%{http_code}' -X POST \
    "http://127.0.0.1:$port/api/company/v1.0/subscribe?type=itinerary" \
    -H "Authorization: OAuth $admin")
if [ "$status" != 200 ]; then
    echo "subscribing answered $status:" >&2
    cat subscribe.out >&2
    exit 1
fi

# 5. wrk publishes for DURATION.
echo "== POST /internal/v1/company-events (wrk -t$threads -c$connections -d$duration)${split:+, an API instance and a worker instance}, receiver: node $(node --version)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
server_before=$(server_cpu)
receiver_before=$(cpu_of "/proc/$receiver/stat")
postgres_before=
[ -z "$postgres" ] || postgres_before=$(postgres_cpu)
start=$(now_ms)
timeout $((seconds + 60)) wrk -t"$threads" -c"$connections" -d"$duration" --timeout 10s --latency \
    -s "$here/company_events.lua" "http://127.0.0.1:$port" >wrk.out
end=$(now_ms)
grep -E "requests in|Requests/sec|2xx|non-2xx|socket errors|publish latency" wrk.out
accepted=$(awk '/^2xx responses:/ { print $3 }' wrk.out)
accepted=${accepted:-0}

# 6. Until the receiver's count stops growing: no new postback for 1 s once every accepted
# event is delivered (wrk does not count the answers to the requests still in flight when it
# stops, at most one per connection, but the server accepted and delivers those events too), or
# for 3 s before that; at most 60 s after wrk ended.
last_count=-1
steady=0
waited=0
timed_out=
while :; do
    stats "" || { echo "the receiver did not answer" >&2; exit 1; }
    count=$(field requests stats.json)
    distinct=$(field distinct stats.json)
    if [ "$count" = "$last_count" ]; then
        steady=$((steady + 1))
        [ "$steady" -ge 6 ] && break
        [ "$steady" -ge 2 ] && [ "$distinct" -ge "$accepted" ] && break
    else
        steady=0
        last_count=$count
    fi
    if [ "$waited" -ge 120 ]; then
        timed_out=1
        break
    fi
    sleep 0.5
    waited=$((waited + 1))
done
server_after=$(server_cpu)
receiver_after=$(cpu_of "/proc/$receiver/stat")
postgres_after=
[ -z "$postgres" ] || postgres_after=$(postgres_cpu)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
stats "?from=$start&to=$end" || { echo "the receiver did not answer" >&2; exit 1; }
[ -z "$timed_out" ] || echo "(stopped waiting 60 s after wrk ended; the count was still growing)"

# 7. The figures.
awk -v accepted="$accepted" -v start="$start" -v end="$end" \
    -v requests="$(field requests stats.json)" -v distinct="$(field distinct stats.json)" \
    -v duplicates="$(field duplicates stats.json)" -v without_id="$(field without_webhook_id stats.json)" \
    -v without_time="$(field without_publish_time stats.json)" \
    -v in_window="$(field in_window stats.json)" -v last="$(field last_arrival_ms stats.json)" \
    -v p50="$(field p50 stats.json)" -v p99="$(field p99 stats.json)" -v max="$(field max stats.json)" \
    -v sb="$server_before" -v sa="$server_after" -v pb="$postgres_before" -v pa="$postgres_after" \
    -v rb="$receiver_before" -v ra="$receiver_after" \
    -v load_before="$load_before" -v load_after="$load_after" '
BEGIN {
    window = (end - start) / 1000
    per = distinct > 0 ? distinct : 1
    printf "events accepted (2xx): %d in %.1f s (%.0f/s)\n", accepted, window, accepted / window
    printf "postbacks received: %d distinct webhook-ids (%d requests), %d duplicates, ",
        distinct, requests, duplicates
    if (distinct >= accepted)
        printf "none missing (%d beyond the 2xx wrk counted: answers still in flight when it stopped)\n",
            distinct - accepted
    else
        printf "%d missing\n", accepted - distinct
    if (without_id + without_time > 0)
        printf "  without a webhook-id: %d; without a publish time in <TripId>: %d\n",
            without_id, without_time
    printf "delivered/s: %.0f during the publishing window (%d arrived in it), %.0f overall (first publish to last arrival, %.1f s)\n",
        in_window / window, in_window,
        last != "" ? distinct / ((last - start) / 1000) : 0, last != "" ? (last - start) / 1000 : 0
    printf "event -> delivery latency (receiver): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", p50, p99, max
    printf "server CPU per delivery: %.0f µs (%.2f s, intake included)\n", (sa - sb) * 1e6 / per, sa - sb
    if (pb != "")
        printf "PostgreSQL CPU per delivery: %.0f µs (%.2f s)\n", (pa - pb) * 1e6 / per, pa - pb
    printf "receiver CPU: %.2f s (it shares the machine with the server)\n", ra - rb
    printf "load average before %s / after %s\n", load_before, load_after
}'
