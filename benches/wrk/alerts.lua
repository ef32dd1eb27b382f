-- wrk script: POSTs the Groundspan seed alert, each request with an extRef of its own.
-- Used by benches/wrk/run.sh, which sets TOKEN and BODY (a body file whose extRef is
-- "__EXTREF__").
local token = os.getenv("TOKEN")
local template = io.open(os.getenv("BODY")):read("*a")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("prefix", string.format("wrk-%d-%d", os.time(), threads))
end

local sent = 0

function request()
  sent = sent + 1
  local body = template:gsub("__EXTREF__", prefix .. "-" .. sent)
  return wrk.format("POST", "/maestro/v4/alerts", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end

local statuses = {}

function response(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("non-2xx or socket errors: %d\n",
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
  io.write(string.format("p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
