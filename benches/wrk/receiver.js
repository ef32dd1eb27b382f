// The partner's end of benches/wrk/deliver.sh: a receiver of another make than the server and
// its Rust harness (Node.js, the plain `http` module, no packages). It answers 200 to every
// postback and notes, for each, when it arrived, its `webhook-id` and the publish time that
// benches/wrk/company_events.lua wrote into the event's tripId (`<TripId>PREFIX-N-MICROS</TripId>`,
// MICROS the wall clock in µs when wrk built the request, just before writing it).
//
//   node benches/wrk/receiver.js PORT_FILE
//
// It listens on a free port of 127.0.0.1 and writes the port to PORT_FILE once listening.
// GET /stats[?from=MS&to=MS] answers its figures as JSON (times in ms since the epoch; `from`
// and `to` bound the publishing window, whose distinct deliveries it counts apart). Every other
// request counts as a postback.
'use strict';

const http = require('http');
const fs = require('fs');

const portFile = process.argv[2];
if (!portFile) {
  console.error('usage: node receiver.js PORT_FILE');
  process.exit(2);
}

// Wall clock in ms with a fractional part (the same clock as wrk's gettimeofday).
const now = () => performance.timeOrigin + performance.now();

const seen = new Set();
let requests = 0;
let duplicates = 0;
let withoutId = 0;
let withoutTime = 0;
// Per distinct delivery: arrival time and event → delivery latency (ms).
let arrivals = new Float64Array(1 << 16);
let latencies = new Float64Array(1 << 16);
let distinct = 0;
let measured = 0;

function grow(array) {
  const bigger = new Float64Array(array.length * 2);
  bigger.set(array);
  return bigger;
}

// The publish time (ms) from the notification's `<TripId>…-MICROS</TripId>`, or NaN.
function publishedAt(body) {
  const start = body.indexOf('<TripId>');
  if (start < 0) return NaN;
  const end = body.indexOf('</TripId>', start);
  if (end < 0) return NaN;
  const dash = body.lastIndexOf('-', end);
  if (dash < start) return NaN;
  return Number(body.slice(dash + 1, end)) / 1000;
}

function record(request, body) {
  const at = now();
  requests += 1;
  const id = request.headers['webhook-id'];
  if (!id) {
    withoutId += 1;
    return;
  }
  if (seen.has(id)) {
    duplicates += 1;
    return;
  }
  seen.add(id);
  if (distinct === arrivals.length) arrivals = grow(arrivals);
  arrivals[distinct++] = at;
  const sent = publishedAt(body);
  if (Number.isFinite(sent)) {
    if (measured === latencies.length) latencies = grow(latencies);
    latencies[measured++] = at - sent;
  } else {
    withoutTime += 1;
  }
}

function stats(url) {
  const from = Number(url.searchParams.get('from'));
  const to = Number(url.searchParams.get('to'));
  const sorted = latencies.slice(0, measured).sort();
  const percentile = (p) =>
    measured === 0 ? 0 : sorted[Math.min(Math.floor(measured * p), measured - 1)];
  let first = Infinity;
  let last = -Infinity;
  let inWindow = 0;
  for (let i = 0; i < distinct; i += 1) {
    const at = arrivals[i];
    if (at < first) first = at;
    if (at > last) last = at;
    if (from && to && at >= from && at <= to) inWindow += 1;
  }
  return {
    requests,
    distinct,
    duplicates,
    without_webhook_id: withoutId,
    without_publish_time: withoutTime,
    first_arrival_ms: distinct ? first : null,
    last_arrival_ms: distinct ? last : null,
    in_window: inWindow,
    latency_ms: {
      p50: percentile(0.5),
      p99: percentile(0.99),
      max: measured ? sorted[measured - 1] : 0,
    },
  };
}

const server = http.createServer((request, response) => {
  if (request.method === 'GET' && request.url.startsWith('/stats')) {
    const body = JSON.stringify(stats(new URL(request.url, 'http://receiver')));
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(body);
    return;
  }
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    record(request, Buffer.concat(chunks).toString('utf8'));
    response.writeHead(200, { 'content-length': '0' });
    response.end();
  });
});
// The server keeps its connections to the partner open between postbacks.
server.keepAliveTimeout = 120000;
server.headersTimeout = 125000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;

server.listen(0, '127.0.0.1', () => {
  const temporary = `${portFile}.tmp`;
  fs.writeFileSync(temporary, `${server.address().port}\n`);
  fs.renameSync(temporary, portFile);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
