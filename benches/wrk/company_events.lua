-- wrk script: POSTs itinerary company events to /internal/v1/company-events, each a distinct
-- event whose tripId carries when it was sent: "PREFIX-N-MICROS", PREFIX distinct per wrk thread,
-- N the thread's request number, MICROS the wall clock in µs when wrk built the request (just
-- before writing it). The tripId comes back in the postback's <TripId>, where
-- benches/wrk/receiver.js reads it. Used by benches/wrk/deliver.sh, which sets TOKEN (an app
-- token with maestro.events.publish) and COMPANY (the subscribed company).
-- done() prints "2xx responses: N" and "non-2xx responses: N" (plus socket errors), which
-- deliver.sh reads.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } maestro_timeval;
int gettimeofday(maestro_timeval *tv, void *tz);
]]
local timeval = ffi.new("maestro_timeval")

local function micros()
  ffi.C.gettimeofday(timeval, nil)
  return tonumber(timeval.tv_sec) * 1000000 + tonumber(timeval.tv_usec)
end

local token = os.getenv("TOKEN") or error("TOKEN is not set")
local company = os.getenv("COMPANY") or error("COMPANY is not set")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("prefix", string.format("wrk-%d-%d", os.time(), #threads))
end

local sent = 0
local headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/json",
}
local before = '{"type":"itinerary","eventType":"CREATE","companyId":"' .. company ..
  '","userLogin":"bench@example.com","occurredAt":"2026-01-01T00:00:00Z","tripId":"'

function request()
  sent = sent + 1
  local body = string.format('%s%s-%d-%.0f"}', before, prefix, sent, micros())
  return wrk.format("POST", "/internal/v1/company-events", headers, body)
end

ok = 0
failed = 0

function response(status)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local accepted, refused = 0, 0
  for _, thread in ipairs(threads) do
    accepted = accepted + thread:get("ok")
    refused = refused + thread:get("failed")
  end
  local errors = summary.errors
  io.write(string.format("2xx responses: %d\n", accepted))
  io.write(string.format("non-2xx responses: %d\n", refused))
  io.write(string.format("socket errors: %d\n",
    errors.connect + errors.read + errors.write + errors.timeout))
  io.write(string.format("publish latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
