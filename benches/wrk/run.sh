#!/usr/bin/env bash
# An independent load generator's view of ingestion: starts BINARY on a fresh SQLite database
# (or the PostgreSQL URL in MAESTRO_DATABASE_URL, with MAESTRO_MASTER_KEY), then runs wrk
# against /healthz and against POST /maestro/v4/alerts (distinct extRefs), and prints wrk's
# figures.
#
#   benches/wrk/run.sh target/release/maestro [THREADS] [CONNECTIONS] [DURATION]
#   benches/wrk/run.sh /tmp/maestro-before 2 64 10s
set -euo pipefail
binary=$(realpath "$1")
threads=${2:-2}
connections=${3:-64}
duration=${4:-10s}
here=$(cd "$(dirname "$0")" && pwd)
fixture="$here/../../tests/fixtures/groundspan_post.json"
dir=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"

port=$((20000 + RANDOM % 20000))
RUST_LOG=warn "$binary" serve --listen "127.0.0.1:$port" 2>server.log &
server=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

export TOKEN=$("$binary" token issue --type company --subject b7d12989-0489-471a-81cd-175f8b78afa5 \
    --app groundspan --scope maestro.alerts.writeonly --ttl 3600 2>/dev/null)
export BODY="$dir/body.json"
sed -e "s/\"extRef\": *\"[^\"]*\"/\"extRef\":\"__EXTREF__\"/" \
    -e "s/2025-08-19T10:00:00Z/$(date -u +%Y-%m-%dT%H:%M:%SZ)/" \
    -e "s/2025-12-31T23:59:59Z/$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)/" \
    "$fixture" > "$BODY"
grep -q __EXTREF__ "$BODY"

echo "== GET /healthz (wrk -t$threads -c$connections -d$duration)"
wrk -t"$threads" -c"$connections" -d"$duration" --latency "http://127.0.0.1:$port/healthz" \
    | grep -E "Requests/sec|99%|50%|Latency|Non-2xx|Socket"
echo "== POST /maestro/v4/alerts (wrk -t$threads -c$connections -d$duration)"
wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$here/alerts.lua" \
    "http://127.0.0.1:$port" | grep -E "Requests/sec|99%|50%|Latency|Non-2xx|Socket|p50|non-2xx"
